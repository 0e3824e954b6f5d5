/*
 * The fencing epoch record: its format, its places (a key in etcd, an object in each store) and
 * the rule a stale side applies to itself. See epoch.h.
 *
 * Store object layout: the record's JSON on the first line; with a keyring a second line
 * "mac <key name> <64 hex digits>", HMAC under the keyring's manifest MAC key (dr_keyring_mac)
 * over the first line's bytes.
 */
#include "drd/lib/epoch/epoch.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/json/json.h"
#include "drd/lib/objstore/objstore.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- etcd ---- */

int dr_epoch_read_etcd(dr_etcd *e, dr_epoch *out, int64_t *mod_rev)
{
    dr_etcd_range_req q = {.key = DR_EPOCH_KEY, .key_len = strlen(DR_EPOCH_KEY)};
    dr_etcd_range_res r;
    memset(out, 0, sizeof *out);
    if (mod_rev)
        *mod_rev = 0;
    int rc = dr_etcd_range(e, &q, &r);
    if (rc < 0)
        return rc;
    if (r.n_kvs == 1) {
        if (mod_rev)
            *mod_rev = r.kvs[0].mod_revision;
        rc = dr_epoch_parse((const char *)r.kvs[0].value, r.kvs[0].value_len, out);
        if (rc < 0)
            rc = dr_error_wrap(rc, "etcd %s: key " DR_EPOCH_KEY, dr_etcd_endpoint(e));
    }
    dr_etcd_range_res_free(&r);
    return rc;
}

int dr_epoch_write_etcd(dr_etcd *e, const dr_epoch *ep, int64_t expect_mod_rev, dr_etcd_header *hdr)
{
    dr_buf b = {0};
    dr_etcd_txn *t = NULL;
    dr_etcd_txn_res res;
    size_t kl = strlen(DR_EPOCH_KEY);
    int rc = dr_epoch_format(ep, &b);
    if (rc == 0)
        rc = dr_etcd_txn_new(&t);
    if (rc == 0)
        rc = dr_etcd_txn_compare(t, DR_EPOCH_KEY, kl, DR_CMP_MOD, DR_CMP_EQUAL, expect_mod_rev);
    if (rc == 0)
        rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, DR_EPOCH_KEY, kl, b.data, b.len, 0);
    if (rc == 0 && (rc = dr_etcd_txn_do(e, t, &res)) == 0) {
        if (!res.succeeded)
            rc = dr_error_set(DR_ESTALE,
                              "etcd %s: " DR_EPOCH_KEY " changed while epoch %" PRId64
                              " was being written (another promotion?)",
                              dr_etcd_endpoint(e), ep->epoch);
        if (hdr)
            *hdr = res.header;
        dr_etcd_txn_res_free(&res);
    }
    dr_etcd_txn_free(t);
    dr_buf_free(&b);
    return rc;
}

/* ---- stores ---- */

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* The newest "drd-epoch/<20 digits>" object's name (objects are immutable: one per epoch). */
typedef struct newest_obj {
    char name[64];
} newest_obj;

static int newest_cb(void *ctx, const dr_store_obj *o)
{
    newest_obj *n = ctx;
    const char *tail = o->name + strlen(DR_EPOCH_OBJECT "/");
    if (strlen(tail) == 20 && strspn(tail, "0123456789") == 20 && strcmp(o->name, n->name) > 0)
        snprintf(n->name, sizeof n->name, "%s", o->name);
    return 0;
}

