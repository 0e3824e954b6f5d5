/*
 * drd fence status|on|off --config F --cluster NAME: the fence by hand (docs/runbooks.md, "The
 * fence"). `on` activates etcd's CORRUPT alarm for the whole cluster, so it refuses every write
 * while reads keep working; `off` disarms it; `status` lists the active alarms. The runbooks'
 * fence step does the same; this command is for the operator who has to lift or check it.
 * Must never disarm an alarm it was not asked to (off disarms CORRUPT only, never NOSPACE: a full
 * database is etcd's to report).
 */
#include "drd/app/cmd.h"
#include "drd/app/daemon.h"
#include "drd/core/core.h"
#include "drd/lib/etcd/etcd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char usage_fence[] =
    "usage: drd fence status|on|off --config F --cluster NAME\n\n"
    "The fence is etcd's own CORRUPT alarm, raised for the whole cluster: etcd then refuses\n"
    "every write (put, delete, txn, compaction, lease grant and revoke) and keeps answering\n"
    "reads. It survives a restart of etcd. It does not stop auth or member changes, and anyone\n"
    "who may write to etcd can disarm it (etcdctl alarm disarm). See docs/runbooks.md.\n\n"
    "  status       list the cluster's active alarms (exit 0 either way)\n"
    "  on           fence: activate CORRUPT (a no-op when it is already active)\n"
    "  off          lift the fence: disarm CORRUPT (other alarms stay)\n"
    "  --config F   the daemon's YAML config\n"
    "  --cluster N  a cluster of the config\n";

enum { O_CONFIG = 3400, O_CLUSTER };

/* The cluster named name in cfg, or DR_EUSAGE listing the names. */
int drd_config_cluster(const drd_config *cfg, const char *name, const dr_etcd_opts **out)
{
    const dr_conf *c = cfg->c;
    char names[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < c->n_clusters; i++) {
        if (strcmp(c->clusters[i].name, name) == 0) {
            *out = &c->clusters[i].etcd;
            return 0;
        }
        int w =
            snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", c->clusters[i].name);
        len += w > 0 && (size_t)w < sizeof names - len ? (size_t)w : 0;
    }
    return dr_error_set(DR_EUSAGE, "%s: no cluster '%s' (clusters: %s)", c->file, name,
                        c->n_clusters ? names : "none");
}

int drd_fence_state(dr_etcd *e, int *fenced, char *desc, size_t cap)
{
    dr_etcd_alarm *a = NULL;
    size_t n = 0, len = 0;
    int rc = dr_etcd_alarm_list(e, &a, &n);
    if (rc < 0)
        return rc;
    *fenced = 0;
    desc[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i].type == DR_ALARM_CORRUPT)
            *fenced = 1;
        int w = snprintf(desc + len, cap - len, "%s%s (member %" PRIx64 "%s)", i ? ", " : "",
                         dr_etcd_alarm_name(a[i].type), a[i].member_id,
                         a[i].member_id ? "" : ": whole cluster");
        len += w > 0 && (size_t)w < cap - len ? (size_t)w : 0;
    }
    if (!n)
        snprintf(desc, cap, "no alarm");
    free(a);
    return 0;
}

int cmd_fence(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"cluster", required_argument, NULL, O_CLUSTER},
        {0, 0, 0, 0},
    };
    const char *path = NULL, *cluster = NULL, *action = NULL;
    int c, rc = 0, fenced = 0;
    drd_config *cfg = NULL;
    dr_etcd *e = NULL;
    const dr_etcd_opts *eo = NULL;
    char desc[512];
    while ((c = drd_getopt(argc, argv, opts, "fence")) != -1) {
        if (c < 0)
            return c;
        if (c == O_CONFIG)
            path = optarg;
        else
            cluster = optarg;
    }
    if (optind < argc)
        action = argv[optind++];
    if (optind < argc)
        return dr_error_set(DR_EUSAGE, "drd fence: unexpected argument '%s'", argv[optind]);
    if (!action || (strcmp(action, "status") && strcmp(action, "on") && strcmp(action, "off")))
        return dr_error_set(DR_EUSAGE, "drd fence: say status, on or off (see drd fence --help)");
    if (!path || !cluster)
        return dr_error_set(DR_EUSAGE, "drd fence: --config and --cluster are required");
    if ((rc = drd_config_load(path, &cfg)) < 0 || (rc = drd_config_cluster(cfg, cluster, &eo)) < 0)
        goto out;
    if ((rc = dr_etcd_open(&e, eo)) < 0)
        goto out;
    if (!strcmp(action, "on")) {
        if ((rc = drd_fence_state(e, &fenced, desc, sizeof desc)) == 0 && !fenced)
            rc = dr_etcd_alarm_activate(e, 0, DR_ALARM_CORRUPT);
        if (rc == 0)
            dr_info("fence: cluster %s now refuses writes (CORRUPT alarm)", cluster);
    } else if (!strcmp(action, "off")) {
        size_t n = 0;
        rc = dr_etcd_alarm_disarm(e, DR_ALARM_CORRUPT, &n);
        if (rc == 0)
            dr_info("fence: cluster %s: %zu CORRUPT alarm%s disarmed", cluster, n,
                    n == 1 ? "" : "s");
    }
    if (rc == 0 && (rc = drd_fence_state(e, &fenced, desc, sizeof desc)) == 0)
        printf("%s: %s (%s)\n", cluster, fenced ? "FENCED" : "not fenced", desc);
out:
    dr_etcd_close(e);
    drd_config_free(cfg);
    return rc;
}
