/*
 * drd restore keys: the keys under one prefix, as they were at a point, back into a live etcd.
 *
 *   plan --> scratch restore + throw-away etcd (+ replay) --> merge-join, page by page, of the
 *   prefix in the restored etcd (A) and in the live target (B), both sorted by key:
 *     in A only        create   (guarded: the key must still be absent)
 *     in both, differ  change   (--overwrite; guarded by the target key's mod_revision)
 *     in B only        delete   (--overwrite; guarded likewise)
 * A guard that fails (someone wrote the key meanwhile) is reported as a conflict, never
 * overwritten. Memory: two pages of keys. Leases are not carried over (the backup's leases do not
 * exist on the target): restored keys are written without a lease, and the output says so.
 * Must never touch a key outside the prefix, and with --dry-run never write at all.
 */
#include "drd/lib/etcd/etcd.h"
#include "drd/lib/etcdtool/etcdtool.h"
#include "restore_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 500

typedef struct pager {
    dr_etcd *e;
    uint8_t end[1024];
    size_t end_len;
    uint8_t *next; /* next start key */
    size_t next_len;
    dr_etcd_range_res res;
    int have_res;
    size_t i;
    int done;
    int64_t rev; /* every page at the first page's revision: our own writes stay invisible */
} pager;

static int pager_init(pager *p, dr_etcd *e, const char *prefix)
{
    memset(p, 0, sizeof *p);
    p->e = e;
    size_t n = strlen(prefix);
    if (n >= sizeof p->end)
        return dr_error_set(DR_EUSAGE, "--prefix is too long");
    dr_etcd_prefix_end(prefix, n, p->end, &p->end_len);
    if (!(p->next = malloc(n + 1)))
        return dr_error_set(DR_ENOMEM, "out of memory");
    memcpy(p->next, prefix, n);
    p->next_len = n;
    return 0;
}

static void pager_free(pager *p)
{
    if (p->have_res)
        dr_etcd_range_res_free(&p->res);
    free(p->next);
}

/* The current kv, or NULL at the end. */
static int pager_cur(pager *p, const dr_etcd_kv **kv)
{
    *kv = NULL;
    while (!p->done && (!p->have_res || p->i >= p->res.n_kvs)) {
        int more = 1;
        if (p->have_res) {
            more = p->res.more;
            dr_etcd_range_res_free(&p->res);
            p->have_res = 0;
        }
        if (!more) {
            p->done = 1;
            break;
        }
        dr_etcd_range_req req = {.key = p->next,
                                 .key_len = p->next_len,
                                 .range_end = p->end,
                                 .range_end_len = p->end_len,
                                 .limit = PAGE,
                                 .revision = p->rev};
        int rc = dr_etcd_range(p->e, &req, &p->res);
        if (rc < 0)
            return rc;
        p->have_res = 1;
        if (!p->rev)
            p->rev = p->res.header.revision;
        p->i = 0;
        if (p->res.n_kvs) {
            const dr_etcd_kv *last = &p->res.kvs[p->res.n_kvs - 1];
            uint8_t *nx = realloc(p->next, last->key_len + 1);
            if (!nx)
                return dr_error_set(DR_ENOMEM, "out of memory");
            memcpy(nx, last->key, last->key_len);
            nx[last->key_len] = 0; /* the smallest key after the last one */
            p->next = nx;
            p->next_len = last->key_len + 1;
        } else {
            p->res.more = 0;
        }
    }
    if (!p->done)
        *kv = &p->res.kvs[p->i];
    return 0;
}

typedef struct tally {
    int64_t create, change, del, same, conflicts, leased;
} tally;

/* Keys are arbitrary bytes: escaped (dr_buf_escape), so that a key cannot move the cursor,
 * retitle the terminal or fake a line of output. */
static void line(const dr_restore_opts *o, const char *what, const dr_etcd_kv *kv)
{
    dr_buf k = {0};
    if (dr_buf_escape(&k, kv->key, kv->key_len) == 0)
        restore_say(o, "%s %s", what, k.data);
    else
        restore_say(o, "%s (a key: out of memory to show it)", what);
    dr_buf_free(&k);
}

/* One guarded write; a failed guard is a conflict. */
static int apply(dr_etcd *t, dr_etcd_txn *txn, const dr_restore_opts *o, const char *what,
                 const dr_etcd_kv *kv, tally *n)
{
    dr_etcd_txn_res res;
    int rc = dr_etcd_txn_do(t, txn, &res);
    dr_etcd_txn_reset(txn);
    if (rc < 0)
        return rc;
    int ok = res.succeeded;
    dr_etcd_txn_res_free(&res);
    if (!ok) {
        n->conflicts++;
        char w[64];
        snprintf(w, sizeof w, "conflict (%s skipped: written meanwhile)", what);
        line(o, w, kv);
    }
    return 0;
}

