/*
 * drd failover --planned | --emergency --force, drd failback, drd runbook list|show|resume|abort:
 * the commands of the runbook runner (drd/app/runbook.c, docs/runbooks.md).
 */
#include "drd/app/cmd.h"
#include "drd/app/runbook.h"
#include "drd/core/core.h"

#include <stdio.h>
#include <string.h>

const char usage_failover[] =
    "usage: drd failover --config F --planned [--dry-run]\n"
    "       drd failover --config F --emergency --force [--dry-run]\n\n"
    "Moves the primary role to the other site with the config's runbook (failover.planned or\n"
    "failover.emergency; docs/runbooks.md). Which side is the primary now is read from the\n"
    "newest fencing epoch, so the same command moves it back. The run's state is kept in\n"
    "state_dir/runs/<run id>: when it stops (killed, a step failed), drd runbook resume <run id>\n"
    "continues from the step it was in.\n\n"
    "  --planned     both sites up: fence the primary, drain, promote the standby, replicate\n"
    "                back (RPO 0); refused unless both answer and the lag is under the bound\n"
    "  --emergency   the primary is gone: promote the standby at the last revision it applied\n"
    "                and record what was lost; needs --force, and the primary must not have\n"
    "                answered for failover.unreachable_for\n"
    "  --force       confirms an emergency failover\n"
    "  --dry-run     print the plan and run the read-only checks; change nothing\n"
    "  --config F    the daemon's YAML config (its failover section)\n";

const char usage_failback[] =
    "usage: drd failback --config F [--dry-run]\n\n"
    "After an emergency failover, once the old primary's site is back: fences the old primary,\n"
    "lists what it wrote after the promoted revision into the run's divergent.tsv, and makes it\n"
    "the standby of the new primary (exact mode: it waits for a reseed, telling how). Then\n"
    "drd failover --planned returns the roles. Runbook: failover.failback (docs/runbooks.md).\n\n"
    "  --dry-run     print the plan and run the read-only checks; change nothing\n"
    "  --config F    the daemon's YAML config\n";

const char usage_runbook[] = "usage: drd runbook list|show RUN|resume RUN|abort RUN --config F\n\n"
                             "  list         every run in state_dir/runs, newest last\n"
                             "  show RUN     its steps, their results and where the audit is\n"
                             "  resume RUN   continue a stopped or failed run from its step\n"
                             "  abort RUN    give a run up (what it did stays done)\n";

enum { O_CONFIG = 3500, O_PLANNED, O_EMERGENCY, O_FORCE, O_DRY };

static int parse(int argc, char **argv, const char *cmd, const char **config, int *planned,
                 int *emergency, int *force, int *dry)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG}, {"planned", no_argument, NULL, O_PLANNED},
        {"emergency", no_argument, NULL, O_EMERGENCY}, {"force", no_argument, NULL, O_FORCE},
        {"dry-run", no_argument, NULL, O_DRY},         {0, 0, 0, 0},
    };
    int c;
    while ((c = drd_getopt(argc, argv, opts, cmd)) != -1) {
        if (c < 0)
            return c;
        if (c == O_CONFIG)
            *config = optarg;
        else if (c == O_PLANNED && planned)
            *planned = 1;
        else if (c == O_EMERGENCY && emergency)
            *emergency = 1;
        else if (c == O_FORCE && force)
            *force = 1;
        else if (c == O_DRY && dry)
            *dry = 1;
        else
            return dr_error_set(DR_EUSAGE, "drd %s: flag '%s' does not apply (see drd %s --help)",
                                cmd, argv[optind - 1], cmd);
    }
    if (!*config)
        return dr_error_set(DR_EUSAGE, "drd %s: --config is required", cmd);
    return 0;
}

int cmd_failover(int argc, char **argv)
{
    const char *config = NULL;
    int planned = 0, emergency = 0, force = 0, dry = 0;
    drd_config *cfg = NULL;
    int rc = parse(argc, argv, "failover", &config, &planned, &emergency, &force, &dry);
    if (rc < 0)
        return rc;
    if (optind < argc)
        return dr_error_set(DR_EUSAGE, "drd failover: unexpected argument '%s'", argv[optind]);
    if (planned == emergency)
        return dr_error_set(DR_EUSAGE, "drd failover: say --planned or --emergency");
    if (emergency && !force && !dry)
        return dr_error_set(DR_EUSAGE,
                            "drd failover --emergency promotes the standby with whatever it has: "
                            "add --force to confirm (or --dry-run to see the plan)");
    if (planned && force)
        return dr_error_set(DR_EUSAGE, "drd failover: --force is for --emergency only");
    if ((rc = drd_config_load(config, &cfg)) == 0)
        rc = drd_runbook_start(cfg, planned ? DRD_OP_PLANNED : DRD_OP_EMERGENCY, dry);
    drd_config_free(cfg);
    return rc;
}

int cmd_failback(int argc, char **argv)
{
    const char *config = NULL;
    int dry = 0;
    drd_config *cfg = NULL;
    int rc = parse(argc, argv, "failback", &config, NULL, NULL, NULL, &dry);
    if (rc < 0)
        return rc;
    if (optind < argc)
        return dr_error_set(DR_EUSAGE, "drd failback: unexpected argument '%s'", argv[optind]);
    if ((rc = drd_config_load(config, &cfg)) == 0)
        rc = drd_runbook_start(cfg, DRD_OP_FAILBACK, dry);
    drd_config_free(cfg);
    return rc;
}

int cmd_runbook(int argc, char **argv)
{
    const char *config = NULL, *action = NULL, *run = NULL;
    drd_config *cfg = NULL;
    int rc = parse(argc, argv, "runbook", &config, NULL, NULL, NULL, NULL);
    if (rc < 0)
        return rc;
    /* the command table names "runbook list" etc.: the action is in argv[0] */
    action = strncmp(argv[0], "runbook ", 8) == 0 ? argv[0] + 8 : NULL;
    if (optind < argc)
        run = argv[optind++];
    if (optind < argc)
        return dr_error_set(DR_EUSAGE, "drd runbook: unexpected argument '%s'", argv[optind]);
    int list = action && !strcmp(action, "list");
    if (!action ||
        (!list && strcmp(action, "show") && strcmp(action, "resume") && strcmp(action, "abort")))
        return dr_error_set(DR_EUSAGE, "drd runbook: say list, show, resume or abort");
    if (list == (run != NULL))
        return dr_error_set(DR_EUSAGE, "drd runbook %s: %s", action,
                            list ? "takes no run" : "name the run (drd runbook list)");
    if ((rc = drd_config_load(config, &cfg)) < 0)
        goto out;
    if (list)
        rc = drd_runbook_list(cfg);
    else if (!strcmp(action, "show"))
        rc = drd_runbook_show(cfg, run);
    else if (!strcmp(action, "resume"))
        rc = drd_runbook_resume(cfg, run);
    else
        rc = drd_runbook_abort(cfg, run);
out:
    drd_config_free(cfg);
    return rc;
}
