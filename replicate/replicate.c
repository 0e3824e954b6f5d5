/*
 * replicate: options, the session loop with reconnect and backoff, metrics. The mode loops are in
 * exact.c and filtered.c, the source's watch stream in reader.c.
 *
 * Session states (dr_repl_state):
 *   STARTING -> (filtered: SYNCING) -> STREAMING -> {RECONNECTING -> STARTING, ALARM, STOPPED}
 * A transient error (endpoint down, stream broken) ends the session; the next one starts from the
 * durable cursor (the target's revision in exact mode, the cursor key in filtered mode), so a
 * session never needs to remember anything across the reconnect.
 */
#include "repl_int.h"

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

int dr_repl_key_replicated(const dr_repl_opts *o, const uint8_t *key, size_t key_len)
{
    dr_buf mapped = {0};
    int rc = repl_map_key(o, key, key_len, &mapped);
    dr_buf_free(&mapped);
    return rc;
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

int repl_is_transient(int rc)
{
    return rc == DR_EUNAVAILABLE || rc == DR_ETIMEOUT || rc == DR_EINTR || rc == DR_EPROTO ||
           rc == DR_EGENERIC;
}

/* ---- run ---- */

static int run(const dr_repl_opts *o, dr_repl_stats *st, repl_head *head)
{
    int rc = 0, first = 1;
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
        /* fencing epochs: a demoted source never feeds the target (at start, a record that
         * cannot be read stops it too; later, a transient error retries) */
        if (rc == 0 && (rc = dr_epoch_check_replication(src, tgt, o->epoch_handover)) < 0 &&
            (first || !repl_is_transient(rc))) {
            dr_etcd_close(src);
            dr_etcd_close(tgt);
            st->state = DR_REPL_ALARM;
            return rc;
        }
        if (rc == 0) {
            rc = o->mode == DR_REPL_EXACT ? repl_run_exact(o, st, head, src, tgt, first)
                                          : repl_run_filtered(o, st, head, src, tgt, first);
            if (rc == 0 || st->state == DR_REPL_STREAMING)
                dr_backoff_reset(&bo);
        } else if (first) {
            /* unreachable at start: that is bad input, not something to wait for */
            dr_etcd_close(src);
            dr_etcd_close(tgt);
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
        int again = o->mode == DR_REPL_FILTERED && rc == DR_ECOMPACTED;
        if (!again && !repl_is_transient(rc)) {
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

/* The drd_replicate_* families: each once, with a series per job (the text format wants a
 * family's HELP, TYPE and samples together; a HELP repeated per job is an invalid scrape). */
static const struct {
    const char *metric, *type, *help;
} families[] = {
    {"source_revision", "gauge", "Newest source revision seen."},
    {"applied_revision", "gauge", "Newest source revision applied to the target."},
    {"lag_revisions", "gauge", "Source revisions not yet applied."},
    {"lag_seconds", "gauge", "Age of the oldest source revision not yet applied."},
    {"events_total", "counter", "Source events applied."},
    {"transactions_total", "counter", "Target transactions committed."},
    {"resyncs_total", "counter", "Full resyncs (filtered mode)."},
    {"reconnects_total", "counter", "Sessions restarted after a network error."},
    {"leases_granted_total", "counter", "Leases granted on the target."},
    {"retries_total", "counter",
     "Transactions that wrote nothing because their guard did not hold (resent)."},
    {"up", "gauge", "1 while replicating (not in alarm)."},
    {"state", "gauge", "Current state."},
    {"alarm", "gauge", "1 while stopped by an alarm (code: drd's error name; docs/alarms.md)."},
    {"ready", "gauge", "1 while streaming within max_lag (what /readyz says)."},
    {"max_lag_seconds", "gauge",
     "The lag past which the job is not ready (max_lag; no series when not checked)."},
};

int dr_repl_metrics(const dr_repl_metrics_job *jobs, size_t n, dr_buf *b)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        const char *m = families[f].metric;
        dr_buf_printf(b, "# HELP drd_replicate_%s %s\n# TYPE drd_replicate_%s %s\n", m,
                      families[f].help, m, families[f].type);
        for (size_t i = 0; i < n; i++) {
            const dr_repl_stats *s = jobs[i].stats;
            const char *name = jobs[i].name;
            long long v = 0;
            if (strcmp(m, "lag_seconds") == 0) {
                dr_buf_printf(b, "drd_replicate_lag_seconds{name=\"%s\"} %.3f\n", name,
                              (double)s->lag_ms / 1000.0);
                continue;
            }
            if (strcmp(m, "max_lag_seconds") == 0) {
                if (jobs[i].max_lag_ms)
                    dr_buf_printf(b, "drd_replicate_max_lag_seconds{name=\"%s\"} %.3f\n", name,
                                  (double)jobs[i].max_lag_ms / 1000.0);
                continue;
            }
            if (strcmp(m, "state") == 0) {
                for (int k = 0; k <= DR_REPL_STOPPED; k++)
                    dr_buf_printf(b, "drd_replicate_state{name=\"%s\",state=\"%s\"} %d\n", name,
                                  dr_repl_state_name(k), s->state == k);
                continue;
            }
            if (strcmp(m, "alarm") == 0) {
                dr_buf_printf(b, "drd_replicate_alarm{name=\"%s\",code=\"%s\"} %d\n", name,
                              jobs[i].alarm ? dr_error_name(jobs[i].alarm) : "",
                              jobs[i].alarm != 0);
                continue;
            }
            switch (f) {
            case 0:
                v = s->source_revision;
                break;
            case 1:
                v = s->applied_revision;
                break;
            case 2:
                v = s->source_revision > s->applied_revision
                        ? s->source_revision - s->applied_revision
                        : 0;
                break;
            case 4:
                v = s->events_total;
                break;
            case 5:
                v = s->txns_total;
                break;
            case 6:
                v = s->resyncs_total;
                break;
            case 7:
                v = s->reconnects_total;
                break;
            case 8:
                v = s->leases_granted_total;
                break;
            case 9:
                v = s->retries_total;
                break;
            case 10:
                v = s->state != DR_REPL_ALARM;
                break;
            case 13:
                v = jobs[i].ready;
                break;
            }
            dr_buf_printf(b, "drd_replicate_%s{name=\"%s\"} %lld\n", m, name, v);
        }
    }
    return 0;
}

int dr_repl_run(const dr_repl_opts *opts, dr_repl_stats *stats)
{
    dr_repl_stats local = {0}, *st = stats ? stats : &local;
    dr_repl_opts ro;
    repl_head *head = NULL;
    int rc = repl_opts_resolve(opts, &ro);
    if (rc < 0)
        return rc;
    /* the source connection carries the watch (and small unary calls): when the standby lags
     * and the reader stops, that window is what waits in drd on top of its queue */
    if (!ro.source.stream_window)
        ro.source.stream_window = DR_ETCD_WATCH_WINDOW;
    st->source_revision = st->applied_revision = 0;
    /* when each source revision was first known to exist, across sessions (repl_int.h) */
    if ((rc = repl_head_new(&ro.source, st, &head)) < 0)
        return rc;
    rc = run(&ro, st, head);
    repl_head_free(head);
    return rc;
}
