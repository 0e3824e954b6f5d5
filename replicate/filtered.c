/*
 * Filtered mode: copy the keys under the chosen prefixes to a target that has other writers.
 *
 * The cursor key /drd/replicate/<name>/revision on the target holds the last source revision
 * whose effects are on the target. Every transaction carries source revisions [a, b] whole and
 * also writes cursor = b, guarded by value(cursor) == the previous transaction's b. So a crash at
 * any moment leaves the cursor exactly at a revision boundary that is fully applied: the next run
 * resumes from cursor+1 and nothing is lost or applied twice. The guard chain also orders the
 * pipelined transactions (a refused one is resent after its predecessor).
 *
 * The batches in flight live in a ring whose states (B_FREE/INFLIGHT/OK/RETRY) are drawn in
 * filtered_int.h. Resync (first run, or when the source compacted past the cursor) is resync.c.
 *
 * A revision with more changes than fit in one transaction is applied in chunks after everything
 * before it, the last chunk writing the cursor: replaying a partly applied revision after a crash
 * is harmless because puts and deletes of the same values are idempotent here (no revision
 * identity to keep, unlike exact mode).
 *
 * Must never touch target keys outside the mapped prefixes, nor under /drd/replicate/ except its
 * own cursor.
 */
#include "filtered_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- streaming ---- */

static fbatch *at(fs *f, size_t i)
{
    return &f->ring[(f->head + i) % f->cap];
}

static uint64_t fnv(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h | 1; /* 0 marks an empty slot */
}

static void keyset_clear(fs *f)
{
    if (f->keyset_n)
        memset(f->keyset, 0, f->keyset_cap * sizeof *f->keyset);
    f->keyset_n = 0;
}

/* 1 if the key may already be in the batch (hash match: conservative), else add it. */
static int keyset_seen(fs *f, uint64_t h)
{
    if (f->keyset_n * 2 >= f->keyset_cap)
        return 1; /* full enough: close the batch */
    size_t m = f->keyset_cap - 1;
    for (size_t i = h & m;; i = (i + 1) & m) {
        if (f->keyset[i] == h)
            return 1;
        if (f->keyset[i] == 0) {
            f->keyset[i] = h;
            f->keyset_n++;
            return 0;
        }
    }
}

static int cursor_ops(fs *f, dr_etcd_txn *t, int64_t prev, int64_t last)
{
    char v[32];
    int n = snprintf(v, sizeof v, "%lld", (long long)prev);
    int rc = dr_etcd_txn_compare_value(t, f->ck, f->ckl, DR_CMP_EQUAL, v, (size_t)n);
    n = snprintf(v, sizeof v, "%lld", (long long)last);
    if (rc == 0)
        rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, f->ck, f->ckl, v, (size_t)n, 0);
    if (rc == 0)
        rc = dr_etcd_txn_get(t, DR_TXN_FAILURE, f->ck, f->ckl);
    return rc;
}

static int cursor_moved(fs *f, int64_t cur)
{
    return dr_error_set(DR_EDIVERGED,
                        "the cursor key %s on the target was changed by someone else (now %lld): "
                        "is another drd running with --name %s?",
                        f->ck, (long long)cur, f->o->name);
}

