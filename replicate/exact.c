/*
 * Exact mode: every source revision R becomes exactly one target transaction, and the target's
 * header.revision after it must be R. The target's revision is the cursor.
 *
 * Pipelining. Up to `window` transactions are in flight; etcd may apply them in any order, so each
 * carries a guard that holds only when the target is exactly at R-1:
 *   self  "R not applied yet": first event of R is a put of k -> mod(k) < R;
 *                              a delete of k -> mod(k) > 0 (k still exists)
 *   prev  "R-1 applied" (only when R-1 was not yet confirmed at send time): first event of R-1 is
 *         a put of k' -> mod(k') == R-1; a delete of k' -> mod(k') == 0
 * A transaction whose guard fails writes nothing and bumps no revision; it is resent once its
 * predecessor is confirmed. A guard that fails although the predecessor was confirmed, or a
 * revision other than R, means someone else wrote to the standby: alarm, never overwrite.
 *
 * Batch states: FREE -> INFLIGHT -> OK (confirmed when all before it are OK) | RETRY -> INFLIGHT.
 *
 * Must never apply a revision out of order, never split a revision, never write to the source.
 */
#include "repl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B_FREE = 0, B_INFLIGHT, B_OK, B_RETRY };

typedef struct batch {
    int64_t rev;
    dr_etcd_txn *txn;
    int state;
    int after_pred; /* sent when R-1 was already confirmed: a guard failure is a divergence */
    int spec;       /* speculative resends while R-1 was still in flight */
    int64_t arrival_ms;
    size_t nevents;
} batch;

typedef struct xs {
    const dr_repl_opts *o;
    dr_repl_stats *st;
    dr_etcd *src, *tgt;
    dr_etcd_pipe *pipe;
    leases *ls;
    batch *ring;
    size_t cap, head, count;
    int64_t confirmed; /* every revision <= confirmed is applied on the target */
    dr_buf prev_key;   /* first event of the last built revision, for the next one's guard */
    int prev_put;
    int64_t prev_rev;
    /* Effective window, adapted like a congestion window: etcd applies concurrent Txn calls in
     * whatever order its handlers reach raft, and every refused guard costs a raft round, so the
     * window shrinks by half on a refusal and grows by one after a window's worth of clean
     * confirmations. */
    size_t win;
    size_t clean;
} xs;

static const char reseed_hint[] =
    "reseed the standby: stop its etcd, move its data dir away, run 'drd replicate seed "
    "--source <primary> --data-dir <dir> --name <member> --initial-cluster <c> "
    "--initial-advertise-peer-urls <u>' and start the standby etcd on <dir>";

static batch *at(xs *x, size_t i)
{
    return &x->ring[(x->head + i) % x->cap];
}

static int diverged(xs *x, const char *fmt, ...) DR_PRINTF(2, 3);
static int diverged(xs *x, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return dr_error_set(DR_EDIVERGED, "foreign write on the standby %s: %s; %s",
                        dr_etcd_endpoint(x->tgt), what, reseed_hint);
}

static int build(xs *x, dr_etcd_txn *t, int64_t rev, const dr_etcd_event **evs, size_t n)
{
    int rc = 0;
    dr_etcd_txn_reset(t);
    const dr_etcd_event *f = evs[0];
    if (f->type == DR_EV_PUT)
        rc = dr_etcd_txn_compare(t, f->kv.key, f->kv.key_len, DR_CMP_MOD, DR_CMP_LESS, rev);
    else
        rc = dr_etcd_txn_compare(t, f->kv.key, f->kv.key_len, DR_CMP_MOD, DR_CMP_GREATER, 0);
    if (rc == 0 && x->prev_rev == rev - 1 && x->confirmed < rev - 1)
        rc = dr_etcd_txn_compare(t, x->prev_key.data, x->prev_key.len, DR_CMP_MOD, DR_CMP_EQUAL,
                                 x->prev_put ? rev - 1 : 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const dr_etcd_kv *kv = &evs[i]->kv;
        if (evs[i]->type == DR_EV_PUT) {
            if (kv->lease && (rc = leases_ensure(x->ls, kv->lease)) < 0)
                break;
            rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, kv->key, kv->key_len, kv->value, kv->value_len,
                                 kv->lease);
        } else {
            rc = dr_etcd_txn_delete(t, DR_TXN_SUCCESS, kv->key, kv->key_len, NULL, 0);
        }
    }
    if (rc == 0) {
        x->prev_key.len = 0;
        rc = dr_buf_append(&x->prev_key, f->kv.key, f->kv.key_len);
        x->prev_put = f->type == DR_EV_PUT;
        x->prev_rev = rev;
    }
    return rc;
}

