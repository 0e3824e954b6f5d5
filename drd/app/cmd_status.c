/*
 * drd status --config F [--json]: asks the running daemon (GET /status.txt or /status on the
 * config's listen address); when it does not answer, prints what state_dir recorded (each
 * scheduled job's last success and last scheduled instant) and what each store's catalog says
 * (the newest restorable point, as of the catalog's last sync), and exits DR_EUNAVAILABLE.
 * Must never print a secret (it prints only what the daemon's status shows), and never contact
 * a store (the daemon may be down because the store is unreachable).
 */
#include "drd/app/cmd.h"
#include "drd/app/daemon.h"
#include "drd/app/runbook.h"
#include "drd/core/core.h"
#include "drd/lib/http/http.h"
#include "drd/lib/repo/repo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char usage_status[] =
    "usage: drd status --config F [--json]\n\n"
    "Shows the jobs of the daemon running with config F (drd run): state, last result, last\n"
    "success, next run, missed runs, replication lag, the stores' newest restorable points,\n"
    "the last drill's restore time, the failover pair's roles and epoch, the encryption keys\n"
    "the standby's data needs, the newest runbook run with its RPO and RTO, why it is not\n"
    "ready. When the daemon does not answer on the config's listen address, shows what its\n"
    "state_dir recorded, each store's newest restorable point from its catalog (as of the\n"
    "daemon's last sync; the store is not contacted) and the newest runbook run, and exits\n"
    "with DR_EUNAVAILABLE (4).\n\n"
    "  --config F   the daemon's YAML config\n"
    "  --json       the daemon's /status JSON\n";

/* GET path from the daemon at listen: its body on 200. */
static int get(const char *listen, const char *path, dr_buf *body)
{
    int code = 0;
    int rc = dr_http_get(listen, path, 5000, &code, body);
    if (rc == DR_EUNAVAILABLE)
        return dr_error_wrap(rc, "the daemon does not answer");
    if (rc < 0)
        return dr_error_wrap(rc, "the daemon");
    if (code != 200)
        return dr_error_set(DR_EPROTO, "the daemon on %s answered %d for %s", listen, code, path);
    return 0;
}

