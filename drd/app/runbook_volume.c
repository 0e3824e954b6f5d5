/*
 * The runbook step final-volume-sync (docs/runbooks.md, "Volumes in a switchover"): every volume
 * pair of the config must hold, at the standby, a complete copy of the primary's data as of after
 * the fence, so that materialising the latest copy (drd replicate volume promote) loses nothing
 * the stopped writers had written.
 *
 * The run is on one site, and which rows it sees depends on that site's config:
 *   role serve  (this site holds the copies: ROOT/NAME/latest): wait until the newest complete
 *               copy's sync started after the fence, by the destination's record of when it took
 *               the connection (the source reads no file before that). The push is the pushing
 *               site's schedule (its daemon or CronJob): nothing here reaches the other site.
 *   role push   (this site holds the source): push now, as the daemon's job would; a copy it
 *               publishes started after the fence by construction. A destination busy with a
 *               sync from elsewhere (the daemon's scheduled push, DR_EBUSY) is waited for.
 *
 *   each volume: waiting --(serve: a copy started after the fence / push: published)--> ok
 *   all ok --> the step is ok;  the step's deadline with one still waiting --> DR_ETIMEOUT with
 *   that volume's reason (the run is resumable: the fence time stays the run's).
 *
 * Must never count a copy whose start is not recorded (or recorded for another copy) as after
 * the fence, read the other site's disk, or trigger the other site by an unauthenticated call.
 */
#include "drd/app/cmd.h"
#include "drd/app/runbook.h"
#include "drd/core/core.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A served volume: 1 when its newest copy started after fence_ms (what it is in ok), else 0 and
 * why it waits. */
static int served_after(const dr_conf_job *cj, int64_t fence_ms, const char *fence, char *ok,
                        size_t okcap, char *why, size_t cap)
{
    dr_vol_latest_info li;
    char t[40];
    int rc = dr_vol_latest(cj->root, cj->name, &li);
    if (rc == DR_ENOTFOUND || (rc == 0 && !li.copy[0])) {
        dr_error_clear();
        snprintf(why, cap, "volume %s: no complete copy in %s yet (fence at %s)", cj->name,
                 cj->root, fence);
        return 0;
    }
    if (rc < 0) {
        snprintf(why, cap, "volume %s: %s", cj->name, dr_error_msg());
        dr_error_clear();
        return 0;
    }
    if (!li.started_ms) {
        snprintf(why, cap,
                 "volume %s: newest complete copy %s has no recorded start (published by an "
                 "older drd, or just now): waiting for a copy started after the fence at %s",
                 cj->name, li.copy, fence);
        return 0;
    }
    dr_time_iso_ms(li.started_ms, t, sizeof t);
    if (li.started_ms < fence_ms) {
        snprintf(why, cap,
                 "volume %s: newest complete copy started before the fence at %s (copy %s, "
                 "started %s%s)",
                 cj->name, fence, li.copy, t, li.syncing ? "; a newer sync is unfinished" : "");
        return 0;
    }
    snprintf(ok, okcap, "%s: copy %s, started %.1fs after the fence", cj->name, li.copy,
             (double)(li.started_ms - fence_ms) / 1000.0);
    return 1;
}

/* A pushed volume: 1 when a push from here published a copy (ok says which), 0 to wait (why),
 * or a negative code for an error no retry mends (the source is not here, a key refused). */
static int push_now(const dr_conf_job *cj, char *ok, size_t okcap, char *why, size_t cap)
{
    dr_vol_stats st;
    char detail[512];
    int rc = drd_volume_push(cj, NULL, &st, detail, sizeof detail);
    if (rc == 0) {
        snprintf(ok, okcap, "%s: pushed %s to %s now, copy %s", cj->name, cj->vol_source, cj->to,
                 st.copy);
        return 1;
    }
    if (rc == DR_ENOTFOUND || rc == DR_EUSAGE || rc == DR_EAUTH || rc == DR_ETLS) {
        /* no retry mends these: say where the step can work */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        return dr_error_set(rc,
                            "volume %s: push to %s now: %s (this site's config pushes it, role "
                            "push: run the switchover on a host of this site that mounts '%s', "
                            "or from the standby site, where the step waits for a scheduled push)",
                            cj->name, cj->to, msg, cj->vol_source);
    }
    snprintf(why, cap, "volume %s: push to %s now: %s%s", cj->name, cj->to, dr_error_msg(),
             rc == DR_EBUSY ? " (a scheduled push is running; pushing again after it)" : "");
    dr_error_clear();
    return 0;
}

int drd_runbook_volumes(const drd_config *cfg, int64_t fence_ms, int64_t deadline_ms, int dry_run,
                        drd_say_fn say, void *arg, char *res, size_t cap)
{
    const dr_conf *c = cfg->c;
    size_t n = 0, len = 0;
    char fence[40], why[768] = "";
    int rc = 0;
    for (size_t i = 0; i < c->n_jobs; i++)
        n += c->jobs[i].kind == DR_JOB_VOLUME;
    if (!n) {
        snprintf(res, cap, "no volume pairs in the config (volumes:): nothing to sync");
        return 0;
    }
    dr_time_iso_ms(fence_ms, fence, sizeof fence);
    char *done = calloc(c->n_jobs, 1);
    if (!done)
        return dr_error_set(DR_ENOMEM, "out of memory");
    res[0] = 0;
    for (size_t left = n;;) {
        why[0] = 0;
        for (size_t i = 0; i < c->n_jobs && rc == 0; i++) {
            const dr_conf_job *cj = &c->jobs[i];
            char ok[300] = "", w[768] = "";
            if (cj->kind != DR_JOB_VOLUME || done[i])
                continue;
            if (dry_run && cj->role == 0) {
                snprintf(ok, sizeof ok, "%s: would push %s to %s after the fence", cj->name,
                         cj->vol_source, cj->to);
                rc = 1;
            } else {
                rc = cj->role ? served_after(cj, fence_ms, fence, ok, sizeof ok, w, sizeof w)
                              : push_now(cj, ok, sizeof ok, w, sizeof w);
            }
            if (rc == 1) {
                done[i] = 1;
                left--;
                int k = snprintf(res + len, cap - len, "%s%s", len ? "; " : "", ok);
                len += k > 0 && (size_t)k < cap - len ? (size_t)k : 0;
                rc = 0;
            } else if (rc == 0 && !why[0]) {
                snprintf(why, sizeof why, "%s", w); /* the first volume that waits */
            }
        }
        if (rc < 0 || !left)
            break;
        if (dry_run) {
            snprintf(res + len, cap - len, "%swould wait: %s", len ? "; " : "", why);
            break;
        }
        if (dr_wall_ms() > deadline_ms || drd_stop) {
            rc = dr_error_set(drd_stop ? DR_EINTR : DR_ETIMEOUT, "%s%s", why,
                              drd_stop ? " (interrupted)" : " (the step's timeout is over)");
            break;
        }
        char line[800];
        snprintf(line, sizeof line, "waiting: %s", why);
        say(arg, line);
        dr_sleep_ms(1000);
    }
    free(done);
    return rc;
}