static int too_many(xs *x, int64_t rev, size_t n, int refused_by_server)
{
    char limit[96];
    if (refused_by_server)
        snprintf(limit, sizeof limit, "the standby refused it as too many operations");
    else
        snprintf(limit, sizeof limit, "more than drd's --max-txn-ops %lld",
                 (long long)x->o->max_txn_ops);
    return dr_error_set(DR_ETOOMANYOPS,
                        "source revision %lld changed %zu keys in one transaction and %s; exact "
                        "mode never splits a revision: restart the standby etcd with "
                        "--max-txn-ops=%zu and run drd with --max-txn-ops %zu",
                        (long long)rev, n, limit, n, n);
}

static int submit(xs *x, batch *b, int after_pred)
{
    b->after_pred = after_pred;
    b->state = B_INFLIGHT;
    return dr_etcd_pipe_submit(x->pipe, b->txn, b);
}

/* Process one completion (waiting up to wait_ms). 0 also on timeout. */
static int complete_one(xs *x, int64_t wait_ms)
{
    void *user = NULL;
    int trc = 0;
    dr_etcd_txn_res res;
    int rc = dr_etcd_pipe_next(x->pipe, wait_ms, &user, &trc, &res);
    if (rc == DR_ETIMEOUT || rc == DR_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    batch *b = user;
    if (trc < 0) {
        if (trc == DR_ETOOMANYOPS)
            return too_many(x, b->rev, b->nevents, 1);
        return trc; /* unknown outcome: the session restarts from the target's revision */
    }
    int succeeded = res.succeeded;
    int64_t hrev = res.header.revision;
    dr_etcd_txn_res_free(&res);
    if (succeeded) {
        if (hrev != b->rev)
            return diverged(x, "applying source revision %lld gave standby revision %lld",
                            (long long)b->rev, (long long)hrev);
        b->state = B_OK;
        x->st->txns_total++;
    } else {
        if (b->after_pred)
            return diverged(x, "the guard of source revision %lld failed at standby revision %lld",
                            (long long)b->rev, (long long)hrev);
        b->state = B_RETRY;
        x->st->retries_total++;
        x->win = x->win > 1 ? x->win / 2 : 1;
        x->clean = 0;
    }
    /* confirm from the head */
    while (x->count && at(x, 0)->state == B_OK) {
        batch *h = at(x, 0);
        x->confirmed = h->rev;
        x->st->applied_revision = h->rev;
        if (++x->clean >= x->win && x->win < x->cap) {
            x->win++;
            x->clean = 0;
        }
        x->st->events_total += (int64_t)h->nevents;
        h->state = B_FREE;
        x->head = (x->head + 1) % x->cap;
        x->count--;
    }
    /* Resend refused transactions: the head at once (its predecessor is confirmed), and one
     * whose predecessor is in flight speculatively (it is most likely applied by the time the
     * resend arrives), a few times at most before waiting for the predecessor's answer. */
    for (size_t i = 0; i < x->count; i++) {
        batch *c = at(x, i);
        if (c->state != B_RETRY)
            continue;
        if (i > 0 && (at(x, i - 1)->state != B_INFLIGHT || c->spec >= 3))
            continue;
        c->spec = i > 0 ? c->spec + 1 : 0;
        if ((rc = submit(x, c, i == 0)) < 0)
            return rc;
    }
    return 0;
}

static int drain(xs *x)
{
    int rc = 0;
    while (dr_etcd_pipe_inflight(x->pipe) > 0 && rc == 0)
        rc = complete_one(x, 1000);
    return rc;
}

/* A revision larger than max_txn_ops: runs of deleted keys in key order become one DeleteRange
 * each when the target holds exactly those keys in that range (so the same keys go); applied
 * alone, synchronously, after everything before it. */
static int apply_large(xs *x, int64_t rev, const dr_etcd_event **evs, size_t n)
{
    int rc = drain(x);
    if (rc < 0)
        return rc;
    if (x->confirmed != rev - 1)
        return dr_error_set(DR_EPROTO, "internal: large revision %lld not next (at %lld)",
                            (long long)rev, (long long)x->confirmed);
    dr_etcd_txn *t = NULL;
    int64_t *expect = NULL; /* expected deleted count per op, -1 for puts */
    size_t nops = 0;
    if ((rc = dr_etcd_txn_new(&t)) < 0)
        return rc;
    expect = calloc(n, sizeof *expect);
    if (!expect) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    const dr_etcd_event *f = evs[0];
    rc = f->type == DR_EV_PUT
             ? dr_etcd_txn_compare(t, f->kv.key, f->kv.key_len, DR_CMP_MOD, DR_CMP_LESS, rev)
             : dr_etcd_txn_compare(t, f->kv.key, f->kv.key_len, DR_CMP_MOD, DR_CMP_GREATER, 0);
    for (size_t i = 0; i < n && rc == 0;) {
        const dr_etcd_kv *kv = &evs[i]->kv;
        if (evs[i]->type == DR_EV_PUT) {
            if (kv->lease && (rc = leases_ensure(x->ls, kv->lease)) < 0)
                break;
            rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, kv->key, kv->key_len, kv->value, kv->value_len,
                                 kv->lease);
            expect[nops++] = -1;
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && evs[j]->type == DR_EV_DELETE) {
            const dr_etcd_kv *a = &evs[j - 1]->kv, *b = &evs[j]->kv;
            size_t m = a->key_len < b->key_len ? a->key_len : b->key_len;
            int c = memcmp(a->key, b->key, m);
            if (c > 0 || (c == 0 && a->key_len >= b->key_len))
                break;
            j++;
        }
        const dr_etcd_kv *last = &evs[j - 1]->kv;
        int use_range = 0;
        uint8_t *end = NULL;
        if (j - i >= 2) {
            end = malloc(last->key_len + 1);
            if (!end) {
                rc = dr_error_set(DR_ENOMEM, "out of memory");
                break;
            }
            memcpy(end, last->key, last->key_len);
            end[last->key_len] = 0;
            dr_etcd_range_req q = {.key = kv->key,
                                   .key_len = kv->key_len,
                                   .range_end = end,
                                   .range_end_len = last->key_len + 1,
                                   .count_only = 1};
            dr_etcd_range_res rr;
            rc = dr_etcd_range(x->tgt, &q, &rr);
            if (rc == 0) {
                use_range = rr.count == (int64_t)(j - i);
                dr_etcd_range_res_free(&rr);
            }
        }
        if (rc == 0 && use_range) {
            rc =
                dr_etcd_txn_delete(t, DR_TXN_SUCCESS, kv->key, kv->key_len, end, last->key_len + 1);
            expect[nops++] = (int64_t)(j - i);
            i = j;
        } else if (rc == 0) {
            rc = dr_etcd_txn_delete(t, DR_TXN_SUCCESS, kv->key, kv->key_len, NULL, 0);
            expect[nops++] = 1;
            i++;
        }
        free(end);
    }
    if (rc < 0)
        goto out;
    if ((int64_t)dr_etcd_txn_nops(t) > x->o->max_txn_ops) {
        rc = too_many(x, rev, dr_etcd_txn_nops(t), 0);
        goto out;
    }
    dr_etcd_txn_res res;
    rc = dr_etcd_txn_do(x->tgt, t, &res);
    if (rc == DR_ETOOMANYOPS)
        rc = too_many(x, rev, dr_etcd_txn_nops(t), 1);
    if (rc < 0)
        goto out;
    if (!res.succeeded || res.header.revision != rev) {
        int64_t h = res.header.revision;
        dr_etcd_txn_res_free(&res);
        rc = diverged(x, "large source revision %lld was refused or gave standby revision %lld",
                      (long long)rev, (long long)h);
        goto out;
    }
    for (size_t k = 0; k < nops; k++) {
        if (expect[k] > 0 && dr_etcd_txn_res_deleted(&res, k) != expect[k]) {
            int64_t got = dr_etcd_txn_res_deleted(&res, k);
            dr_etcd_txn_res_free(&res);
            rc = diverged(x, "a range delete of %lld keys deleted %lld", (long long)expect[k],
                          (long long)got);
            goto out;
        }
    }
    dr_etcd_txn_res_free(&res);
    x->confirmed = rev;
    x->st->applied_revision = rev;
    x->st->events_total += (int64_t)n;
    x->st->txns_total++;
    x->prev_key.len = 0;
    rc = dr_buf_append(&x->prev_key, f->kv.key, f->kv.key_len);
    x->prev_put = f->type == DR_EV_PUT;
    x->prev_rev = rev;
out:
    free(expect);
    dr_etcd_txn_free(t);
    return rc;
}

