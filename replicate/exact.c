/*
 * Exact mode: every source revision R becomes exactly one target transaction, and the target's
 * header.revision after it must be R. The target's revision is the cursor.
 *
 * Order-free pipelining. etcd does not apply concurrent Txn calls in the order they were sent
 * (docs/replication.md "Why exact mode chains its transactions"), so no request may depend on
 * arriving in order. Each source revision R becomes a level: a guard "R is not applied yet" and
 * R's operations:
 *   first event of R is a put of k   -> mod(k) < R
 *   first event of R is a delete of k -> mod(k) > 0 (k still exists)
 * A request is a chain of consecutive levels a..b, each nested in the failure branch of the one
 * before, starting at a = the next revision to apply when it is sent (confirmed + 1). When etcd
 * applies it, the standby is at some T >= a-1: the levels a..T hold revisions already applied
 * (their guards are false), and level T+1's guard is true, so the request applies exactly the
 * revision that is next, whatever order requests arrive in; if T+1 > b it writes nothing. Up to
 * CHAIN requests are in flight, each with up to CHAIN levels.
 *
 * The guards are exact only if no later revision makes "not applied yet" true again (a delete,
 * or a re-create, of a guard key after the level applied). So no two live levels touch the same
 * key: a revision touching a key of a live level (unconfirmed, or in a request still in flight)
 * waits until that level retires. Hence a revision is never applied twice or out of place. A
 * request whose chain held T+1 and still wrote nothing means someone else wrote to the standby:
 * alarm, never overwrite. Every answer's header.revision is the standby's revision when the
 * request was applied, so every revision up to it is applied (the cursor moves on that).
 *
 * Must never apply a revision out of order, never split a revision, never write to the source.
 */
#include "repl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    RING = 512,          /* live levels at most */
    MAX_BYTES = 1 << 20, /* a request's size at most (etcd's default limit is 1.5 MiB) */
    CHAIN = 8,           /* requests in flight, and levels per request, at most */
};

typedef struct level {
    int64_t rev;
    dr_etcd_txn *txn;
    size_t nevents, cost, bytes;
    int64_t arrival_ms;
    int refs;       /* requests in flight whose chain holds it */
    uint64_t *hash; /* hashes of the keys it touches */
    dr_buf keys;    /* those keys: u32 length + bytes each */
    size_t nkeys, cap_hash;
} level;

typedef struct req {
    int64_t a, b; /* its chain: levels a..b */
    int used;
} req;

typedef struct xs {
    const dr_repl_opts *o;
    dr_repl_stats *st;
    dr_etcd *src, *tgt;
    dr_etcd_pipe *pipe;
    leases *ls;
    level ring[RING];
    int64_t r;         /* oldest live level (levels r..e are in the ring) */
    int64_t e;         /* newest admitted revision */
    int64_t confirmed; /* every revision <= confirmed is applied on the target */
    size_t inflight, max_inflight;
    req *reqs; /* max_inflight slots */
} xs;

static const char reseed_hint[] =
    "reseed the standby: stop its etcd, move its data dir away, run 'drd replicate seed "
    "--source <primary> --data-dir <dir> --name <member> --initial-cluster <c> "
    "--initial-advertise-peer-urls <u>' and start the standby etcd on <dir>";

static level *lv(xs *x, int64_t rev)
{
    return &x->ring[rev % RING];
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

static uint64_t key_hash(const uint8_t *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return h;
}

/* Does level l touch key k (hash h)? */
static int touches(const level *l, uint64_t h, const uint8_t *k, size_t n)
{
    const uint8_t *p = (const uint8_t *)l->keys.data;
    for (size_t i = 0; i < l->nkeys; i++) {
        uint32_t len;
        memcpy(&len, p, 4);
        if (l->hash[i] == h && len == n && memcmp(p + 4, k, n) == 0)
            return 1;
        p += 4 + len;
    }
    return 0;
}

/* Would a revision with these events touch a key of a live level? */
static int conflicts(xs *x, const dr_etcd_event **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const dr_etcd_kv *kv = &evs[i]->kv;
        uint64_t h = key_hash(kv->key, kv->key_len);
        for (int64_t r = x->r; r <= x->e; r++)
            if (touches(lv(x, r), h, kv->key, kv->key_len))
                return 1;
    }
    return 0;
}