/* Reads and checks one record object into *out. */
static int read_object(dr_store *st, const dr_keyring *k, const char *obj, dr_epoch *out)
{
    char *data = NULL;
    size_t len = 0;
    int rc = dr_store_get_buf(st, obj, DR_EPOCH_MAX_BYTES + 256, &data, &len);
    if (rc < 0)
        return rc;
    const char *nl = memchr(data, '\n', len);
    size_t jlen = nl ? (size_t)(nl - data) : len;
    if (k) {
        char name[80] = "", mac_hex[80] = "", want[65];
        uint8_t mac[32];
        const char *line = nl ? nl + 1 : "";
        size_t llen = nl ? len - jlen - 1 : 0;
        char tail[200];
        snprintf(tail, sizeof tail, "%.*s", (int)(llen < sizeof tail ? llen : sizeof tail - 1),
                 line);
        if (sscanf(tail, "mac %64s %70s", name, mac_hex) != 2 || strlen(mac_hex) != 64 ||
            dr_keyring_mac(k, name, data, jlen, mac) < 0) {
            rc = dr_error_set(DR_EAUTH,
                              "store %s: object %s is not authenticated under this keyring "
                              "(written without it, or planted)",
                              dr_store_url(st), obj);
            goto out;
        }
        hex(mac, sizeof mac, want);
        if (!dr_crypto_equal(want, mac_hex, 64)) {
            rc = dr_error_set(DR_EAUTH, "store %s: object %s fails its MAC (edited?)",
                              dr_store_url(st), obj);
            goto out;
        }
    }
    rc = dr_epoch_parse(data, jlen, out);
    if (rc < 0)
        rc = dr_error_wrap(rc, "store %s: object %s", dr_store_url(st), obj);
    else if (strtoll(obj + strlen(DR_EPOCH_OBJECT "/"), NULL, 10) != out->epoch)
        rc = dr_error_set(DR_EPROTO, "store %s: object %s holds epoch %" PRId64, dr_store_url(st),
                          obj, out->epoch);
out:
    free(data);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int dr_epoch_read_store(dr_store *st, const dr_keyring *k, dr_epoch *out)
{
    newest_obj n = {""};
    memset(out, 0, sizeof *out);
    int rc = dr_store_list(st, DR_EPOCH_OBJECT "/", newest_cb, &n);
    if (rc < 0 || !n.name[0])
        return rc;
    return read_object(st, k, n.name, out);
}

int dr_epoch_write_store(dr_store *st, const dr_keyring *k, const dr_epoch *ep)
{
    dr_epoch cur;
    dr_buf b = {0};
    char a[256], c[256], obj[64];
    int rc = dr_epoch_read_store(st, k, &cur);
    if (rc < 0)
        return rc;
    snprintf(obj, sizeof obj, DR_EPOCH_OBJECT "/%020" PRId64, ep->epoch);
    if (cur.epoch == ep->epoch && cur.cluster_id == ep->cluster_id &&
        !strcmp(cur.primary, ep->primary))
        return 0; /* written before (a resumed promotion) */
    if (cur.epoch >= ep->epoch) {
        dr_epoch_describe(&cur, c, sizeof c);
        dr_epoch_describe(ep, a, sizeof a);
        return dr_error_set(DR_ESTALE, "store %s already holds %s; refusing to write %s",
                            dr_store_url(st), c, a);
    }
    rc = dr_epoch_format(ep, &b);
    if (rc == 0 && k) {
        uint8_t mac[32];
        char h[65];
        size_t jlen = b.len;
        if ((rc = dr_keyring_mac(k, dr_keyring_current(k), b.data, jlen, mac)) == 0) {
            hex(mac, sizeof mac, h);
            rc = dr_buf_printf(&b, "\nmac %s %s", dr_keyring_current(k), h);
        }
    }
    if (rc == 0)
        rc = dr_buf_printf(&b, "\n");
    if (rc == 0)
        rc = dr_store_put_buf(st, obj, b.data, b.len);
    dr_buf_free(&b);
    return rc;
}

/* ---- the checks ---- */

int dr_epoch_check_replication(dr_etcd *src, dr_etcd *tgt, int64_t handover)
{
    dr_epoch a, b, newest;
    dr_etcd_status ss, ts;
    char who[300];
    int rc = dr_epoch_read_etcd(src, &a, NULL);
    if (rc == 0)
        rc = dr_epoch_read_etcd(tgt, &b, NULL);
    if (rc == 0)
        rc = dr_etcd_status_get(src, &ss);
    if (rc == 0)
        rc = dr_etcd_status_get(tgt, &ts);
    if (rc < 0)
        return rc;
    dr_epoch_newest(&a, &b, &newest);
    if (handover && newest.epoch == handover && newest.cluster_id == ts.header.cluster_id)
        return 0;
    snprintf(who, sizeof who, "the source %s", dr_etcd_endpoint(src));
    return dr_epoch_check_primary(&newest, &a, ss.header.cluster_id, who, "refusing to replicate");
}

int dr_epoch_check_snapshot(dr_repo *r, dr_etcd *e)
{
    dr_epoch a, b, newest;
    dr_etcd_status st;
    char who[300];
    int rc = dr_epoch_read_etcd(e, &a, NULL);
    if (rc == 0)
        rc = dr_epoch_read_store(dr_repo_store(r), dr_repo_keyring(r), &b);
    if (rc == 0)
        rc = dr_etcd_status_get(e, &st);
    if (rc < 0)
        return rc;
    dr_epoch_newest(&a, &b, &newest);
    snprintf(who, sizeof who, "etcd %s", dr_etcd_endpoint(e));
    char doing[300];
    snprintf(doing, sizeof doing, "refusing to write snapshots into %s",
             dr_store_url(dr_repo_store(r)));
    return dr_epoch_check_primary(&newest, &a, st.header.cluster_id, who, doing);
}