/* Does the target hold exactly the source's state at revision t? */
static int check_seeded(xs *x, int64_t t, int64_t s)
{
    if (t > s)
        return dr_error_set(DR_EDIVERGED,
                            "the standby %s is at revision %lld, ahead of the source (%lld): it "
                            "was written to by someone else or seeded from another cluster; %s",
                            dr_etcd_endpoint(x->tgt), (long long)t, (long long)s, reseed_hint);
    if (t <= 1 && s > 1)
        return dr_error_set(DR_ENOTSEEDED,
                            "the standby %s is not seeded from the source (it is a fresh etcd at "
                            "revision %lld, the source is at %lld); %s",
                            dr_etcd_endpoint(x->tgt), (long long)t, (long long)s, reseed_hint);
    int64_t cs = 0, ct = 0;
    int rc = repl_compact_revision(x->src, &cs);
    if (rc == 0)
        rc = repl_compact_revision(x->tgt, &ct);
    if (rc < 0)
        return rc;
    if (cs > t)
        return dr_error_set(DR_ECOMPACTED,
                            "the source compacted past the standby's revision %lld (compact "
                            "revision %lld): the revisions in between are gone; %s",
                            (long long)t, (long long)cs, reseed_hint);
    if (cs > ct) {
        /* mirror the source's compaction first, so the two hashes cover the same history */
        if ((rc = dr_etcd_compact(x->tgt, cs, 1)) < 0)
            return rc;
        ct = cs;
    }
    uint32_t hs = 0, ht = 0;
    int64_t hcs = 0, hct = 0;
    if ((rc = dr_etcd_hashkv(x->src, t, &hs, &hcs, NULL)) < 0 ||
        (rc = dr_etcd_hashkv(x->tgt, t, &ht, &hct, NULL)) < 0)
        return rc;
    if (hcs != hct) {
        dr_warn("cannot compare HashKV at revision %lld: compact revisions differ (source %lld, "
                "standby %lld)",
                (long long)t, (long long)hcs, (long long)hct);
        return 0;
    }
    if (hs != ht && t > 1 && t - 1 >= hcs) {
        /* equal one revision earlier: the standby's last revision was written by someone else */
        uint32_t ps = 0, pt = 0;
        if ((rc = dr_etcd_hashkv(x->src, t - 1, &ps, NULL, NULL)) < 0 ||
            (rc = dr_etcd_hashkv(x->tgt, t - 1, &pt, NULL, NULL)) < 0)
            return rc;
        if (ps == pt)
            return dr_error_set(DR_EDIVERGED,
                                "foreign write on the standby %s: its revision %lld differs from "
                                "the source's (HashKV %08x vs %08x) although revision %lld "
                                "matches; %s",
                                dr_etcd_endpoint(x->tgt), (long long)t, ht, hs, (long long)t - 1,
                                reseed_hint);
    }
    if (hs != ht) {
        if (t <= 1)
            return dr_error_set(DR_ENOTSEEDED,
                                "the standby %s is not seeded from the source (it is empty, the "
                                "source is at revision %lld); %s",
                                dr_etcd_endpoint(x->tgt), (long long)s, reseed_hint);
        return dr_error_set(DR_ENOTSEEDED,
                            "the standby %s does not match the source at its revision %lld "
                            "(HashKV %08x vs %08x): it was not seeded from this source or was "
                            "written to; %s",
                            dr_etcd_endpoint(x->tgt), (long long)t, ht, hs, reseed_hint);
    }
    return 0;
}