static int complete_one(fs *f, int64_t wait_ms)
{
    void *user = NULL;
    int trc = 0;
    dr_etcd_txn_res res;
    int rc = dr_etcd_pipe_next(f->pipe, wait_ms, &user, &trc, &res);
    if (rc == DR_ETIMEOUT || rc == DR_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    fbatch *b = user;
    if (trc < 0)
        return trc;
    if (res.succeeded) {
        b->state = B_OK;
        f->st->txns_total++;
    } else {
        dr_etcd_kv tmp;
        const dr_etcd_kv *kv = dr_etcd_txn_res_kv(&res, 0, &tmp);
        int64_t cur = -1;
        if (kv) {
            char v[32];
            size_t n = kv->value_len < sizeof v - 1 ? kv->value_len : sizeof v - 1;
            memcpy(v, kv->value, n);
            v[n] = 0;
            if (dr_parse_i64(v, "cursor", &cur) < 0)
                cur = -1;
        }
        if (cur == b->last_rev) {
            b->state = B_OK; /* already applied by an earlier send */
        } else if (b->after_pred) {
            dr_etcd_txn_res_free(&res);
            return cursor_moved(f, cur);
        } else {
            b->state = B_RETRY;
            f->st->retries_total++;
        }
    }
    dr_etcd_txn_res_free(&res);
    while (f->count && at(f, 0)->state == B_OK) {
        fbatch *h = at(f, 0);
        f->confirmed = h->last_rev;
        f->st->applied_revision = h->last_rev;
        f->st->events_total += (int64_t)h->nevents;
        f->last_cursor_write_ms = dr_mono_ms();
        h->state = B_FREE;
        f->head = (f->head + 1) % f->cap;
        f->count--;
    }
    for (size_t i = 0; i < f->count; i++) {
        fbatch *c = at(f, i);
        if (c->state != B_RETRY || (i > 0 && at(f, i - 1)->state != B_INFLIGHT))
            break;
        c->state = B_INFLIGHT;
        c->after_pred = i == 0;
        if ((rc = dr_etcd_pipe_submit(f->pipe, c->txn, c)) < 0)
            return rc;
    }
    return 0;
}

static int drain(fs *f)
{
    int rc = 0;
    while (dr_etcd_pipe_inflight(f->pipe) > 0 && rc == 0)
        rc = complete_one(f, 1000);
    return rc;
}

/* Ops of one revision after mapping, into t (which must have room). */
static int add_rev_ops(fs *f, dr_etcd_txn *t, const evcur *c, size_t from, size_t to)
{
    int rc = 0;
    for (size_t i = from; i < to && rc == 0; i++) {
        const dr_etcd_kv *kv = &c->evs[i]->kv;
        int m = repl_map_key(f->o, kv->key, kv->key_len, &f->kbuf);
        if (m < 0)
            return dr_error_set(DR_ENOMEM, "out of memory");
        if (!m)
            continue;
        if (c->evs[i]->type == DR_EV_PUT) {
            if (kv->lease && (rc = leases_ensure(f->ls, kv->lease)) < 0)
                break;
            rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, f->kbuf.data, f->kbuf.len, kv->value,
                                 kv->value_len, kv->lease);
        } else {
            rc = dr_etcd_txn_delete(t, DR_TXN_SUCCESS, f->kbuf.data, f->kbuf.len, NULL, 0);
        }
    }
    return rc;
}

/* Count the replicated ops of the current revision and their keys' and values' bytes; when they
 * fit in a transaction, also record their keys and set *dup when one may already be in the batch
 * (etcd refuses a key twice). */
static int rev_ops(fs *f, const evcur *c, size_t *n, size_t *bytes, int *dup)
{
    *n = 0;
    *bytes = 0;
    *dup = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < c->n_evs; i++) {
            const dr_etcd_kv *kv = &c->evs[i]->kv;
            int m = repl_map_key(f->o, kv->key, kv->key_len, &f->kbuf);
            if (m < 0)
                return dr_error_set(DR_ENOMEM, "out of memory");
            if (!m)
                continue;
            if (pass == 0) {
                (*n)++;
                *bytes += f->kbuf.len + c->evs[i]->kv.value_len;
            } else if (keyset_seen(f, fnv(f->kbuf.data, f->kbuf.len)))
                *dup = 1;
        }
        if (*n + 1 > (size_t)f->o->max_txn_ops)
            return 0; /* applied alone, in chunks: no need for the key set */
    }
    return 0;
}

/* Apply one revision too large for a transaction, in chunks, after all before it. */
static int apply_large(fs *f, const evcur *c)
{
    int rc = drain(f);
    dr_etcd_txn *t = NULL;
    if (rc == 0)
        rc = dr_etcd_txn_new(&t);
    size_t per = (size_t)f->o->max_txn_ops - 1;
    for (size_t from = 0, to; rc == 0 && from < c->n_evs; from = to) {
        size_t bytes = 0;
        for (to = from; to < c->n_evs && to - from < per; to++) {
            const dr_etcd_kv *kv = &c->evs[to]->kv;
            bytes += kv->key_len + kv->value_len;
            if (to > from && bytes > TXN_BYTES)
                break;
        }
        dr_etcd_txn_reset(t);
        if ((rc = add_rev_ops(f, t, c, from, to)) < 0)
            break;
        if (to == c->n_evs && (rc = cursor_ops(f, t, f->chain, c->rev)) < 0)
            break;
        dr_etcd_txn_res res;
        if ((rc = dr_etcd_txn_do(f->tgt, t, &res)) < 0)
            break;
        int ok = res.succeeded;
        dr_etcd_txn_res_free(&res);
        if (!ok) {
            rc = cursor_moved(f, -1);
            break;
        }
        f->st->txns_total++;
    }
    if (rc == 0) {
        f->confirmed = f->chain = c->rev;
        f->st->applied_revision = c->rev;
        f->st->events_total += (int64_t)c->n_evs;
        f->last_cursor_write_ms = dr_mono_ms();
    }
    dr_etcd_txn_free(t);
    return rc;
}

