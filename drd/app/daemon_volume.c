/*
 * drd run: volume pairs as jobs (a `volumes:` row, docs/volumes.md). The loop in daemon.c runs
 * them like any job; this file is what is particular to them: one push or a serve on a worker
 * thread (replicate/volume), whether a pushed volume is out of sync, and its metrics and status.
 *
 * role push, a scheduled job:
 *
 *     idle --(tick: an instant is due)--> pushing (dr_vol_push: list, deltas, publish)
 *       ^  \--(tick: instants passed unseen, or due while pushing)--> missed += n (skipped)
 *       |                                  |
 *       +--(published: the copy and its figures are the job's; out_of_sync 0)----+
 *       +--(failed: failures += 1, out_of_sync 1 until a push publishes again)---+
 *       +--(DR_EBUSY: the destination holds this volume's lock, a sync from elsewhere: missed)
 *     and out_of_sync turns 1 by itself once two scheduled instants have passed since the last
 *     copy was published (or since the job started, when none ever was)
 *
 * role serve, a continuous job:
 *
 *     starting --(dr_vol_serve)--> serving (one sync at a time) --(stopped: reload, SIGTERM)-->
 *     done; --(returns an error: address in use, root gone)--> backoff --(delay)--> starting
 *
 * Must never run two pushes of one volume at once (the loop never starts a running job; the
 * destination's per-volume lock refuses a push from elsewhere), or print a key.
 */
#include "drd/app/daemon.h"
#include "drd/core/core.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static dr_tls_opts tls_opts(const dr_conf_job *cj)
{
    return (dr_tls_opts){.psk_file = cj->psk_file,
                         .cert = cj->cert,
                         .key = cj->key,
                         .cacert = cj->cacert,
                         .timeout_ms = cj->timeout_ms};
}

int drd_volume_push(const dr_conf_job *cj, dr_progress *progress, dr_vol_stats *st, char *detail,
                    size_t cap)
{
    dr_vol_push_opts o = {.source = cj->vol_source,
                          .to = cj->to,
                          .name = cj->name,
                          .tls = tls_opts(cj),
                          .bwlimit = (uint64_t)cj->bwlimit,
                          .checksum = cj->checksum,
                          .progress = progress};
    int rc = dr_vol_push(&o, st);
    if (rc == 0)
        snprintf(detail, cap,
                 "copy %s: %" PRIu64 " files, %" PRIu64 " changed, %" PRIu64
                 " deleted; sent %" PRIu64 " bytes",
                 st->copy, st->files, st->files_changed, st->files_deleted, st->wire_sent);
    return rc;
}

int drd_volume_serve(const dr_conf_job *cj, volatile sig_atomic_t *stop)
{
    dr_vol_serve_opts o = {.listen = cj->listen,
                           .root = cj->root,
                           .tls = tls_opts(cj),
                           .keep = cj->keep,
                           .no_sync = cj->no_sync,
                           .stop = stop};
    o.tls.server = 1;
    return dr_vol_serve(&o);
}

int drd_volume_out_of_sync(const drd_volume_state *v, int64_t now)
{
    if (v->has_run && v->last_rc < 0)
        return 1;
    int64_t since = v->last_success_ms ? v->last_success_ms : v->since_ms, first = 0, second = 0;
    if (dr_schedule_next(&v->cj->schedule, since, &first) < 0 ||
        dr_schedule_next(&v->cj->schedule, first, &second) < 0) {
        dr_error_clear();
        return 1; /* a schedule with no instant left: no copy will come */
    }
    return now > second;
}