int repl_run_exact(const dr_repl_opts *o, dr_repl_stats *st, dr_etcd *src, dr_etcd *tgt, int first)
{
    (void)first;
    int rc = 0;
    xs x = {.o = o, .st = st, .src = src, .tgt = tgt};
    reader rd;
    int reader_on = 0;
    evcur c = {0};
    dr_etcd_status ss, ts;
    if ((rc = dr_etcd_status_get(tgt, &ts)) < 0 || (rc = dr_etcd_status_get(src, &ss)) < 0)
        return rc;
    int64_t t = ts.header.revision, s0 = ss.header.revision;
    st->source_revision = s0;
    if ((rc = check_seeded(&x, t, s0)) < 0)
        return rc;
    x.confirmed = t;
    st->applied_revision = t;
    x.cap = (size_t)o->window;
    x.win = x.cap < 4 ? x.cap : 4;
    x.ring = calloc(x.cap, sizeof *x.ring);
    if (!x.ring)
        return dr_error_set(DR_ENOMEM, "out of memory");
    for (size_t i = 0; i < x.cap && rc == 0; i++)
        rc = dr_etcd_txn_new(&x.ring[i].txn);
    if (rc < 0 || (rc = dr_etcd_pipe_new(tgt, &x.pipe)) < 0 ||
        (rc = leases_new(&x.ls, src, tgt, st)) < 0 || (rc = leases_adopt_all(x.ls)) < 0)
        goto out;
    static const uint8_t zero = 0;
    int64_t crev = 0;
    rc = reader_start(&rd, src, &zero, 1, &zero, 1, t + 1, st, &crev);
    if (rc == DR_ECOMPACTED)
        rc = dr_error_set(DR_ECOMPACTED,
                          "the source compacted past the standby's revision %lld (compact "
                          "revision %lld): the revisions in between are gone; %s",
                          (long long)t, (long long)crev, reseed_hint);
    if (rc < 0)
        goto out;
    reader_on = 1;
    st->state = DR_REPL_STREAMING;
    dr_info("exact replication streaming from revision %lld (source at %lld)", (long long)t + 1,
            (long long)s0);
    int have = 0;
    int64_t last_check = dr_mono_ms(), last_compact = 0, mirrored_compact = 0;
    for (;;) {
        if (o->stop && *o->stop) {
            rc = drain(&x);
            break;
        }
        /* fill the window */
        while (x.count < x.win) {
            if (!have) {
                rc = evcur_next(&c, &rd, 0);
                if (rc < 0)
                    goto out;
                have = rc;
                rc = 0;
                if (!have)
                    break;
            }
            int64_t next = x.confirmed + 1 + (int64_t)x.count;
            if (c.rev != next) {
                rc = dr_error_set(DR_EPROTO, "watch gave revision %lld where %lld was expected",
                                  (long long)c.rev, (long long)next);
                goto out;
            }
            if ((int64_t)c.n_evs > o->max_txn_ops) {
                if ((rc = apply_large(&x, c.rev, c.evs, c.n_evs)) < 0)
                    goto out;
                have = 0;
                continue;
            }
            batch *b = at(&x, x.count);
            if ((rc = build(&x, b->txn, c.rev, c.evs, c.n_evs)) < 0)
                goto out;
            b->rev = c.rev;
            b->spec = 0;
            b->nevents = c.n_evs;
            b->arrival_ms = c.arrival_ms;
            x.count++;
            if ((rc = submit(&x, b, x.count == 1)) < 0)
                goto out;
            have = 0;
        }
        if (c.progress_rev > st->source_revision)
            st->source_revision = c.progress_rev;
        int64_t oldest = x.count ? at(&x, 0)->arrival_ms : have ? c.arrival_ms : 0;
        if (!oldest)
            oldest = reader_oldest_ms(&rd);
        repl_set_lag(st, oldest);
        if (o->until_caught_up && x.confirmed >= s0 && x.count == 0) {
            rc = 0;
            break;
        }
        if (dr_etcd_pipe_inflight(x.pipe) > 0) {
            if ((rc = complete_one(&x, 100)) < 0)
                goto out;
        } else if (!have) {
            rc = evcur_next(&c, &rd, 100);
            if (rc < 0)
                goto out;
            have = rc;
            rc = 0;
        }
        int64_t now = dr_mono_ms();
        if (x.count == 0 && !have && now - last_check >= 1000) {
            /* idle: the standby's revision must be exactly what we applied */
            last_check = now;
            dr_etcd_status tsn;
            if ((rc = dr_etcd_status_get(tgt, &tsn)) < 0)
                goto out;
            if (tsn.header.revision != x.confirmed) {
                rc = diverged(&x, "the standby is at revision %lld but drd applied up to %lld",
                              (long long)tsn.header.revision, (long long)x.confirmed);
                goto out;
            }
        }
        if (now - last_compact >= 30000) {
            /* mirror the source's compaction so the standby's history does not grow forever */
            last_compact = now;
            int64_t cs = 0;
            if (repl_compact_revision(src, &cs) == 0 && cs > mirrored_compact &&
                cs <= x.confirmed) {
                if (dr_etcd_compact(tgt, cs, 0) == 0 || dr_error_code() == DR_ECOMPACTED)
                    mirrored_compact = cs;
                dr_error_clear();
            }
        }
    }
out:
    if (rc == DR_ECOMPACTED)
        rc = dr_error_set(DR_ECOMPACTED,
                          "the source compacted past the standby's revision %lld: the revisions "
                          "in between are gone (%s); %s",
                          (long long)x.confirmed, dr_error_msg(), reseed_hint);
    if (rc < 0) {
        /* keep the first error's message while tearing down */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        if (reader_on)
            reader_stop(&rd);
        dr_etcd_pipe_free(x.pipe);
        dr_error_set(rc, "%s", msg);
    } else {
        if (reader_on)
            reader_stop(&rd);
        dr_etcd_pipe_free(x.pipe);
    }
    x.pipe = NULL;
    evcur_free(&c);
    leases_free(x.ls);
    for (size_t i = 0; x.ring && i < x.cap; i++)
        dr_etcd_txn_free(x.ring[i].txn);
    free(x.ring);
    dr_buf_free(&x.prev_key);
    return rc;
}
