/*
 * drd run --config F [--check]: the daemon (drd/app/daemon.c), or only the config check.
 */
#include "drd/app/cmd.h"
#include "drd/app/daemon.h"
#include "drd/core/core.h"

#include <stdio.h>
#include <string.h>

const char usage_run[] =
    "usage: drd run --config F [--check]\n\n"
    "Runs the jobs of the config F (docs/daemon.md): replication (continuous, restarted with\n"
    "backoff), scheduled snapshots and drills, and a status server with /healthz, /readyz,\n"
    "/metrics and /status. SIGTERM/SIGINT: stop starting jobs, let running ones finish within\n"
    "the config's grace, exit 0. SIGHUP: reload F (a bad config is refused and the old one\n"
    "kept).\n\n"
    "  --config F   the YAML config\n"
    "  --check      check F (keys, types, schedules, references, files, time zones) and exit:\n"
    "               0, or the first problem as file:line:column: message\n";

int cmd_run(int argc, char **argv)
{
    static const char *const names[] = {"config=", "check"};
    const char *v[2];
    const char *path = NULL;
    int check = 0, rc = 0;
    drd_config *cfg = NULL;
    if ((rc = drd_parse_flags(argc, argv, names, 2, v)) < 0)
        return rc;
    path = v[0];
    check = v[1] != NULL;
    if (!path)
        return dr_error_set(DR_EUSAGE, "drd run: --config is required (see drd run --help)");
    if ((rc = drd_config_load(path, &cfg)) < 0)
        goto out;
    if (check) {
        size_t n[DR_JOB_KINDS] = {0};
        for (size_t i = 0; i < cfg->c->n_jobs; i++)
            n[cfg->c->jobs[i].kind]++;
        printf("%s: ok (%zu clusters, %zu stores; jobs: %zu replicate, %zu snapshot, %zu "
               "drill",
               path, cfg->c->n_clusters, cfg->c->n_stores, n[DR_JOB_REPLICATE], n[DR_JOB_SNAPSHOT],
               n[DR_JOB_DRILL]);
        if (n[DR_JOB_VOLUME])
            printf(", %zu volume", n[DR_JOB_VOLUME]);
        printf(")\n");
        goto out;
    }
    rc = drd_daemon_run(cfg, path);
    cfg = NULL;
out:
    drd_config_free(cfg);
    return rc;
}
