/*
 * Reading both sides of a replication: the key mapping of filtered mode, the paged cursor over a
 * range at a revision, the key-by-key comparison (verify, and exact mode's start check at the
 * compact revision), the cursor key, and the compact revision probe. Read-only.
 */
#include "repl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 500

void repl_cursor_key(const dr_repl_opts *o, char *out, size_t cap)
{
    snprintf(out, cap, REPL_CURSOR_ROOT "%s/revision", o->name);
}

static int under(const uint8_t *k, size_t kl, const char *p)
{
    size_t pl = strlen(p);
    return kl >= pl && memcmp(k, p, pl) == 0;
}

/* Each side of a filtered replication keeps its own epoch record (drd/lib/epoch). */
static int is_epoch_key(const uint8_t *k, size_t kl)
{
    return kl == strlen(DR_EPOCH_KEY) && memcmp(k, DR_EPOCH_KEY, kl) == 0;
}

int repl_map_key(const dr_repl_opts *o, const uint8_t *k, size_t kl, dr_buf *out)
{
    if (under(k, kl, REPL_CURSOR_ROOT) || is_epoch_key(k, kl))
        return 0;
    const char *pfx = NULL;
    if (o->n_prefixes) {
        for (size_t i = 0; i < o->n_prefixes && !pfx; i++)
            if (under(k, kl, o->prefixes[i]))
                pfx = o->prefixes[i];
        if (!pfx)
            return 0;
    }
    for (size_t i = 0; i < o->n_excludes; i++)
        if (under(k, kl, o->excludes[i]))
            return 0;
    out->len = 0;
    if (o->dest_prefix) {
        size_t pl = strlen(pfx);
        if (dr_buf_append(out, o->dest_prefix, strlen(o->dest_prefix)) < 0 ||
            dr_buf_append(out, k + pl, kl - pl) < 0)
            return DR_ENOMEM;
    } else if (dr_buf_append(out, k, kl) < 0) {
        return DR_ENOMEM;
    }
    return 1;
}

/* Target keys resync must leave alone: our cursors and the mapped excludes. */
int repl_target_ignored(const dr_repl_opts *o, const uint8_t *k, size_t kl)
{
    if (under(k, kl, REPL_CURSOR_ROOT) || is_epoch_key(k, kl))
        return 1;
    for (size_t i = 0; i < o->n_excludes; i++) {
        const char *e = o->excludes[i];
        if (o->dest_prefix) {
            const char *p = o->prefixes[0];
            size_t pl = strlen(p), dl = strlen(o->dest_prefix);
            if (strncmp(e, p, pl) != 0)
                continue;
            if (kl >= dl && memcmp(k, o->dest_prefix, dl) == 0 && under(k + dl, kl - dl, e + pl))
                return 1;
        } else if (under(k, kl, e)) {
            return 1;
        }
    }
    return 0;
}

int repl_read_cursor(const dr_repl_opts *o, dr_etcd *tgt, int64_t *rev)
{
    char ck[512];
    repl_cursor_key(o, ck, sizeof ck);
    dr_etcd_range_req q = {.key = ck, .key_len = strlen(ck)};
    dr_etcd_range_res r;
    int rc = dr_etcd_range(tgt, &q, &r);
    if (rc < 0)
        return rc;
    if (r.n_kvs == 0) {
        dr_etcd_range_res_free(&r);
        return 0;
    }
    char v[32];
    size_t n = r.kvs[0].value_len < sizeof v - 1 ? r.kvs[0].value_len : sizeof v - 1;
    memcpy(v, r.kvs[0].value, n);
    v[n] = 0;
    dr_etcd_range_res_free(&r);
    if (dr_parse_i64(v, "cursor", rev) < 0) {
        dr_buf shown = {0};
        rc = dr_buf_escape(&shown, v, n);
        if (rc == 0)
            rc = dr_error_set(DR_EPROTO, "the cursor key %s holds '%s', not a revision", ck,
                              shown.data);
        dr_buf_free(&shown);
        return rc;
    }
    return 1;
}

/* DR_EDIVERGED for a key, escaped (keys are arbitrary bytes; the message reaches a terminal). */
static int key_error(const char *key, size_t n, const char *what)
{
    dr_buf shown = {0};
    int rc = dr_buf_escape(&shown, key, n);
    if (rc == 0)
        rc = dr_error_set(DR_EDIVERGED, "key '%s' %s", shown.data, what);
    dr_buf_free(&shown);
    return rc;
}

