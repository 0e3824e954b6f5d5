/*
 * Exact mode: every source revision R becomes exactly one target transaction, and the target's
 * header.revision after it must be R. The target's revision is the cursor. The revisions are
 * applied by drd/lib/apply (chained requests that each apply whichever revision is next, since
 * etcd does not apply concurrent transactions in the order they were sent); this file checks the
 * standby at start, feeds the applier from the source's watch, applies revisions larger than
 * --max-txn-ops alone, mirrors leases and compaction, and turns the applier's DR_EDIVERGED into
 * the foreign-write alarm.
 *
 * Must never apply a revision out of order, never split a revision, never write to the source.
 */
#include "drd/lib/apply/apply.h"
#include "repl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHAIN = 8 /* requests in flight, and levels per request, at most */ };

typedef struct xs {
    const dr_repl_opts *o;
    dr_repl_stats *st;
    dr_etcd *src, *tgt;
    dr_apply *ap;
    leases *ls;
    int64_t ev0, tx0, rt0; /* the stats' counters when this session started */
    dr_apply_op *ops;
    size_t cap_ops;
} xs;

static const char reseed_hint[] =
    "reseed the standby: stop its etcd, move its data dir away, run 'drd replicate seed "
    "--source <primary> --data-dir <dir> --name <member> --initial-cluster <c> "
    "--initial-advertise-peer-urls <u>' and start the standby etcd on <dir>";

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

/* A foreign write on the standby may be its own promotion: a failover raised the epoch and
 * wrote the record there, naming the standby's cluster, before the record reached this session
 * through its source (the old primary). That is not divergence but a stale session: it stops as
 * the reader does for a record in the stream (DR_ESTALE). Anything else keeps rc and its message.
 */
static int promoted(xs *x, int rc)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", dr_error_msg());
    dr_etcd_status ts;
    dr_epoch te, se;
    if (dr_etcd_status_get(x->tgt, &ts) == 0 && dr_epoch_read_etcd(x->tgt, &te, NULL) == 0 &&
        dr_epoch_read_etcd(x->src, &se, NULL) == 0 && te.epoch > se.epoch &&
        te.cluster_id == ts.header.cluster_id) {
        char d[256];
        dr_epoch_describe(&te, d, sizeof d);
        return dr_error_set(DR_ESTALE,
                            "refusing to replicate: the standby %s was promoted (%s) while its "
                            "source %s holds epoch %lld\nHINT: the standby is the primary now; "
                            "see docs/runbooks.md",
                            dr_etcd_endpoint(x->tgt), d, dr_etcd_endpoint(x->src),
                            (long long)se.epoch);
    }
    dr_error_set(rc, "%s", msg);
    return rc;
}

/* The applier's DR_EDIVERGED is a foreign write on the standby. */
static int lib_rc(xs *x, int rc)
{
    if (rc == DR_EDIVERGED) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        return diverged(x, "%s", msg);
    }
    return rc;
}

static void sync_stats(xs *x)
{
    int64_t ev = 0, tx = 0, noop = 0;
    dr_apply_counts(x->ap, &ev, &tx, &noop);
    x->st->events_total = x->ev0 + ev;
    x->st->txns_total = x->tx0 + tx;
    x->st->retries_total = x->rt0 + noop;
    x->st->applied_revision = dr_apply_confirmed(x->ap);
}

/* The revision's events as the applier's operations (leases granted on the target first). 1 and
 * admitted, 0 when it must wait, or an error. */