int dr_restore_keys(dr_repo *repo, const dr_restore_plan *p, const char *prefix,
                    const dr_etcd_opts *target, int overwrite, const dr_restore_opts *o)
{
    int rc = 0;
    char scratch[4096] = "", data[4200], log[4200];
    dr_etcd_proc *proc = NULL;
    dr_etcd *a = NULL, *b = NULL;
    dr_etcd_txn *txn = NULL;
    dr_buf shown = {0};
    pager pa = {0}, pb = {0};
    tally n = {0};
    if (!prefix[0])
        return dr_error_set(DR_EUSAGE, "--prefix must not be empty (restore keys restores one "
                                       "prefix; use drd restore for the whole keyspace)");
    if ((rc = dr_etcd_open(&b, target)) < 0)
        return rc;
    if ((rc = dr_fs_mkdtemp("restore-keys", scratch, sizeof scratch)) < 0)
        goto out;
    snprintf(data, sizeof data, "%s/data", scratch);
    snprintf(log, sizeof log, "%s/etcd.log", scratch);
    dr_restore_opts quiet = {0};
    if ((rc = restore_verify_plan(repo, p, &quiet, 0)) < 0 ||
        (rc = restore_base(repo, p, data, "restore-keys", "restore-keys=http://127.0.0.1:2380",
                           "http://127.0.0.1:2380")) < 0 ||
        (rc = dr_etcdtool_start(data, "restore-keys", log, 120000, &proc)) < 0)
        goto out;
    if (p->n_segs && (rc = dr_restore_replay(repo, p, dr_etcdtool_url(proc), NULL)) < 0)
        goto out;
    dr_etcd_opts ao = {.endpoints = dr_etcdtool_url(proc), .timeout_ms = 30000};
    if ((rc = dr_etcd_open(&a, &ao)) < 0 || (rc = dr_etcd_txn_new(&txn)) < 0 ||
        (rc = pager_init(&pa, a, prefix)) < 0 || (rc = pager_init(&pb, b, prefix)) < 0)
        goto out;
    if ((rc = dr_buf_escape(&shown, prefix, strlen(prefix))) < 0)
        goto out;
    restore_say(o, "keys under '%s' at revision %" PRId64 " (%s) against %s%s", shown.data,
                p->target, p->base.id, dr_etcd_endpoint(b),
                o->dry_run ? " (dry run: nothing is written)" : "");
    for (;;) {
        const dr_etcd_kv *ka, *kb;
        if ((rc = pager_cur(&pa, &ka)) < 0 || (rc = pager_cur(&pb, &kb)) < 0)
            goto out;
        if (!ka && !kb)
            break;
        int c;
        if (!ka)
            c = 1;
        else if (!kb)
            c = -1;
        else {
            size_t m = ka->key_len < kb->key_len ? ka->key_len : kb->key_len;
            c = memcmp(ka->key, kb->key, m);
            if (!c)
                c = ka->key_len < kb->key_len ? -1 : ka->key_len > kb->key_len;
        }
        if (c < 0) { /* only in the backup: create */
            n.create++;
            n.leased += ka->lease != 0;
            line(o, o->dry_run ? "would create" : "create", ka);
            if (!o->dry_run) {
                if ((rc = dr_etcd_txn_compare(txn, ka->key, ka->key_len, DR_CMP_VERSION,
                                              DR_CMP_EQUAL, 0)) < 0 ||
                    (rc = dr_etcd_txn_put(txn, DR_TXN_SUCCESS, ka->key, ka->key_len, ka->value,
                                          ka->value_len, 0)) < 0 ||
                    (rc = apply(b, txn, o, "create", ka, &n)) < 0)
                    goto out;
            }
            pa.i++;
        } else if (c > 0) { /* only on the target: delete */
            n.del++;
            line(o,
                 !overwrite   ? "extra (kept; --overwrite deletes it)"
                 : o->dry_run ? "would delete"
                              : "delete",
                 kb);
            if (overwrite && !o->dry_run) {
                if ((rc = dr_etcd_txn_compare(txn, kb->key, kb->key_len, DR_CMP_MOD, DR_CMP_EQUAL,
                                              kb->mod_revision)) < 0 ||
                    (rc = dr_etcd_txn_delete(txn, DR_TXN_SUCCESS, kb->key, kb->key_len, NULL, 0)) <
                        0 ||
                    (rc = apply(b, txn, o, "delete", kb, &n)) < 0)
                    goto out;
            }
            pb.i++;
        } else {
            if (ka->value_len == kb->value_len && !memcmp(ka->value, kb->value, ka->value_len)) {
                n.same++;
            } else {
                n.change++;
                n.leased += ka->lease != 0;
                line(o,
                     !overwrite   ? "differs (kept; --overwrite restores it)"
                     : o->dry_run ? "would change"
                                  : "change",
                     ka);
                if (overwrite && !o->dry_run) {
                    if ((rc = dr_etcd_txn_compare(txn, kb->key, kb->key_len, DR_CMP_MOD,
                                                  DR_CMP_EQUAL, kb->mod_revision)) < 0 ||
                        (rc = dr_etcd_txn_put(txn, DR_TXN_SUCCESS, ka->key, ka->key_len, ka->value,
                                              ka->value_len, 0)) < 0 ||
                        (rc = apply(b, txn, o, "change", ka, &n)) < 0)
                        goto out;
                }
            }
            pa.i++;
            pb.i++;
        }
    }
    restore_say(o,
                "%s%" PRId64 " to create, %" PRId64 " %s, %" PRId64 " %s, %" PRId64
                " unchanged, %" PRId64 " conflicts%s",
                o->dry_run ? "dry run: " : "", n.create, n.change,
                overwrite ? "to change" : "differ (kept)", n.del,
                overwrite ? "to delete" : "extra (kept)", n.same, n.conflicts,
                n.leased ? "; keys that had a lease were written without one" : "");
    if (n.conflicts)
        rc = dr_error_set(DR_EDIVERGED,
                          "%" PRId64 " key(s) were written on the target meanwhile and were left "
                          "as they are",
                          n.conflicts);
out:
    dr_buf_free(&shown);
    pager_free(&pa);
    pager_free(&pb);
    dr_etcd_txn_free(txn);
    dr_etcd_close(a);
    dr_etcd_close(b);
    dr_etcdtool_stop(proc);
    if (scratch[0])
        dr_fs_remove_tree(scratch);
    return rc;
}