/* Byte strings may be empty (and then NULL): memcmp must not see them. */
int repl_same_bytes(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

int repl_kv_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

int repl_pager_fill(pager *p)
{
    if (p->page.priv && p->i < p->page.n_kvs)
        return 0;
    if (p->page.priv && !p->page.more) {
        dr_etcd_range_res_free(&p->page);
        p->done = 1;
        return 0;
    }
    dr_etcd_range_res_free(&p->page);
    if (p->done)
        return 0;
    dr_etcd_range_req q = {.key = p->next.data,
                           .key_len = p->next.len,
                           .range_end = p->end,
                           .range_end_len = p->end_len,
                           .limit = PAGE,
                           .revision = p->rev};
    int rc = dr_etcd_range(p->e, &q, &p->page);
    if (rc < 0)
        return rc;
    p->i = 0;
    if (p->page.n_kvs == 0) {
        p->done = 1;
        return 0;
    }
    const dr_etcd_kv *last = &p->page.kvs[p->page.n_kvs - 1];
    p->next.len = 0;
    if ((rc = dr_buf_append(&p->next, last->key, last->key_len)) < 0 ||
        (rc = dr_buf_append(&p->next, "\0", 1)) < 0)
        return rc;
    return 0;
}

const dr_etcd_kv *repl_pager_cur(pager *p)
{
    return p->done ? NULL : &p->page.kvs[p->i];
}

int repl_pager_init(pager *p, dr_etcd *e, const char *prefix, int64_t rev)
{
    memset(p, 0, sizeof p[0]);
    p->e = e;
    p->rev = rev;
    size_t pl = prefix ? strlen(prefix) : 0;
    if (pl >= sizeof p->end)
        return dr_error_set(DR_EUSAGE, "prefix too long");
    if (pl == 0) {
        p->end[0] = 0;
        p->end_len = 1;
        return dr_buf_append(&p->next, "\0", 1);
    }
    dr_etcd_prefix_end(prefix, pl, p->end, &p->end_len);
    return dr_buf_append(&p->next, prefix, pl);
}

void repl_pager_free(pager *p)
{
    dr_etcd_range_res_free(&p->page);
    dr_buf_free(&p->next);
}

int repl_compact_revision(dr_etcd *e, int64_t *out)
{
    /* A read at a revision below the compact revision fails with "compacted", one at or above it
     * works: binary search with single-key reads (about 20 cheap calls; no history is read). */
    static const uint8_t zero = 0;
    dr_etcd_status st;
    int rc = dr_etcd_status_get(e, &st);
    if (rc < 0)
        return rc;
    int64_t lo = 1, hi = st.header.revision; /* the answer lies in [lo, hi] */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        dr_etcd_range_req q = {.key = &zero, .key_len = 1, .revision = mid};
        dr_etcd_range_res r;
        rc = dr_etcd_range(e, &q, &r);
        if (rc == 0) {
            dr_etcd_range_res_free(&r);
            hi = mid;
        } else if (rc == DR_ECOMPACTED) {
            dr_error_clear();
            lo = mid + 1;
        } else {
            return rc;
        }
    }
    *out = lo > 1 ? lo : 0; /* 0: nothing compacted */
    return 0;
}

/* ---- key-by-key comparison (verify) ---- */

int repl_compare(const dr_repl_opts *o, dr_etcd *src, dr_etcd *tgt, int64_t srev, int64_t trev,
                 int64_t *nkeys)
{
    int exact = o->mode == DR_REPL_EXACT;
    size_t nranges = exact || o->n_prefixes == 0 ? 1 : o->n_prefixes;
    int rc = 0;
    dr_buf mk = {0};
    *nkeys = 0;
    for (size_t r = 0; r < nranges && rc == 0; r++) {
        const char *sp = exact || o->n_prefixes == 0 ? NULL : o->prefixes[r];
        const char *tp = sp && o->dest_prefix ? o->dest_prefix : sp;
        pager s, d;
        if ((rc = repl_pager_init(&s, src, sp, srev)) < 0)
            break;
        if ((rc = repl_pager_init(&d, tgt, tp, trev)) < 0) {
            repl_pager_free(&s);
            break;
        }
        while (rc == 0) {
            if ((rc = repl_pager_fill(&s)) < 0 || (rc = repl_pager_fill(&d)) < 0)
                break;
            const dr_etcd_kv *a = repl_pager_cur(&s), *b = repl_pager_cur(&d);
            if (!a && !b)
                break;
            if (a) {
                int m = exact ? (mk.len = 0, dr_buf_append(&mk, a->key, a->key_len) == 0)
                              : repl_map_key(o, a->key, a->key_len, &mk);
                if (m == 0) {
                    s.i++;
                    continue;
                }
            }
            if (b && !exact && repl_target_ignored(o, b->key, b->key_len)) {
                d.i++;
                continue;
            }
            int c = !a ? 1 : !b ? -1 : repl_kv_cmp((uint8_t *)mk.data, mk.len, b->key, b->key_len);
            const dr_etcd_kv *k = c <= 0 ? a : b;
            if (c != 0) {
                rc = key_error(c < 0 ? mk.data : (const char *)k->key, c < 0 ? mk.len : k->key_len,
                               c < 0 ? "is only on the source" : "is only on the target");
                break;
            }
            int same = repl_same_bytes(a->value, a->value_len, b->value, b->value_len) &&
                       a->lease == b->lease;
            if (exact)
                same = same && a->create_revision == b->create_revision &&
                       a->mod_revision == b->mod_revision && a->version == b->version;
            if (!same) {
                rc = key_error(mk.data, mk.len, "differs between source and target");
                break;
            }
            (*nkeys)++;
            s.i++;
            d.i++;
        }
        repl_pager_free(&s);
        repl_pager_free(&d);
    }
    dr_buf_free(&mk);
    return rc;
}
