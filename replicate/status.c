/*
 * One-shot status and verify. Read-only on both sides, except that verify in exact mode may
 * mirror the source's compaction onto the standby (a no-revision operation) so that HashKV
 * covers the same history on both.
 */
#include "repl_int.h"

#include <string.h>

/* The options with their defaults into *ro, and both endpoints open (the caller closes them, also
 * after a failure). */
static int open_both(const dr_repl_opts *opts, dr_repl_opts *ro, dr_etcd **src, dr_etcd **tgt)
{
    int rc = repl_opts_resolve(opts, ro);
    if (rc == 0)
        rc = dr_etcd_open(src, &ro->source);
    if (rc == 0)
        rc = dr_etcd_open(tgt, &ro->target);
    return rc;
}

int dr_repl_status_get(const dr_repl_opts *opts, dr_repl_status *st)
{
    memset(st, 0, sizeof *st);
    dr_etcd *src = NULL, *tgt = NULL;
    dr_repl_opts ro;
    const dr_repl_opts *o = &ro;
    int rc = open_both(opts, &ro, &src, &tgt);
    dr_etcd_status ss, ts;
    if (rc == 0 && (rc = dr_etcd_status_get(src, &ss)) == 0 &&
        (rc = dr_etcd_status_get(tgt, &ts)) == 0)
        rc = repl_compact_revision(src, &st->source_compact_revision);
    if (rc < 0)
        goto out;
    st->source_revision = ss.header.revision;
    if (o->mode == DR_REPL_EXACT) {
        st->applied_revision = ts.header.revision;
        if (ts.header.revision > ss.header.revision)
            st->state = "diverged";
        else if (ts.header.revision <= 1 && ss.header.revision > 1)
            st->state = "not-seeded";
    } else {
        int64_t cur = 0;
        rc = repl_read_cursor(o, tgt, &cur);
        if (rc < 0)
            goto out;
        if (rc == 0)
            st->state = "no-cursor";
        st->applied_revision = cur;
        rc = 0;
    }
    st->lag_revisions =
        st->source_revision > st->applied_revision ? st->source_revision - st->applied_revision : 0;
    if (!st->state)
        st->state = st->lag_revisions == 0 ? "in-sync" : "lagging";
out:
    dr_etcd_close(src);
    dr_etcd_close(tgt);
    return rc;
}

int dr_repl_verify(const dr_repl_opts *opts, int64_t *compared, int64_t *nkeys)
{
    dr_etcd *src = NULL, *tgt = NULL;
    *nkeys = -1;
    dr_repl_opts ro;
    const dr_repl_opts *o = &ro;
    int rc = open_both(opts, &ro, &src, &tgt);
    if (rc < 0)
        goto out;
    if (o->mode == DR_REPL_EXACT) {
        dr_etcd_status ts;
        if ((rc = dr_etcd_status_get(tgt, &ts)) < 0)
            goto out;
        int64_t t = ts.header.revision, cs = 0, ct = 0;
        *compared = t;
        if ((rc = repl_compact_revision(src, &cs)) < 0 ||
            (rc = repl_compact_revision(tgt, &ct)) < 0)
            goto out;
        if (cs > t) {
            rc = dr_error_set(DR_ECOMPACTED,
                              "cannot verify at the standby's revision %lld: the source compacted "
                              "it (compact revision %lld)",
                              (long long)t, (long long)cs);
            goto out;
        }
        if (cs > ct && (rc = dr_etcd_compact(tgt, cs, 1)) < 0)
            goto out;
        if (t <= (cs > ct ? cs : ct)) {
            /* HashKV refuses the compact revision; a Range there still answers */
            rc = repl_compare(o, src, tgt, t, t, nkeys);
            goto out;
        }
        uint32_t hs, ht;
        int64_t hcs, hct;
        if ((rc = dr_etcd_hashkv(src, t, &hs, &hcs, NULL)) < 0 ||
            (rc = dr_etcd_hashkv(tgt, t, &ht, &hct, NULL)) < 0)
            goto out;
        if (hcs == hct) {
            if (hs != ht)
                rc = dr_error_set(DR_EDIVERGED,
                                  "source and standby differ at revision %lld (HashKV %08x vs "
                                  "%08x)",
                                  (long long)t, hs, ht);
            goto out;
        }
        rc = repl_compare(o, src, tgt, t, t, nkeys);
        goto out;
    }
    int64_t cur = 0;
    rc = repl_read_cursor(o, tgt, &cur);
    if (rc == 0)
        rc = dr_error_set(DR_ENOTFOUND, "no cursor for '%s' on the target: nothing replicated yet",
                          o->name);
    if (rc < 0)
        goto out;
    *compared = cur;
    rc = repl_compare(o, src, tgt, cur, 0, nkeys);
    if (rc == DR_ECOMPACTED)
        rc = dr_error_wrap(rc,
                           "the source compacted past the cursor %lld; wait for replication "
                           "to catch up and verify again",
                           (long long)cur);
out:
    dr_etcd_close(src);
    dr_etcd_close(tgt);
    return rc;
}