static void watch_range(const dr_repl_opts *o, uint8_t *key, size_t *kl, uint8_t *end, size_t *el)
{
    if (o->n_prefixes == 0) {
        key[0] = 0;
        *kl = 1;
        end[0] = 0;
        *el = 1;
        return;
    }
    /* the span of all prefixes; events outside them are filtered here */
    const char *lo = o->prefixes[0];
    for (size_t i = 1; i < o->n_prefixes; i++)
        if (strcmp(o->prefixes[i], lo) < 0)
            lo = o->prefixes[i];
    *kl = strlen(lo);
    memcpy(key, lo, *kl);
    *el = 0;
    for (size_t i = 0; i < o->n_prefixes; i++) {
        uint8_t e[512];
        size_t l;
        dr_etcd_prefix_end(o->prefixes[i], strlen(o->prefixes[i]), e, &l);
        if (*el == 0 || repl_kv_cmp(e, l, end, *el) > 0) {
            memcpy(end, e, l);
            *el = l;
        }
    }
}

int repl_run_filtered(const dr_repl_opts *o, dr_repl_stats *st, repl_head *head, dr_etcd *src,
                      dr_etcd *tgt, int first)
{
    (void)first;
    int rc = 0, reader_on = 0, have = 0;
    fs f = {.o = o, .st = st, .src = src, .tgt = tgt};
    reader rd;
    evcur c = {0};
    dr_etcd_txn *build = NULL;
    repl_cursor_key(o, f.ck, sizeof f.ck);
    f.ckl = strlen(f.ck);
    f.cap = (size_t)o->window;
    f.keyset_cap = 1;
    while (f.keyset_cap < (size_t)o->max_txn_ops * 4)
        f.keyset_cap *= 2;
    f.ring = calloc(f.cap, sizeof *f.ring);
    f.keyset = calloc(f.keyset_cap, sizeof *f.keyset);
    if (!f.ring || !f.keyset) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f.cap && rc == 0; i++)
        rc = dr_etcd_txn_new(&f.ring[i].txn);
    if (rc < 0 || (rc = dr_etcd_pipe_new(tgt, &f.pipe)) < 0 ||
        (rc = leases_new(&f.ls, src, tgt, st)) < 0)
        goto out;
    dr_etcd_status ss;
    if ((rc = dr_etcd_status_get(src, &ss)) < 0)
        goto out;
    int64_t s0 = ss.header.revision;
    repl_stat_max(&st->source_revision, s0);
    int64_t cur = 0;
    rc = repl_read_cursor(o, tgt, &cur);
    if (rc < 0)
        goto out;
    if (rc == 1 && cur > s0) {
        rc = dr_error_set(DR_EDIVERGED,
                          "the cursor %s says revision %lld, but the source is only at %lld: "
                          "is this the same source? delete the cursor key to start over",
                          f.ck, (long long)cur, (long long)s0);
        goto out;
    }
    if (rc == 0) {
        if ((rc = repl_resync(&f)) < 0)
            goto out;
    } else {
        f.confirmed = f.chain = cur;
        st->applied_revision = cur;
        int64_t cs = 0;
        if ((rc = repl_compact_revision(src, &cs)) < 0)
            goto out;
        if (cs > cur) {
            dr_warn("the source compacted past the cursor (%lld < compact revision %lld): resync",
                    (long long)cur, (long long)cs);
            if ((rc = repl_resync(&f)) < 0)
                goto out;
        }
    }
    uint8_t wkey[512], wend[512];
    size_t wkl, wel;
    /* Skipping ahead on a progress notification (revisions none of our keys changed in) is safe
     * only where etcd orders it after the events; elsewhere the whole keyspace is watched, so
     * that every revision arrives as events and the cursor moves on events alone. */
    int trust_progress = repl_progress_trusted(ss.version);
    if (trust_progress)
        watch_range(o, wkey, &wkl, wend, &wel);
    else {
        dr_info("etcd %s on the source answers progress requests out of order with events "
                "(before 3.4.31 / 3.5.13): watching every key, the cursor moves on events only",
                ss.version);
        wkey[0] = wend[0] = 0;
        wkl = wel = 1;
    }
    for (;;) {
        int64_t crev = 0;
        rc = reader_start(&rd, src, wkey, wkl, wend, wel, f.confirmed + 1, st, head, &crev);
        if (rc != DR_ECOMPACTED)
            break;
        dr_warn("the source compacted past the cursor (%lld < compact revision %lld): resync",
                (long long)f.confirmed, (long long)crev);
        reader_stop(&rd);
        if ((rc = repl_resync(&f)) < 0)
            goto out;
    }
    if (rc < 0) {
        reader_stop(&rd);
        goto out;
    }
    reader_on = 1;
    st->state = DR_REPL_STREAMING;
    dr_info("filtered replication '%s' streaming from revision %lld", o->name,
            (long long)f.confirmed + 1);
    if ((rc = dr_etcd_txn_new(&build)) < 0)
        goto out;
    int64_t processed = f.confirmed; /* every source revision <= processed is in a batch */
    for (;;) {
        if (o->stop && *o->stop) {
            rc = drain(&f);
            break;
        }
        /* build one batch from as many whole revisions as fit */
        if (f.count < f.cap) {
            fbatch *b = at(&f, f.count);
            size_t nops = 0, nev = 0;
            int64_t first_rev = 0, arrival = 0;
            dr_etcd_txn_reset(b->txn);
            keyset_clear(&f);
            for (;;) {
                if (!have) {
                    rc = evcur_next(&c, &rd, 0);
                    if (rc < 0)
                        goto out;
                    have = rc;
                    rc = 0;
                    if (!have)
                        break;
                }
                if (c.rev <= processed) { /* replayed history we already hold */
                    have = 0;
                    continue;
                }
                size_t n = 0, rb = 0;
                int dup = 0;
                if ((rc = rev_ops(&f, &c, &n, &rb, &dup)) < 0)
                    goto out;
                if (n + 1 > (size_t)o->max_txn_ops) {
                    if (nev)
                        break; /* close this batch first */
                    if ((rc = apply_large(&f, &c)) < 0)
                        goto out;
                    processed = c.rev;
                    have = 0;
                    continue;
                }
                if (nev && (dup || nops + n + 1 > (size_t)o->max_txn_ops ||
                            dr_etcd_txn_bytes(b->txn) + rb > TXN_BYTES))
                    break;
                if ((rc = add_rev_ops(&f, b->txn, &c, 0, c.n_evs)) < 0)
                    goto out;
                if (!first_rev) {
                    first_rev = c.rev;
                    arrival = c.arrival_ms;
                }
                nops += n;
                nev += c.n_evs;
                processed = c.rev;
                have = 0;
            }
            if (trust_progress && !have && c.progress_rev > processed && f.count == 0 && nev == 0)
                processed = c.progress_rev; /* nothing pending below the progress mark */
            int64_t now = dr_mono_ms();
            int want_cursor =
                processed > f.chain && (nops > 0 || now - f.last_cursor_write_ms >= 5000 ||
                                        (o->until_caught_up && processed >= s0));
            if (want_cursor) {
                if (!first_rev)
                    arrival = 0;
                if ((rc = cursor_ops(&f, b->txn, f.chain, processed)) < 0)
                    goto out;
                b->first_rev = first_rev;
                b->last_rev = processed;
                b->prev_cursor = f.chain;
                b->nevents = nev;
                b->arrival_ms = arrival;
                b->state = B_INFLIGHT;
                b->after_pred = f.count == 0;
                f.count++;
                f.chain = processed;
                if ((rc = dr_etcd_pipe_submit(f.pipe, b->txn, b)) < 0)
                    goto out;
            }
        }
        repl_stat_max(&st->source_revision, c.progress_rev);
        if (f.count == 0 && !have && processed > st->applied_revision && processed == f.chain)
            st->applied_revision = processed;
        int64_t oldest = f.count ? at(&f, 0)->arrival_ms : 0;
        if (!oldest)
            oldest = have ? c.arrival_ms : reader_oldest_ms(&rd);
        repl_set_lag(st, oldest);
        if (o->until_caught_up && f.count == 0 && !have && f.confirmed >= s0) {
            rc = 0;
            break;
        }
        if (dr_etcd_pipe_inflight(f.pipe) > 0) {
            if ((rc = complete_one(&f, 100)) < 0)
                goto out;
        } else if (!have) {
            rc = evcur_next(&c, &rd, 100);
            if (rc < 0)
                goto out;
            have = rc;
            rc = 0;
        }
    }
out : {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", dr_error_msg());
    if (reader_on)
        reader_stop(&rd);
    dr_etcd_pipe_free(f.pipe);
    if (rc < 0)
        dr_error_set(rc, "%s", msg);
}
    evcur_free(&c);
    leases_free(f.ls);
    dr_etcd_txn_free(build);
    for (size_t i = 0; f.ring && i < f.cap; i++)
        dr_etcd_txn_free(f.ring[i].txn);
    free(f.ring);
    free(f.keyset);
    dr_buf_free(&f.kbuf);
    return rc;
}
