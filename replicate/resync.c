/*
 * Filtered mode's resync (first run, or when the source compacted past the cursor): page through
 * the source at one revision S and the target's mapped range side by side (both in key order), put
 * what differs and delete target keys the source no longer has (deletes made while drd was down),
 * then write cursor = S. Memory: one page of each side, and at most window transactions in flight
 * (unordered: every key is written at most once per resync, so their order does not matter).
 *
 * Must never touch target keys outside the mapped prefixes, nor under /drd/replicate/ except its
 * own cursor (written last, once the copy is complete).
 */
#include "filtered_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pipelined writes without ordering (resync) ---- */

static int wait_ok(fs *f, int64_t wait_ms)
{
    void *user;
    int trc = 0;
    dr_etcd_txn_res res;
    int rc = dr_etcd_pipe_next(f->pipe, wait_ms, &user, &trc, &res);
    if (rc == DR_ETIMEOUT || rc == DR_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (trc < 0)
        return trc;
    f->st->txns_total++;
    dr_etcd_txn_res_free(&res);
    return 0;
}

static int flush_unordered(fs *f, dr_etcd_txn *t)
{
    int rc = 0;
    if (dr_etcd_txn_nops(t) == 0)
        return 0;
    while (dr_etcd_pipe_inflight(f->pipe) >= f->cap && rc == 0)
        rc = wait_ok(f, 1000);
    if (rc == 0)
        rc = dr_etcd_pipe_submit(f->pipe, t, NULL);
    dr_etcd_txn_reset(t);
    return rc;
}

static int drain_unordered(fs *f)
{
    int rc = 0;
    while (dr_etcd_pipe_inflight(f->pipe) > 0 && rc == 0)
        rc = wait_ok(f, 1000);
    return rc;
}

static int resync_range(fs *f, const char *sp, const char *tp, int64_t rev, dr_etcd_txn *t,
                        int64_t *copied, int64_t *deleted)
{
    pager s, d;
    int rc = repl_pager_init(&s, f->src, sp, rev);
    if (rc == 0)
        rc = repl_pager_init(&d, f->tgt, tp, 0);
    dr_buf mk = {0};
    while (rc == 0) {
        if ((rc = repl_pager_fill(&s)) < 0 || (rc = repl_pager_fill(&d)) < 0)
            break;
        const dr_etcd_kv *a = repl_pager_cur(&s), *b = repl_pager_cur(&d);
        if (!a && !b)
            break;
        int m = 0;
        if (a) {
            m = repl_map_key(f->o, a->key, a->key_len, &mk);
            if (m < 0) {
                rc = dr_error_set(DR_ENOMEM, "out of memory");
                break;
            }
            if (m == 0) {
                s.i++;
                continue;
            }
        }
        if (b && repl_target_ignored(f->o, b->key, b->key_len)) {
            d.i++;
            continue;
        }
        int c = !a ? 1 : !b ? -1 : repl_kv_cmp((uint8_t *)mk.data, mk.len, b->key, b->key_len);
        size_t need = c <= 0 ? mk.len + a->value_len : b->key_len;
        if (dr_etcd_txn_nops(t) && dr_etcd_txn_bytes(t) + need > TXN_BYTES &&
            (rc = flush_unordered(f, t)) < 0)
            break;
        if (c <= 0) {
            int same = c == 0 && a->lease == b->lease &&
                       repl_same_bytes(a->value, a->value_len, b->value, b->value_len);
            if (!same) {
                if (a->lease && (rc = leases_ensure(f->ls, a->lease)) < 0)
                    break;
                rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, mk.data, mk.len, a->value, a->value_len,
                                     a->lease);
                (*copied)++;
            }
            s.i++;
            if (c == 0)
                d.i++;
        } else {
            rc = dr_etcd_txn_delete(t, DR_TXN_SUCCESS, b->key, b->key_len, NULL, 0);
            (*deleted)++;
            d.i++;
        }
        if (rc == 0 && (int64_t)dr_etcd_txn_nops(t) >= f->o->max_txn_ops)
            rc = flush_unordered(f, t);
    }
    if (rc == 0)
        rc = flush_unordered(f, t);
    repl_pager_free(&s);
    repl_pager_free(&d);
    dr_buf_free(&mk);
    return rc;
}

static int write_cursor(fs *f, int64_t rev)
{
    char v[32];
    int n = snprintf(v, sizeof v, "%lld", (long long)rev);
    dr_etcd_header h;
    int rc = dr_etcd_put(f->tgt, f->ck, f->ckl, v, (size_t)n, 0, &h);
    if (rc == 0) {
        f->confirmed = f->chain = rev;
        f->last_cursor_write_ms = dr_mono_ms();
    }
    return rc;
}

int repl_resync(fs *f)
{
    int rc = 0;
    dr_etcd_txn *t = NULL;
    f->st->state = DR_REPL_SYNCING;
    f->st->resyncs_total++;
    if ((rc = dr_etcd_txn_new(&t)) < 0)
        return rc;
    for (int attempt = 0;; attempt++) {
        dr_etcd_status ss;
        if ((rc = dr_etcd_status_get(f->src, &ss)) < 0)
            break;
        int64_t rev = ss.header.revision, copied = 0, deleted = 0;
        int64_t t0 = dr_mono_ms();
        dr_info("resync of '%s' at source revision %lld", f->o->name, (long long)rev);
        if (f->o->n_prefixes == 0) {
            rc = resync_range(f, NULL, NULL, rev, t, &copied, &deleted);
        } else {
            for (size_t i = 0; i < f->o->n_prefixes && rc == 0; i++)
                rc = resync_range(f, f->o->prefixes[i],
                                  f->o->dest_prefix ? f->o->dest_prefix : f->o->prefixes[i], rev, t,
                                  &copied, &deleted);
        }
        if (rc == 0)
            rc = drain_unordered(f);
        if (rc == DR_ECOMPACTED && attempt < 10) {
            /* the source compacted under the copy: start again at a newer revision */
            dr_warn("source compacted during the resync; starting it again");
            drain_unordered(f);
            dr_etcd_txn_reset(t);
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = write_cursor(f, rev);
        if (rc == 0) {
            f->st->applied_revision = rev;
            dr_info("resync done at revision %lld: %lld keys written, %lld deleted, %lld ms",
                    (long long)rev, (long long)copied, (long long)deleted,
                    (long long)(dr_mono_ms() - t0));
        }
        break;
    }
    dr_etcd_txn_free(t);
    return rc;
}
