/*
 * The source side of a replication session: the watch reader thread with its bounded queue, the
 * event cursor that hands the mode loops whole revisions, and the stats the stream feeds (source
 * revision, lag); and, across sessions, the source's head (when each revision was first known to
 * exist, with the thread that polls the source while nothing is read). Used by exact.c and
 * filtered.c; it calls neither.
 *
 * Must never buffer more than max_bytes of events (it stops reading and lets gRPC flow control
 * hold the source back), never reorder or drop a response, and never let the queue's size decide
 * the lag it shows.
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

/* ---- first-seen marks ---- */

void repl_marks_note(repl_marks *k, int64_t rev, int64_t ms)
{
    if (k->lo == k->n)
        k->lo = k->n = 0;
    if (k->n > 0) {
        size_t last = k->n - 1;
        if (rev <= k->m[last].rev)
            return;
        if (ms - k->m[last].ms < REPL_MARK_MS) {
            k->m[last].rev = rev; /* one mark: the earlier time */
            return;
        }
    }
    if (k->n == REPL_MARKS && k->lo > 0) {
        memmove(k->m, k->m + k->lo, (k->n - k->lo) * sizeof k->m[0]);
        k->n -= k->lo;
        k->lo = 0;
    } else if (k->n == REPL_MARKS) {
        /* neighbours merge: the higher revision at the earlier time */
        for (size_t i = 0; i < REPL_MARKS / 2; i++) {
            k->m[i].rev = k->m[2 * i + 1].rev;
            k->m[i].ms = k->m[2 * i].ms;
        }
        k->n = REPL_MARKS / 2;
    }
    k->m[k->n].rev = rev;
    k->m[k->n].ms = ms;
    k->n++;
}

void repl_marks_forget(repl_marks *k, int64_t applied)
{
    while (k->lo < k->n && k->m[k->lo].rev <= applied)
        k->lo++;
}

int64_t repl_marks_first_seen(const repl_marks *k, int64_t rev, int64_t now_ms)
{
    for (size_t i = k->lo; i < k->n; i++)
        if (k->m[i].rev >= rev)
            return k->m[i].ms;
    return now_ms;
}

/* Waits on cv (mu held) for up to ms. */
static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- the source's head across sessions ---- */

struct repl_head {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    repl_marks marks;
    int64_t noted_ms; /* when the newest revision was last noted */
    int stop;
    pthread_t th;
    dr_etcd_opts src_opts;
    dr_repl_stats *st;
};

static void head_note(repl_head *h, int64_t rev, int64_t ms)
{
    pthread_mutex_lock(&h->mu);
    repl_marks_note(&h->marks, rev, ms);
    h->noted_ms = ms;
    pthread_mutex_unlock(&h->mu);
    repl_stat_max(&h->st->source_revision, rev); /* after the mark: the applier asks for it */
}

void repl_head_note(repl_head *h, int64_t rev)
{
    head_note(h, rev, dr_mono_ms());
}

int64_t repl_head_first_seen(repl_head *h, int64_t rev)
{
    pthread_mutex_lock(&h->mu);
    repl_marks_forget(&h->marks, h->st->applied_revision);
    int64_t t = repl_marks_first_seen(&h->marks, rev, 0);
    pthread_mutex_unlock(&h->mu);
    return t;
}

static void *head_main(void *arg)
{
    repl_head *h = arg;
    dr_etcd *e = NULL;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        int64_t due = h->noted_ms + REPL_POLL_MS - dr_mono_ms();
        if (due > 0) {
            cond_wait_ms(&h->cv, &h->mu, due);
            continue;
        }
        h->noted_ms = dr_mono_ms(); /* the next try in REPL_POLL_MS, answered or not */
        pthread_mutex_unlock(&h->mu);
        dr_etcd_status st;
        if (!e && dr_etcd_open(&e, &h->src_opts) < 0)
            e = NULL;
        if (e && dr_etcd_status_get(e, &st) == 0) {
            head_note(h, st.header.revision, dr_mono_ms());
        } else if (e) {
            dr_etcd_close(e); /* connect again next time, maybe to another endpoint */
            e = NULL;
        }
        dr_error_clear(); /* the sessions report the source's failures */
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    dr_etcd_close(e);
    return NULL;
}

int repl_head_new(const dr_etcd_opts *source, dr_repl_stats *st, repl_head **out)
{
    repl_head *h = calloc(1, sizeof *h);
    if (!h)
        return dr_error_set(DR_ENOMEM, "out of memory");
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->st = st;
    h->src_opts = *source;
    h->src_opts.timeout_ms = 2000; /* stopping waits for a call in flight */
    h->noted_ms = dr_mono_ms() - REPL_POLL_MS;
    int err = pthread_create(&h->th, NULL, head_main, h);
    if (err) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        free(h);
        return dr_error_set(DR_EGENERIC, "cannot start a thread: %s", strerror(err));
    }
    *out = h;
    return 0;
}

void repl_head_free(repl_head *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
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
        /* (the head's thread notes the source's revision meanwhile) */
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
        repl_head_note(r->src_head, res.header.revision);
        it->arrival_ms = res.n_events
                             ? repl_head_first_seen(r->src_head, res.events[0].kv.mod_revision)
                             : dr_mono_ms();
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
                 size_t elen, int64_t start_rev, dr_repl_stats *stats, repl_head *head,
                 int64_t *compact_rev)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->max_bytes = REPL_QUEUE_BYTES;
    r->stats = stats;
    r->src_head = head;
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
    if (!r->head && !r->rc && wait_ms > 0)
        cond_wait_ms(&r->cv, &r->mu, wait_ms);
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