void drd_volume_metrics(const drd_volume_state *v, size_t n, int64_t now, dr_buf *b)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"drd_volume_last_sync_timestamp_seconds", "gauge",
         "When the last sync that published a copy at the other site finished."},
        {"drd_volume_last_sync_duration_seconds", "gauge", "How long that sync took."},
        {"drd_volume_last_sync_bytes_sent", "gauge", "Its bytes on the wire (TLS)."},
        {"drd_volume_last_sync_literal_bytes", "gauge", "Its delta data sent."},
        {"drd_volume_last_sync_matched_bytes", "gauge",
         "Its data reused from the destination's previous copy."},
        {"drd_volume_last_sync_files_changed", "gauge", "Files it sent (new or changed)."},
        {"drd_volume_missed_intervals_total", "counter",
         "Scheduled syncs skipped: due while the previous one still ran, while the daemon was "
         "down, or while the destination was busy with this volume."},
        {"drd_volume_out_of_sync", "gauge",
         "1 when the last sync failed, or the newest complete copy is older than two scheduled "
         "intervals."},
    };
    for (size_t k = 0; n && k < sizeof m / sizeof m[0]; k++) { /* none: no volume lines */
        dr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
                      m[k].type);
        for (size_t i = 0; i < n; i++) {
            const dr_vol_stats *st = &v[i].st;
            double x = 0;
            switch (k) {
            case 0:
                x = (double)v[i].last_success_ms / 1000.0;
                break;
            case 1:
                x = (double)st->duration_ms / 1000.0;
                break;
            case 2:
                x = (double)st->wire_sent;
                break;
            case 3:
                x = (double)st->literal;
                break;
            case 4:
                x = (double)st->matched;
                break;
            case 5:
                x = (double)st->files_changed;
                break;
            case 6:
                x = (double)v[i].missed_total;
                break;
            case 7:
                x = drd_volume_out_of_sync(&v[i], now);
                break;
            }
            dr_buf_printf(b, "%s{name=\"%s\"} %.15g\n", m[k].name, v[i].cj->name, x);
        }
    }
}

void drd_volume_json(const drd_volume_state *v, int64_t now, dr_buf *b)
{
    const dr_conf_job *cj = v->cj;
    dr_buf_printf(b, ",\"volume\":{\"role\":\"%s\"", cj->role ? "serve" : "push");
    if (cj->role) {
        dr_buf_printf(b, ",\"listen\":");
        dr_buf_json_str(b, cj->listen, strlen(cj->listen));
        dr_buf_printf(b, ",\"root\":");
        dr_buf_json_str(b, cj->root, strlen(cj->root));
        dr_buf_printf(b, "}");
        return;
    }
    const dr_vol_stats *st = &v->st;
    dr_buf_printf(b, ",\"source\":");
    dr_buf_json_str(b, cj->vol_source, strlen(cj->vol_source));
    dr_buf_printf(b, ",\"to\":");
    dr_buf_json_str(b, cj->to, strlen(cj->to));
    dr_buf_printf(b, ",\"copy\":");
    dr_buf_json_str(b, st->copy, strlen(st->copy));
    dr_buf_printf(b,
                  ",\"last_sync\":%.3f,\"duration_seconds\":%.3f,\"bytes_sent\":%" PRIu64
                  ",\"literal_bytes\":%" PRIu64 ",\"matched_bytes\":%" PRIu64 ",\"files\":%" PRIu64
                  ",\"files_changed\":%" PRIu64 ",\"files_deleted\":%" PRIu64
                  ",\"missed_intervals\":%" PRId64 ",\"out_of_sync\":%s}",
                  (double)v->last_success_ms / 1000.0, (double)st->duration_ms / 1000.0,
                  st->wire_sent, st->literal, st->matched, st->files, st->files_changed,
                  st->files_deleted, v->missed_total,
                  drd_volume_out_of_sync(v, now) ? "true" : "false");
}

void drd_volume_text(const drd_volume_state *v, int64_t now, dr_buf *b)
{
    const dr_conf_job *cj = v->cj;
    if (cj->role) {
        dr_buf_printf(b, "  serving on %s into %s/%s\n", cj->listen, cj->root, cj->name);
        return;
    }
    const dr_vol_stats *st = &v->st;
    dr_buf_printf(b, "  push %s to %s: %s\n", cj->vol_source, cj->to,
                  drd_volume_out_of_sync(v, now) ? "OUT OF SYNC" : "in sync");
    if (st->copy[0])
        dr_buf_printf(b,
                      "  last copy %s in %.1fs: %" PRIu64 " files, %" PRIu64 " changed, %" PRIu64
                      " deleted; sent %" PRIu64 " bytes (literal %" PRIu64 ", matched %" PRIu64
                      ")\n",
                      st->copy, (double)st->duration_ms / 1000.0, st->files, st->files_changed,
                      st->files_deleted, st->wire_sent, st->literal, st->matched);
}