/* Admits revision rev as the newest level. */
static int admit(xs *x, int64_t rev, const dr_etcd_event **evs, size_t n, int64_t arrival_ms)
{
    level *l = lv(x, rev);
    int rc = 0;
    if (!l->txn && (rc = dr_etcd_txn_new(&l->txn)) < 0)
        return rc;
    dr_etcd_txn_reset(l->txn);
    dr_etcd_txn_set_else(l->txn, NULL);
    l->keys.len = 0;
    l->nkeys = 0;
    l->bytes = 64;
    if (n > l->cap_hash) {
        uint64_t *h = realloc(l->hash, n * sizeof *h);
        if (!h)
            return dr_error_set(DR_ENOMEM, "out of memory");
        l->hash = h;
        l->cap_hash = n;
    }
    dr_etcd_txn *t = l->txn;
    const dr_etcd_event *f = evs[0];
    if (f->type == DR_EV_PUT)
        rc = dr_etcd_txn_compare(t, f->kv.key, f->kv.key_len, DR_CMP_MOD, DR_CMP_LESS, rev);
    else
        rc = dr_etcd_txn_compare(t, f->kv.key, f->kv.key_len, DR_CMP_MOD, DR_CMP_GREATER, 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const dr_etcd_kv *kv = &evs[i]->kv;
        uint32_t kl = (uint32_t)kv->key_len;
        l->hash[l->nkeys++] = key_hash(kv->key, kv->key_len);
        l->bytes += 32 + kv->key_len + (evs[i]->type == DR_EV_PUT ? kv->value_len : 0);
        if ((rc = dr_buf_append(&l->keys, &kl, 4)) < 0 ||
            (rc = dr_buf_append(&l->keys, kv->key, kv->key_len)) < 0)
            break;
        if (evs[i]->type == DR_EV_PUT) {
            if (kv->lease && (rc = leases_ensure(x->ls, kv->lease)) < 0)
                break;
            rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, kv->key, kv->key_len, kv->value, kv->value_len,
                                 kv->lease);
        } else {
            rc = dr_etcd_txn_delete(t, DR_TXN_SUCCESS, kv->key, kv->key_len, NULL, 0);
        }
    }
    if (rc < 0)
        return rc;
    l->rev = rev;
    l->nevents = n;
    l->cost = n; /* one compare, n operations */
    l->arrival_ms = arrival_ms;
    l->refs = 0;
    if (x->e < x->r) /* the ring was empty */
        x->r = rev;
    x->e = rev;
    return 0;
}

/* Retires confirmed levels that no request in flight holds. */
static void retire(xs *x)
{
    while (x->r <= x->e && x->r <= x->confirmed && lv(x, x->r)->refs == 0)
        x->r++;
}

