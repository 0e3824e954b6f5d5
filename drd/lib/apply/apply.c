/*
 * The applier (apply.h).
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
 * `inflight` requests are in flight, each with up to `inflight` levels.
 *
 * The guards are exact only if no later revision makes "not applied yet" true again (a delete,
 * or a re-create, of a guard key after the level applied). So no two live levels touch the same
 * key: a revision touching a key of a live level (unconfirmed, or in a request still in flight)
 * waits until that level retires. Hence a revision is never applied twice or out of place. A
 * request whose chain held T+1 and still wrote nothing means someone else wrote to the standby:
 * alarm, never overwrite. Every answer's header.revision is the standby's revision when the
 * request was applied, so every revision up to it is applied (the cursor moves on that).
 *
 */
#include "drd/lib/apply/apply.h"
#include "drd/core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    RING = 512,          /* live levels at most */
    MAX_BYTES = 1 << 20, /* a request's size at most (etcd's default limit is 1.5 MiB) */
    AHEAD = 4,           /* admitted ahead of the cursor: at most AHEAD chains' worth */
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

struct dr_apply {
    dr_etcd *tgt;
    dr_etcd_pipe *pipe;
    int64_t max_txn_ops;
    level ring[RING];
    int64_t r;         /* oldest live level (levels r..e are in the ring) */
    int64_t e;         /* newest admitted revision */
    int64_t confirmed; /* every revision <= confirmed is applied on the target */
    size_t inflight, max_inflight;
    req *reqs; /* max_inflight slots */
    int64_t events, txns, noops;
};

typedef dr_apply xs;

static level *lv(xs *x, int64_t rev)
{
    return &x->ring[rev % RING];
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
static int conflicts(xs *x, const dr_apply_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t h = key_hash(ops[i].key, ops[i].key_len);
        for (int64_t r = x->r; r <= x->e; r++)
            if (touches(lv(x, r), h, ops[i].key, ops[i].key_len))
                return 1;
    }
    return 0;
}

/* Builds revision rev as the newest level. */
static int build(xs *x, int64_t rev, const dr_apply_op *ops, size_t n, int64_t arrival_ms)
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
    const dr_apply_op *f = &ops[0];
    if (!f->del)
        rc = dr_etcd_txn_compare(t, f->key, f->key_len, DR_CMP_MOD, DR_CMP_LESS, rev);
    else
        rc = dr_etcd_txn_compare(t, f->key, f->key_len, DR_CMP_MOD, DR_CMP_GREATER, 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const dr_apply_op *op = &ops[i];
        uint32_t kl = (uint32_t)op->key_len;
        l->hash[l->nkeys++] = key_hash(op->key, op->key_len);
        l->bytes += 32 + op->key_len + (op->del ? 0 : op->value_len);
        if ((rc = dr_buf_append(&l->keys, &kl, 4)) < 0 ||
            (rc = dr_buf_append(&l->keys, op->key, op->key_len)) < 0)
            break;
        if (!op->del)
            rc = dr_etcd_txn_put(t, DR_TXN_SUCCESS, op->key, op->key_len, op->value, op->value_len,
                                 op->lease);
        else
            rc = dr_etcd_txn_delete(t, DR_TXN_SUCCESS, op->key, op->key_len, NULL, 0);
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
        if ((cost <= (size_t)x->max_txn_ops && bytes <= MAX_BYTES) || a == b)
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
        x->events += (int64_t)lv(x, r)->nevents;
    x->confirmed = rev;
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
    req *q = user;
    x->inflight--;
    for (int64_t r = q->a; r <= q->b; r++)
        lv(x, r)->refs--;
    int64_t a = q->a, b = q->b;
    q->used = 0;
    if (trc < 0) {
        if (trc == DR_ETOOMANYOPS)
            return dr_error_set(DR_ETOOMANYOPS,
                                "etcd %s refused a chain of revisions %lld-%lld as too many "
                                "operations: its --max-txn-ops is lower than drd was told",
                                dr_etcd_endpoint(x->tgt), (long long)a, (long long)b);
        return trc; /* unknown outcome: the session restarts from the target's revision */
    }
    int depth = dr_etcd_txn_res_level(&res);
    int64_t hrev = res.header.revision;
    dr_etcd_txn_res_free(&res);
    if (hrev > x->e)
        return dr_error_set(DR_EDIVERGED,
                            "etcd %s is at revision %lld, past the newest revision drd sent (%lld)",
                            dr_etcd_endpoint(x->tgt), (long long)hrev, (long long)x->e);
    if (depth >= 0) {
        if (a + depth != hrev)
            return dr_error_set(DR_EDIVERGED,
                                "applying revision %lld on etcd %s gave revision %lld",
                                (long long)(a + depth), dr_etcd_endpoint(x->tgt), (long long)hrev);
        x->txns++;
    } else {
        if (hrev + 1 >= a && hrev + 1 <= b)
            return dr_error_set(DR_EDIVERGED,
                                "the guard of revision %lld failed on etcd %s at revision %lld "
                                "(its keys are not as the revisions before left them)",
                                (long long)hrev + 1, dr_etcd_endpoint(x->tgt), (long long)hrev);
        x->noops++;
    }
    if (hrev > x->confirmed)
        confirm_upto(x, hrev);
    retire(x);
    return 0;
}