static void iso(char *buf, size_t cap, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

typedef struct store_point {
    int64_t rev, ms; /* ms 0: no full snapshot in the catalog */
    char why[1200];  /* "": read; else why it could not be */
    char catalog[1024];
} store_point;

/* The newest restorable point of store i by its catalog alone (as the daemon's point job computes
 * it from the same catalog after each sync). */
static void store_newest(const drd_config *cfg, size_t i, store_point *p)
{
    dr_repo_opts ro;
    dr_repo *r = NULL;
    memset(p, 0, sizeof *p);
    drd_store_repo_opts(cfg, i, &ro, p->catalog, sizeof p->catalog);
    if (ro.catalog_path != p->catalog) /* configured: copied, so that p names it */
        snprintf(p->catalog, sizeof p->catalog, "%s", ro.catalog_path);
    if (access(p->catalog, F_OK) != 0) { /* opening would create an empty one */
        snprintf(p->why, sizeof p->why, "no catalog at %s yet", p->catalog);
        return;
    }
    ro.catalog_path = p->catalog;
    if (dr_repo_open(&ro, &r) < 0 || dr_repo_newest_point(r, &p->rev, &p->ms) < 0)
        snprintf(p->why, sizeof p->why, "%s", dr_error_msg());
    dr_repo_close(r);
    dr_error_clear();
}

/* What state_dir says about the scheduled jobs. */
static void recorded(const drd_config *cfg, int json, const char *why)
{
    const dr_conf *c = cfg->c;
    if (json) {
        dr_buf b = {0};
        dr_buf_printf(&b, "{\"daemon\":\"unreachable\",\"reason\":");
        dr_buf_json_str(&b, why, strlen(why));
        dr_buf_printf(&b, ",\"jobs\":[");
        for (size_t i = 0, n = 0; i < c->n_jobs; i++) {
            int64_t prev = 0, ok = 0;
            if (!c->jobs[i].scheduled ||
                drd_job_state_read(cfg, c->jobs[i].kind, c->jobs[i].name, &prev, &ok) < 0)
                continue;
            dr_buf_printf(&b, "%s{\"kind\":\"%s\",\"name\":", n++ ? "," : "",
                          dr_job_kind_name(c->jobs[i].kind));
            dr_buf_json_str(&b, c->jobs[i].name, strlen(c->jobs[i].name));
            dr_buf_printf(&b, ",\"last_success\":%.3f,\"last_scheduled\":%.3f}",
                          (double)ok / 1000.0, (double)prev / 1000.0);
        }
        dr_buf_printf(&b, "],\"stores\":[");
        for (size_t i = 0; i < c->n_stores; i++) {
            store_point p;
            store_newest(cfg, i, &p);
            dr_buf_printf(&b, "%s{\"name\":", i ? "," : "");
            dr_buf_json_str(&b, c->stores[i].name, strlen(c->stores[i].name));
            dr_buf_printf(&b, ",\"catalog\":");
            dr_buf_json_str(&b, p.catalog, strlen(p.catalog));
            if (p.why[0]) {
                dr_buf_printf(&b, ",\"error\":");
                dr_buf_json_str(&b, p.why, strlen(p.why));
            } else {
                dr_buf_printf(&b, ",\"newest_revision\":%" PRId64 ",\"newest_time\":%.3f", p.rev,
                              (double)p.ms / 1000.0);
            }
            dr_buf_printf(&b, "}");
        }
        dr_buf_printf(&b, "],\"runbook\":");
        drd_runbook_status(cfg, &b, 1);
        dr_buf_printf(&b, "}\n");
        fputs(b.data ? b.data : "", stdout);
        dr_buf_free(&b);
        dr_error_clear();
        return;
    }
    printf("daemon: NOT RUNNING (%s); recorded in %s:\n", why, c->state_dir);
    for (size_t i = 0; i < c->n_jobs; i++) {
        const dr_conf_job *j = &c->jobs[i];
        int64_t prev = 0, ok = 0;
        char a[32] = "never", s[32];
        if (!j->scheduled)
            continue;
        if (drd_job_state_read(cfg, j->kind, j->name, &prev, &ok) < 0) {
            printf("\n%s %s: no record\n", dr_job_kind_name(j->kind), j->name);
            continue;
        }
        if (ok)
            iso(a, sizeof a, ok);
        iso(s, sizeof s, prev);
        printf("\n%s %s: last success %s; last scheduled %s (%s)\n", dr_job_kind_name(j->kind),
               j->name, a, s, j->schedule.text);
    }
    int64_t now = dr_wall_ms();
    for (size_t i = 0; i < c->n_stores; i++) {
        store_point p;
        char t[32];
        store_newest(cfg, i, &p);
        if (p.why[0])
            printf("\nstore %s: %s\n", c->stores[i].name, p.why);
        else if (!p.ms)
            printf("\nstore %s: no restorable point in its catalog (%s)\n", c->stores[i].name,
                   p.catalog);
        else {
            iso(t, sizeof t, p.ms);
            printf("\nstore %s: newest restorable revision %" PRId64 ", taken %s (%" PRId64
                   "s ago), from its catalog %s as of the daemon's last sync\n",
                   c->stores[i].name, p.rev, t, (now - p.ms) / 1000, p.catalog);
        }
    }
    dr_buf rb = {0};
    drd_runbook_status(cfg, &rb, 0);
    fputs(rb.data ? rb.data : "", stdout);
    dr_buf_free(&rb);
    dr_error_clear();
}

int cmd_status(int argc, char **argv)
{
    static const char *const names[] = {"config=", "json"};
    const char *v[2];
    const char *path = NULL;
    int json = 0, rc = 0;
    drd_config *cfg = NULL;
    dr_buf body = {0};
    if ((rc = drd_parse_flags(argc, argv, names, 2, v)) < 0)
        return rc;
    path = v[0];
    json = v[1] != NULL;
    if (!path)
        return dr_error_set(DR_EUSAGE, "drd status: --config is required (see drd status --help)");
    if ((rc = drd_config_load(path, &cfg)) < 0)
        goto out;
    if (!cfg->c->listen)
        rc = dr_error_set(DR_EUNAVAILABLE, "the config has no listen address");
    else
        rc = get(cfg->c->listen, json ? "/status" : "/status.txt", &body);
    if (rc == 0) {
        fputs(body.data ? body.data : "", stdout);
    } else if (rc == DR_EUNAVAILABLE || rc == DR_EPROTO) {
        char why[512];
        snprintf(why, sizeof why, "%s", dr_error_msg());
        recorded(cfg, json, why);
        rc = dr_error_set(DR_EUNAVAILABLE, "drd status: the daemon is not running (%s)", why);
    }
out:
    dr_buf_free(&body);
    drd_config_free(cfg);
    return rc;
}
