/*
 * The source side of a replication session: the watch reader thread with its bounded queue, the
 * event cursor that hands the mode loops whole revisions, and the stats the stream feeds (source
 * revision, lag). Used by exact.c and filtered.c; it calls neither.
 *
 * Must never buffer more than max_bytes of events (it stops reading and lets gRPC flow control
 * hold the source back) and never reorder or drop a response.
 */
#include "repl_int.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void repl_stat_max(_Atomic int64_t *stat, int64_t v)
{
    int64_t cur = *stat;
    while (v > cur && !atomic_compare_exchange_weak(stat, &cur, v))
        ;
}

void repl_set_lag(dr_repl_stats *st, int64_t oldest_ms)
{
    st->lag_ms = oldest_ms > 0 ? dr_mono_ms() - oldest_ms : 0;
}

/* ---- reader ---- */

static size_t res_bytes(const dr_etcd_watch_res *res)
{
    size_t b = 256;
    for (size_t i = 0; i < res->n_events; i++)
        b += 96 + res->events[i].kv.key_len + res->events[i].kv.value_len;
    return b;
}

/* DR_ESTALE when res carries an epoch record (a put of /drd/epoch) newer than the one the source
 * held when the session started and naming another cluster the primary; a record that does not
 * parse is left to the session start's check. */
static int demoted(reader *r, const dr_etcd_watch_res *res)
{
    size_t kl = strlen(DR_EPOCH_KEY);
    for (size_t i = 0; r->src_cluster && i < res->n_events; i++) {
        const dr_etcd_event *ev = &res->events[i];
        dr_epoch ep;
        char d[256];
        if (ev->type != DR_EV_PUT || ev->kv.key_len != kl || memcmp(ev->kv.key, DR_EPOCH_KEY, kl) ||
            dr_epoch_parse((const char *)ev->kv.value, ev->kv.value_len, &ep) < 0) {
            dr_error_clear();
            continue;
        }
        if (ep.cluster_id == r->src_cluster || ep.epoch <= r->src_epoch)
            continue; /* names the source, or history the source had moved past at the start */
        dr_epoch_describe(&ep, d, sizeof d);
        return dr_error_set(DR_ESTALE,
                            "refusing to replicate: the source %s (cluster %" PRIx64
                            ") was demoted while replicating: %s reached it at revision %" PRId64
                            "\nHINT: the other side is the primary now; see docs/runbooks.md",
                            r->src_ep, r->src_cluster, d, ev->kv.mod_revision);
    }
    return 0;
}

int repl_progress_trusted(const char *version)
{
    int maj = 0, min = 0, pat = 0, n = 0;
    if (!version || sscanf(version, "%d.%d.%d%n", &maj, &min, &pat, &n) != 3 || n == 0)
        return 0;
    if (maj != 3)
        return maj > 3;
    if (min == 4)
        return pat >= 31;
    if (min == 5)
        return pat >= 13;
    return min >= 6;
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
        if (rc == 0 && (rc = demoted(r, &res)) < 0)
            /* the source was demoted while this session ran (a failover raised the epoch and
             * it reached the source): stop before applying anything from it */
            dr_etcd_watch_res_free(&res);
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
    dr_etcd_status st;
    dr_epoch own;
    if (dr_etcd_status_get(src, &st) == 0 && dr_epoch_read_etcd(src, &own, NULL) == 0) {
        r->src_cluster = st.header.cluster_id;
        r->src_epoch = own.epoch;
    }
    dr_error_clear();
    snprintf(r->src_ep, sizeof r->src_ep, "%s", dr_etcd_endpoint(src));
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