static void levels_free(xs *x)
{
    for (size_t i = 0; i < RING; i++) {
        dr_etcd_txn_free(x->ring[i].txn);
        free(x->ring[i].hash);
        dr_buf_free(&x->ring[i].keys);
    }
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

/* Sends one request whose chain starts at the next revision to apply: levels confirmed+1 .. up
 * to max_inflight of them, within --max-txn-ops (summed over the levels) and the request size.
 * (etcd applies concurrent requests in no particular order, so every request must be able to
 * apply whichever revision is next when it is applied.) 0 when every unconfirmed revision
 * already has a request in flight. */
static int send_one(xs *x)
{
    int64_t a = x->confirmed + 1;
    if (x->e - x->confirmed <= (int64_t)x->inflight)
        return 0;
    int64_t b = a + (int64_t)x->max_inflight - 1;
    if (b > x->e)
        b = x->e;
    for (;;) {
        size_t cost = 0, bytes = 0;
        for (int64_t r = a; r <= b; r++) {
            cost += lv(x, r)->cost;
            bytes += lv(x, r)->bytes;
        }
        if ((cost <= (size_t)x->o->max_txn_ops && bytes <= MAX_BYTES) || a == b)
            break;
        b--;
    }
    req *q = x->reqs;
    while (q->used)
        q++; /* inflight < max_inflight: there is a free one */
    q->used = 1;
    q->a = a;
    q->b = b;
    for (int64_t r = a; r <= b; r++) {
        level *l = lv(x, r);
        l->refs++;
        dr_etcd_txn_set_else(l->txn, r < b ? lv(x, r + 1)->txn : NULL);
    }
    int rc = dr_etcd_pipe_submit(x->pipe, lv(x, a)->txn, q);
    if (rc < 0) {
        for (int64_t r = a; r <= b; r++)
            lv(x, r)->refs--;
        q->used = 0;
        return rc;
    }
    x->inflight++;
    return 1;
}

static void confirm_upto(xs *x, int64_t rev)
{
    for (int64_t r = x->confirmed + 1; r <= rev; r++)
        x->st->events_total += (int64_t)lv(x, r)->nevents;
    x->confirmed = rev;
    x->st->applied_revision = rev;
}

/* Process one completion (waiting up to wait_us). 0 also on timeout. */
static int complete_one(xs *x, int64_t wait_us)
{
    void *user = NULL;
    int trc = 0;
    dr_etcd_txn_res res;
    int rc = dr_etcd_pipe_next(x->pipe, wait_us, &user, &trc, &res);
    if (rc == DR_ETIMEOUT || rc == DR_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    req *q = user;
    x->inflight--;
    for (int64_t r = q->a; r <= q->b; r++)
        lv(x, r)->refs--;
    int64_t a = q->a, b = q->b;
    q->used = 0;
    if (trc < 0) {
        if (trc == DR_ETOOMANYOPS)
            return dr_error_set(DR_ETOOMANYOPS,
                                "the standby refused a chain of revisions %lld-%lld as too many "
                                "operations: run drd with the standby's --max-txn-ops",
                                (long long)a, (long long)b);
        return trc; /* unknown outcome: the session restarts from the target's revision */
    }
    int depth = dr_etcd_txn_res_level(&res);
    int64_t hrev = res.header.revision;
    dr_etcd_txn_res_free(&res);
    if (hrev > x->e)
        return diverged(x,
                        "the standby is at revision %lld, past the newest revision drd sent "
                        "(%lld)",
                        (long long)hrev, (long long)x->e);
    if (depth >= 0) {
        if (a + depth != hrev)
            return diverged(x, "applying source revision %lld gave standby revision %lld",
                            (long long)(a + depth), (long long)hrev);
        x->st->txns_total++;
    } else {
        if (hrev + 1 >= a && hrev + 1 <= b)
            return diverged(x, "the guard of source revision %lld failed at standby revision %lld",
                            (long long)hrev + 1, (long long)hrev);
        x->st->retries_total++;
    }
    if (hrev > x->confirmed)
        confirm_upto(x, hrev);
    retire(x);
    return 0;
}

static int drain(xs *x)
{
    int rc = 0;
    while (x->inflight > 0 && rc == 0)
        rc = complete_one(x, 1000000);
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
    if (x->confirmed != rev - 1 || x->e != rev - 1)
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
    x->r = x->e = rev; /* nothing live: the next level starts the ring again */
    x->r++;
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
    xs *xp = calloc(1, sizeof *xp);
    if (!xp)
        return dr_error_set(DR_ENOMEM, "out of memory");
    xs *x = xp;
    x->o = o;
    x->st = st;
    x->src = src;
    x->tgt = tgt;
    reader rd;
    int reader_on = 0;
    evcur c = {0};
    dr_etcd_status ss, ts;
    if ((rc = dr_etcd_status_get(tgt, &ts)) < 0 || (rc = dr_etcd_status_get(src, &ss)) < 0)
        goto out;
    int64_t t = ts.header.revision, s0 = ss.header.revision;
    st->source_revision = s0;
    if ((rc = check_seeded(x, t, s0)) < 0)
        goto out;
    x->confirmed = t;
    x->e = t;
    x->r = t + 1;
    st->applied_revision = t;
    /* Every request in flight carries the levels from the next revision on, so that it applies
     * whichever comes next: more requests in flight need longer chains (the whole chain is sent,
     * written to the standby's WAL and its guards evaluated), and past about 8 the standby's
     * rate no longer grows here (docs/benchmarks.md). */
    x->max_inflight = (size_t)o->window < CHAIN ? (size_t)o->window : CHAIN;
    if (!(x->reqs = calloc(x->max_inflight, sizeof *x->reqs))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = dr_etcd_pipe_new(tgt, &x->pipe)) < 0 || (rc = leases_new(&x->ls, src, tgt, st)) < 0 ||
        (rc = leases_adopt_all(x->ls)) < 0)
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
            rc = drain(x);
            break;
        }
        /* admit revisions as levels while none touches a key of a live level; a few chains'
         * worth ahead at most (memory: the levels hold the revisions' values) */
        while (x->e - x->r + 1 < RING && x->e - x->confirmed < 4 * (int64_t)x->max_inflight) {
            if (!have) {
                if ((rc = evcur_next(&c, &rd, 0)) < 0)
                    goto out;
                if (!(have = rc))
                    break;
                rc = 0;
                if (c.rev != x->e + 1) {
                    rc = dr_error_set(DR_EPROTO, "watch gave revision %lld where %lld was expected",
                                      (long long)c.rev, (long long)x->e + 1);
                    goto out;
                }
            }
            if ((int64_t)c.n_evs > o->max_txn_ops) {
                if (x->confirmed < x->e || x->inflight > 0)
                    break; /* applied alone, after everything before it */
                if ((rc = apply_large(x, c.rev, c.evs, c.n_evs)) < 0)
                    goto out;
                have = 0;
                continue;
            }
            if (conflicts(x, c.evs, c.n_evs))
                break; /* waits until those levels retire */
            if ((rc = admit(x, c.rev, c.evs, c.n_evs, c.arrival_ms)) < 0)
                goto out;
            have = 0;
        }
        while (x->inflight < x->max_inflight && (rc = send_one(x)) == 1)
            ;
        if (rc < 0)
            goto out;
        if (c.progress_rev > st->source_revision)
            st->source_revision = c.progress_rev;
        int64_t oldest = x->e > x->confirmed ? lv(x, x->confirmed + 1)->arrival_ms
                         : have              ? c.arrival_ms
                                             : 0;
        if (!oldest)
            oldest = reader_oldest_ms(&rd);
        repl_set_lag(st, oldest);
        if (o->until_caught_up && x->confirmed >= s0 && x->inflight == 0) {
            rc = 0;
            break;
        }
        if (x->inflight > 0) {
            if ((rc = complete_one(x, 100000)) < 0)
                goto out;
        } else if (!have) {
            if ((rc = evcur_next(&c, &rd, 100)) < 0)
                goto out;
            have = rc;
            rc = 0;
            if (have && c.rev != x->e + 1) {
                rc = dr_error_set(DR_EPROTO, "watch gave revision %lld where %lld was expected",
                                  (long long)c.rev, (long long)x->e + 1);
                goto out;
            }
        }
        int64_t now = dr_mono_ms();
        if (x->inflight == 0 && x->e == x->confirmed && !have && now - last_check >= 1000) {
            /* idle: the standby's revision must be exactly what we applied */
            last_check = now;
            dr_etcd_status tsn;
            if ((rc = dr_etcd_status_get(tgt, &tsn)) < 0)
                goto out;
            if (tsn.header.revision != x->confirmed) {
                rc = diverged(x, "the standby is at revision %lld but drd applied up to %lld",
                              (long long)tsn.header.revision, (long long)x->confirmed);
                goto out;
            }
        }
        if (now - last_compact >= 30000) {
            /* mirror the source's compaction so the standby's history does not grow forever */
            last_compact = now;
            int64_t cs = 0;
            if (repl_compact_revision(src, &cs) == 0 && cs > mirrored_compact &&
                cs <= x->confirmed) {
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
                          (long long)x->confirmed, dr_error_msg(), reseed_hint);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", rc < 0 ? dr_error_msg() : "");
    if (reader_on)
        reader_stop(&rd);
    /* requests still in flight are cancelled (their completions drained) */
    dr_etcd_pipe_free(x->pipe);
    if (rc < 0) /* keep the first error's message */
        dr_error_set(rc, "%s", msg);
    evcur_free(&c);
    leases_free(x->ls);
    levels_free(x);
    free(x->reqs);
    free(x);
    return rc;
}
