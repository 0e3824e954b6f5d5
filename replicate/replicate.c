/*
 * replicate: options, the session loop with reconnect and backoff, the watch reader thread and
 * its bounded queue, metrics.
 *
 * Session states (dr_repl_state):
 *   STARTING -> (filtered: SYNCING) -> STREAMING -> {RECONNECTING -> STARTING, ALARM, STOPPED}
 * A transient error (endpoint down, stream broken) ends the session; the next one starts from the
 * durable cursor (the target's revision in exact mode, the cursor key in filtered mode), so a
 * session never needs to remember anything across the reconnect.
 */
#include "repl_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dr_repl_state_name(int s)
{
    static const char *const n[] = {"starting",     "syncing", "streaming",
                                    "reconnecting", "alarm",   "stopped"};
    return s >= 0 && s <= DR_REPL_STOPPED ? n[s] : "unknown";
}

static int is_prefix_of(const char *a, const char *b)
{
    return strncmp(a, b, strlen(a)) == 0;
}

int dr_repl_check_opts(const dr_repl_opts *o)
{
    if (o->window < 0 || o->window > 1024)
        return dr_error_set(DR_EUSAGE, "--window must be 1..1024 (got %d)", o->window);
    if (o->max_txn_ops != 0 && o->max_txn_ops < 2)
        return dr_error_set(DR_EUSAGE, "--max-txn-ops must be at least 2 (got %lld)",
                            (long long)o->max_txn_ops);
    if (o->mode == DR_REPL_EXACT && (o->n_prefixes || o->n_excludes || o->dest_prefix))
        return dr_error_set(DR_EUSAGE, "--prefix, --exclude and --dest-prefix need --mode "
                                       "filtered (exact mode copies every key)");
    if (o->dest_prefix && o->n_prefixes != 1)
        return dr_error_set(DR_EUSAGE, "--dest-prefix needs exactly one --prefix");
    for (size_t i = 0; i < o->n_prefixes; i++) {
        if (!o->prefixes[i][0])
            return dr_error_set(DR_EUSAGE, "--prefix must not be empty (omit it to copy all)");
        for (size_t j = 0; j < o->n_prefixes; j++)
            if (i != j && is_prefix_of(o->prefixes[i], o->prefixes[j]))
                return dr_error_set(DR_EUSAGE, "--prefix '%s' contains --prefix '%s'",
                                    o->prefixes[i], o->prefixes[j]);
    }
    for (size_t i = 0; i < o->n_excludes; i++)
        if (!o->excludes[i][0])
            return dr_error_set(DR_EUSAGE, "--exclude must not be empty");
    if (o->name && (!o->name[0] || strchr(o->name, '/')))
        return dr_error_set(DR_EUSAGE, "--name must be non-empty and contain no '/'");
    if (o->source.endpoints && o->target.endpoints &&
        strcmp(o->source.endpoints, o->target.endpoints) == 0)
        return dr_error_set(DR_EUSAGE, "--source and --target are the same endpoints");
    return 0;
}

int repl_opts_resolve(const dr_repl_opts *o, dr_repl_opts *out)
{
    *out = *o;
    if (!out->name)
        out->name = "default";
    if (!out->window)
        out->window = 8;
    if (!out->max_txn_ops)
        out->max_txn_ops = 128;
    return dr_repl_check_opts(out);
}

void repl_stat_max(_Atomic int64_t *stat, int64_t v)
{
    int64_t cur = *stat;
    while (v > cur && !atomic_compare_exchange_weak(stat, &cur, v))
        ;
}

int repl_is_transient(int rc)
{
    return rc == DR_EUNAVAILABLE || rc == DR_ETIMEOUT || rc == DR_EINTR || rc == DR_EPROTO ||
           rc == DR_EGENERIC;
}