/* ---- public ---- */

int dr_apply_new(dr_etcd *target, int64_t at, int64_t max_txn_ops, size_t inflight, dr_apply **out)
{
    if (inflight < 1)
        inflight = 1;
    if (inflight > 64)
        inflight = 64; /* a chain is at most 64 deep */
    xs *x = calloc(1, sizeof *x);
    if (!x)
        return dr_error_set(DR_ENOMEM, "out of memory");
    x->tgt = target;
    x->max_txn_ops = max_txn_ops;
    x->confirmed = at;
    x->e = at;
    x->r = at + 1;
    x->max_inflight = inflight;
    int rc = 0;
    if (!(x->reqs = calloc(inflight, sizeof *x->reqs)))
        rc = dr_error_set(DR_ENOMEM, "out of memory");
    if (rc == 0)
        rc = dr_etcd_pipe_new(target, &x->pipe);
    if (rc < 0) {
        dr_apply_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

void dr_apply_free(dr_apply *x)
{
    if (!x)
        return;
    dr_etcd_pipe_free(x->pipe); /* cancels what is in flight and drains its completions */
    levels_free(x);
    free(x->reqs);
    free(x);
}

int dr_apply_admit(dr_apply *x, int64_t rev, const dr_apply_op *ops, size_t n, int64_t arrival_ms)
{
    if (rev != x->e + 1 || n == 0)
        return dr_error_set(DR_EUSAGE,
                            "internal: revision %lld admitted after %lld (%zu operations)",
                            (long long)rev, (long long)x->e, n);
    if (x->e - x->r + 1 >= RING - 1 || x->e - x->confirmed >= AHEAD * (int64_t)x->max_inflight ||
        conflicts(x, ops, n))
        return 0;
    int rc = build(x, rev, ops, n, arrival_ms);
    return rc < 0 ? rc : 1;
}

int dr_apply_step(dr_apply *x, int64_t wait_ms)
{
    int rc = 0;
    while (x->inflight < x->max_inflight && (rc = send_one(x)) == 1)
        ;
    if (rc < 0)
        return rc;
    return x->inflight ? complete_one(x, wait_ms) : 0;
}

int dr_apply_drain(dr_apply *x)
{
    int rc = 0;
    while (rc == 0 && (x->inflight > 0 || x->confirmed < x->e))
        rc = dr_apply_step(x, 1000);
    return rc;
}

int dr_apply_skip(dr_apply *x, int64_t rev)
{
    if (x->inflight || x->confirmed != rev - 1 || x->e != rev - 1)
        return dr_error_set(DR_EUSAGE, "internal: revision %lld applied aside at %lld/%lld",
                            (long long)rev, (long long)x->confirmed, (long long)x->e);
    x->confirmed = x->e = rev;
    x->r = rev + 1; /* nothing live */
    return 0;
}

int64_t dr_apply_confirmed(const dr_apply *x)
{
    return x->confirmed;
}

int64_t dr_apply_admitted(const dr_apply *x)
{
    return x->e;
}

size_t dr_apply_inflight(const dr_apply *x)
{
    return x->inflight;
}

int64_t dr_apply_oldest_ms(const dr_apply *x)
{
    return x->e > x->confirmed ? x->ring[(x->confirmed + 1) % RING].arrival_ms : 0;
}

void dr_apply_counts(const dr_apply *x, int64_t *events, int64_t *txns, int64_t *noops)
{
    if (events)
        *events = x->events;
    if (txns)
        *txns = x->txns;
    if (noops)
        *noops = x->noops;
}