static int admit(xs *x, int64_t rev, const dr_etcd_event **evs, size_t n, int64_t arrival_ms)
{
    if (n > x->cap_ops) {
        dr_apply_op *v = realloc(x->ops, n * sizeof *v);
        if (!v)
            return dr_error_set(DR_ENOMEM, "out of memory");
        x->ops = v;
        x->cap_ops = n;
    }
    for (size_t i = 0; i < n; i++) {
        const dr_etcd_kv *kv = &evs[i]->kv;
        int rc;
        if (evs[i]->type == DR_EV_PUT && kv->lease && (rc = leases_ensure(x->ls, kv->lease)) < 0)
            return rc;
        x->ops[i] = (dr_apply_op){.del = evs[i]->type != DR_EV_PUT,
                                  .key = kv->key,
                                  .key_len = kv->key_len,
                                  .value = kv->value,
                                  .value_len = kv->value_len,
                                  .lease = kv->lease};
    }
    return dr_apply_admit(x->ap, rev, x->ops, n, arrival_ms);
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

/* A revision larger than max_txn_ops: runs of deleted keys in key order become one DeleteRange
 * each when the target holds exactly those keys in that range (so the same keys go); applied
 * alone, synchronously, after everything before it. */
static int apply_large(xs *x, int64_t rev, const dr_etcd_event **evs, size_t n)
{
    int rc = lib_rc(x, dr_apply_drain(x->ap));
    if (rc < 0)
        return rc;
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
    if ((rc = dr_apply_skip(x->ap, rev)) < 0)
        goto out;
    x->st->applied_revision = rev;
    x->ev0 += (int64_t)n;
    x->tx0++;
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
    if (t <= ct) {
        /* t is the compact revision (seeded right after a compaction, or an idle source whose
         * compaction drd mirrored): HashKV refuses it as compacted, a Range at t still answers.
         * Compare key by key at t instead: values, create and mod revisions, versions, leases. */
        int64_t n = 0;
        rc = repl_compare(x->o, x->src, x->tgt, t, t, &n);
        if (rc == DR_EDIVERGED)
            return dr_error_set(DR_ENOTSEEDED,
                                "the standby %s does not match the source at its revision %lld, "
                                "the compact revision (compared key by key): %s; %s",
                                dr_etcd_endpoint(x->tgt), (long long)t, dr_error_msg(),
                                reseed_hint);
        if (rc == 0)
            dr_info("the standby matches the source at the compact revision %lld (%lld keys "
                    "compared key by key, as HashKV refuses that revision)",
                    (long long)t, (long long)n);
        return rc;
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
    if (hs != ht && t > 1 && t - 1 > hcs) { /* HashKV refuses the compact revision */
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

int repl_run_exact(const dr_repl_opts *o, dr_repl_stats *st, repl_head *head, dr_etcd *src,
                   dr_etcd *tgt, int first)
{
    (void)first;
    int rc = 0;
    xs xv = {.o = o, .st = st, .src = src, .tgt = tgt}, *x = &xv;
    x->ev0 = st->events_total;
    x->tx0 = st->txns_total;
    x->rt0 = st->retries_total;
    reader rd;
    int reader_on = 0;
    evcur c = {0};
    dr_etcd_status ss, ts;
    if ((rc = dr_etcd_status_get(tgt, &ts)) < 0 || (rc = dr_etcd_status_get(src, &ss)) < 0)
        goto out;
    int64_t t = ts.header.revision, s0 = ss.header.revision;
    repl_stat_max(&st->source_revision, s0);
    if ((rc = check_seeded(x, t, s0)) < 0)
        goto out;
    st->applied_revision = t;
    /* Every request in flight carries the levels from the next revision on, so that it applies
     * whichever comes next: more requests in flight need longer chains, and past about 8 the
     * standby's rate no longer grows here (docs/benchmarks.md). */
    size_t inflight = (size_t)o->window < CHAIN ? (size_t)o->window : CHAIN;
    if ((rc = dr_apply_new(tgt, t, o->max_txn_ops, inflight, &x->ap)) < 0 ||
        (rc = leases_new(&x->ls, src, tgt, st)) < 0 || (rc = leases_adopt_all(x->ls)) < 0)
        goto out;
    static const uint8_t zero = 0;
    int64_t crev = 0;
    rc = reader_start(&rd, src, &zero, 1, &zero, 1, t + 1, st, head, &crev);
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
            rc = lib_rc(x, dr_apply_drain(x->ap));
            sync_stats(x);
            break;
        }
        /* hand revisions to the applier while it takes them */
        for (;;) {
            if (!have) {
                if ((rc = evcur_next(&c, &rd, 0)) < 0)
                    goto out;
                if (!(have = rc))
                    break;
                rc = 0;
                if (c.rev != dr_apply_admitted(x->ap) + 1) {
                    rc = dr_error_set(DR_EPROTO, "watch gave revision %lld where %lld was expected",
                                      (long long)c.rev, (long long)dr_apply_admitted(x->ap) + 1);
                    goto out;
                }
            }
            if ((int64_t)c.n_evs > o->max_txn_ops) {
                if (dr_apply_confirmed(x->ap) < dr_apply_admitted(x->ap) ||
                    dr_apply_inflight(x->ap) > 0)
                    break; /* applied alone, after everything before it */
                if ((rc = apply_large(x, c.rev, c.evs, c.n_evs)) < 0)
                    goto out;
                have = 0;
                continue;
            }
            if ((rc = admit(x, c.rev, c.evs, c.n_evs, c.arrival_ms)) < 0)
                goto out;
            if (rc == 0)
                break; /* waits for revisions in flight */
            rc = 0;
            have = 0;
        }
        repl_stat_max(&st->source_revision, c.progress_rev);
        int64_t done = dr_apply_confirmed(x->ap);
        int64_t oldest = dr_apply_oldest_ms(x->ap);
        if (!oldest)
            oldest = have ? c.arrival_ms : reader_oldest_ms(&rd);
        if (!oldest && st->source_revision > done) /* every revision counts: one not read yet */
            oldest = repl_head_first_seen(head, done + 1);
        repl_set_lag(st, oldest);
        int busy = dr_apply_inflight(x->ap) > 0 || dr_apply_admitted(x->ap) > done;
        if (o->until_caught_up && done >= s0 && !busy) {
            rc = 0;
            break;
        }
        if (busy) {
            if ((rc = lib_rc(x, dr_apply_step(x->ap, 100))) < 0)
                goto out;
            sync_stats(x);
        } else if (!have) {
            if ((rc = evcur_next(&c, &rd, 100)) < 0)
                goto out;
            have = rc;
            rc = 0;
            if (have && c.rev != done + 1) {
                rc = dr_error_set(DR_EPROTO, "watch gave revision %lld where %lld was expected",
                                  (long long)c.rev, (long long)done + 1);
                goto out;
            }
        }
        int64_t now = dr_mono_ms();
        if (!busy && !have && now - last_check >= 1000) {
            /* idle: the standby's revision must be exactly what we applied */
            last_check = now;
            dr_etcd_status tsn;
            if ((rc = dr_etcd_status_get(tgt, &tsn)) < 0)
                goto out;
            if (tsn.header.revision != done) {
                rc = diverged(x, "the standby is at revision %lld but drd applied up to %lld",
                              (long long)tsn.header.revision, (long long)done);
                goto out;
            }
        }
        if (now - last_compact >= 30000) {
            /* mirror the source's compaction so the standby's history does not grow forever */
            last_compact = now;
            int64_t cs = 0;
            if (repl_compact_revision(src, &cs) == 0 && cs > mirrored_compact && cs <= done) {
                if (dr_etcd_compact(tgt, cs, 0) == 0 || dr_error_code() == DR_ECOMPACTED)
                    mirrored_compact = cs;
                dr_error_clear();
            }
        }
    }
out:
    if (rc == DR_ECOMPACTED && reader_on) /* the watch broke off: compacted under the stream */
        rc = dr_error_set(DR_ECOMPACTED,
                          "the source compacted past the standby's revision %lld: the revisions "
                          "in between are gone (%s); %s",
                          (long long)(x->ap ? dr_apply_confirmed(x->ap) : 0), dr_error_msg(),
                          reseed_hint);
    if (rc == DR_EDIVERGED)
        rc = promoted(x, rc);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", rc < 0 ? dr_error_msg() : "");
    if (reader_on)
        reader_stop(&rd);
    dr_apply_free(x->ap); /* cancels requests still in flight */
    if (rc < 0)           /* keep the first error's message */
        dr_error_set(rc, "%s", msg);
    evcur_free(&c);
    leases_free(x->ls);
    free(x->ops);
    return rc;
}