void repl_set_lag(dr_repl_stats *st, int64_t oldest_ms)
{
    st->lag_ms = oldest_ms > 0 ? dr_mono_ms() - oldest_ms : 0;
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

/* ---- reader ---- */

static size_t res_bytes(const dr_etcd_watch_res *res)
{
    size_t b = 256;
    for (size_t i = 0; i < res->n_events; i++)
        b += 96 + res->events[i].kv.key_len + res->events[i].kv.value_len;
    return b;
}

static void *reader_main(void *arg)
{
    reader *r = arg;
    int64_t last_progress = dr_mono_ms();
    for (;;) {
        pthread_mutex_lock(&r->mu);
        /* backpressure: stop reading while the applier is behind */
        while (!r->stop && r->bytes > r->max_bytes)
            pthread_cond_wait(&r->cv, &r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        dr_etcd_watch_res res;
        int rc = dr_etcd_watch_next(r->w, 250, &res);
        if (rc == DR_ETIMEOUT) {
            /* idle: ask for a progress notification so the applier learns the source revision */
            if (dr_mono_ms() - last_progress >= 250) {
                dr_etcd_watch_request_progress(r->w);
                last_progress = dr_mono_ms();
            }
            continue;
        }
        if (rc < 0) {
            pthread_mutex_lock(&r->mu);
            r->rc = rc;
            snprintf(r->err, sizeof r->err, "%s", dr_error_msg());
            pthread_cond_broadcast(&r->cv);
            pthread_mutex_unlock(&r->mu);
            break;
        }
        if (r->stats)
            repl_stat_max(&r->stats->source_revision, res.header.revision);
        rq_item *it = calloc(1, sizeof *it);
        if (!it) {
            dr_etcd_watch_res_free(&res);
            pthread_mutex_lock(&r->mu);
            r->rc = DR_ENOMEM;
            snprintf(r->err, sizeof r->err, "out of memory queueing watch events");
            pthread_cond_broadcast(&r->cv);
            pthread_mutex_unlock(&r->mu);
            break;
        }
        it->res = res;
        it->bytes = res_bytes(&res);
        it->arrival_ms = dr_mono_ms();
        pthread_mutex_lock(&r->mu);
        if (r->tail)
            r->tail->next = it;
        else
            r->head = it;
        r->tail = it;
        r->bytes += it->bytes;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

int reader_start(reader *r, dr_etcd *src, const void *key, size_t klen, const void *end,
                 size_t elen, int64_t start_rev, dr_repl_stats *stats, int64_t *compact_rev)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->max_bytes = 16u << 20;
    r->stats = stats;
    dr_etcd_watch_opts wo = {.key = key,
                             .key_len = klen,
                             .range_end = end,
                             .range_end_len = elen,
                             .start_revision = start_rev,
                             .progress_notify = 1};
    int rc = dr_etcd_watch_open(src, &wo, &r->w, compact_rev);
    if (rc < 0)
        return rc;
    if (pthread_create(&r->th, NULL, reader_main, r) != 0) {
        dr_etcd_watch_close(r->w);
        r->w = NULL;
        return dr_error_set(DR_EGENERIC, "cannot start the watch reader thread");
    }
    r->started = 1;
    return 0;
}

int reader_pop(reader *r, int64_t wait_ms, rq_item **out)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (!r->head && !r->rc && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    if (r->head) {
        rq_item *it = r->head;
        r->head = it->next;
        if (!r->head)
            r->tail = NULL;
        r->bytes -= it->bytes;
        it->next = NULL;
        *out = it;
        rc = 1;
        pthread_cond_broadcast(&r->cv);
    } else if (r->rc) {
        rc = dr_error_set(r->rc, "%s", r->err);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int64_t reader_oldest_ms(reader *r)
{
    pthread_mutex_lock(&r->mu);
    int64_t t = r->head ? r->head->arrival_ms : 0;
    pthread_mutex_unlock(&r->mu);
    return t;
}

void rq_item_free(rq_item *it)
{
    if (!it)
        return;
    dr_etcd_watch_res_free(&it->res);
    free(it);
}

void reader_stop(reader *r)
{
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->th, NULL);
        r->started = 0;
    }
    dr_etcd_watch_close(r->w);
    r->w = NULL;
    for (rq_item *it = r->head, *n; it; it = n) {
        n = it->next;
        rq_item_free(it);
    }
    r->head = r->tail = NULL;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* ---- event cursor ---- */

static void evcur_release(evcur *c)
{
    for (size_t i = 0; i < c->n_items; i++)
        if (c->items[i] != c->cur)
            rq_item_free(c->items[i]);
    c->n_items = 0;
    if (c->cur) {
        c->items[c->n_items++] = c->cur;
    }
}

static int push_ev(evcur *c, const dr_etcd_event *ev)
{
    if (c->n_evs == c->cap_evs) {
        size_t nc = c->cap_evs ? c->cap_evs * 2 : 256;
        const dr_etcd_event **n = realloc(c->evs, nc * sizeof *n);
        if (!n)
            return dr_error_set(DR_ENOMEM, "out of memory");
        c->evs = n;
        c->cap_evs = nc;
    }
    c->evs[c->n_evs++] = ev;
    return 0;
}

int evcur_next(evcur *c, reader *r, int64_t wait_ms)
{
    evcur_release(c);
    c->n_evs = 0;
    c->rev = 0;
    for (;;) {
        if (c->cur && c->idx >= c->cur->res.n_events)
            c->cur = NULL; /* exhausted; it stays in items[] as it gave events to this revision */
        if (!c->cur) {
            rq_item *it = NULL;
            int rc = reader_pop(r, c->n_evs ? 0 : wait_ms, &it);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return c->n_evs ? 1 : 0;
            if (it->res.n_events == 0) {
                /* progress notification: no events at or below this revision are pending */
                if (c->n_evs == 0 && it->res.header.revision > c->progress_rev)
                    c->progress_rev = it->res.header.revision;
                rq_item_free(it);
                if (c->n_evs)
                    return 1;
                continue;
            }
            if (c->n_items == sizeof c->items / sizeof c->items[0]) {
                rq_item_free(it);
                return dr_error_set(DR_EPROTO, "a revision spans too many watch responses");
            }
            c->cur = it;
            c->idx = 0;
            c->items[c->n_items++] = it;
        }
        const dr_etcd_event *ev = &c->cur->res.events[c->idx];
        if (c->n_evs && ev->kv.mod_revision != c->rev)
            return 1;
        if (c->n_evs == 0) {
            c->rev = ev->kv.mod_revision;
            c->arrival_ms = c->cur->arrival_ms;
        }
        int rc = push_ev(c, ev);
        if (rc < 0)
            return rc;
        c->idx++;
    }
}

void evcur_free(evcur *c)
{
    for (size_t i = 0; i < c->n_items; i++)
        if (c->items[i] != c->cur)
            rq_item_free(c->items[i]);
    rq_item_free(c->cur);
    free(c->evs);
    memset(c, 0, sizeof *c);
}

/* ---- run ---- */

int dr_repl_run(const dr_repl_opts *opts, dr_repl_stats *stats)
{
    dr_repl_stats local;
    dr_repl_stats *st = stats ? stats : &local;
    dr_repl_opts ro;
    int rc = repl_opts_resolve(opts, &ro), first = 1;
    const dr_repl_opts *o = &ro;
    if (rc < 0)
        return rc;
    /* field by field: a status thread may already read them */
    st->state = DR_REPL_STARTING;
    st->source_revision = st->applied_revision = st->lag_ms = 0;
    st->events_total = st->txns_total = st->resyncs_total = st->reconnects_total = 0;
    st->leases_granted_total = st->retries_total = 0;
    st->start_ms = dr_wall_ms();
    dr_backoff bo;
    dr_backoff_init(&bo, 200, 5000);
    for (;;) {
        dr_etcd *src = NULL, *tgt = NULL;
        st->state = first ? DR_REPL_STARTING : DR_REPL_RECONNECTING;
        rc = dr_etcd_open(&src, &o->source);
        if (rc == 0)
            rc = dr_etcd_open(&tgt, &o->target);
        if (rc == 0) {
            rc = o->mode == DR_REPL_EXACT ? repl_run_exact(o, st, src, tgt, first)
                                          : repl_run_filtered(o, st, src, tgt, first);
            if (rc == 0 || st->state == DR_REPL_STREAMING)
                dr_backoff_reset(&bo);
        } else if (first) {
            /* unreachable at start: that is bad input, not something to wait for */
            dr_etcd_close(src);
            st->state = DR_REPL_STOPPED;
            return rc;
        }
        dr_etcd_close(src);
        dr_etcd_close(tgt);
        if (rc == 0 || (o->stop && *o->stop)) {
            st->state = DR_REPL_STOPPED;
            return 0;
        }
        /* filtered mode resyncs when the source compacted under the stream: a new session */
        int resync = o->mode == DR_REPL_FILTERED && rc == DR_ECOMPACTED;
        if (!resync && !repl_is_transient(rc)) {
            st->state = DR_REPL_ALARM;
            dr_debug("replication stopped: %s", dr_error_msg());
            return rc;
        }
        first = 0;
        st->reconnects_total++;
        int64_t d = dr_backoff_next(&bo);
        dr_warn("replication interrupted: %s; reconnecting in %lld ms", dr_error_msg(),
                (long long)d);
        for (int64_t t = 0; t < d && !(o->stop && *o->stop); t += 50)
            dr_sleep_ms(50);
        if (o->stop && *o->stop) {
            st->state = DR_REPL_STOPPED;
            return 0;
        }
    }
}

int dr_repl_metrics(const dr_repl_stats *s, const char *name, dr_buf *b)
{
    int64_t lagr =
        s->source_revision > s->applied_revision ? s->source_revision - s->applied_revision : 0;
#define G(metric, help, type, fmt, val)                                                            \
    dr_buf_printf(b,                                                                               \
                  "# HELP drd_replicate_" metric " " help "\n# TYPE drd_replicate_" metric         \
                  " " type "\ndrd_replicate_" metric "{name=\"%s\"} " fmt "\n",                    \
                  name, val)
    G("source_revision", "Newest source revision seen.", "gauge", "%lld",
      (long long)s->source_revision);
    G("applied_revision", "Newest source revision applied to the target.", "gauge", "%lld",
      (long long)s->applied_revision);
    G("lag_revisions", "Source revisions not yet applied.", "gauge", "%lld", (long long)lagr);
    G("lag_seconds", "Age of the oldest source revision not yet applied.", "gauge", "%.3f",
      (double)s->lag_ms / 1000.0);
    G("events_total", "Source events applied.", "counter", "%lld", (long long)s->events_total);
    G("transactions_total", "Target transactions committed.", "counter", "%lld",
      (long long)s->txns_total);
    G("resyncs_total", "Full resyncs (filtered mode).", "counter", "%lld",
      (long long)s->resyncs_total);
    G("reconnects_total", "Sessions restarted after a network error.", "counter", "%lld",
      (long long)s->reconnects_total);
    G("leases_granted_total", "Leases granted on the target.", "counter", "%lld",
      (long long)s->leases_granted_total);
    G("retries_total", "Transactions that wrote nothing because their guard did not hold (resent).",
      "counter", "%lld", (long long)s->retries_total);
    G("up", "1 while replicating (not in alarm).", "gauge", "%d", s->state != DR_REPL_ALARM);
    dr_buf_printf(b,
                  "# HELP drd_replicate_state Current state.\n# TYPE drd_replicate_state gauge\n");
    for (int i = 0; i <= DR_REPL_STOPPED; i++)
        dr_buf_printf(b, "drd_replicate_state{name=\"%s\",state=\"%s\"} %d\n", name,
                      dr_repl_state_name(i), s->state == i);
#undef G
    return 0;
}
