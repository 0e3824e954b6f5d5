/*
 * drd: the single binary. Finds the command in the table, runs it, prints its error as one line
 * on stderr and exits with the error's catalog number. Must never print secrets.
 */
#include "drd/app/cmd.h"
#include "drd/core/core.h"
#include "policies/policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const drd_cmd commands[] = {
    {"replicate etcd", "stream every revision from a primary etcd to a standby (live standby)",
     usage_replicate_etcd, cmd_replicate_etcd},
    {"replicate seed", "restore a snapshot of the primary into a data dir for the standby etcd",
     usage_replicate_seed, cmd_replicate_seed},
    {"replicate status", "show source revision, applied revision and lag", usage_replicate_status,
     cmd_replicate_status},
    {"replicate verify", "compare primary and standby at the same revision", usage_replicate_verify,
     cmd_replicate_verify},
    {"replicate volume serve", "receive volume syncs and keep point-in-time copies (standby)",
     usage_volume_serve, cmd_volume_serve},
    {"replicate volume push", "sync a directory (a PVC) to a volume server by rsync deltas",
     usage_volume_push, cmd_volume_push},
    {"replicate volume status", "last sync of each volume: time, bytes, files, in sync or not",
     usage_volume_status, cmd_volume_status},
    {"replicate volume promote", "copy the latest complete copy of a volume into a directory",
     usage_volume_promote, cmd_volume_promote},
    {"snapshot save", "take a full, compressed, encrypted etcd snapshot into a store",
     usage_snapshot_save, cmd_snapshot_save},
    {"snapshot follow", "write revision segments for point-in-time restore", usage_snapshot_follow,
     cmd_snapshot_follow},
    {"snapshot list", "list the snapshots and segments of a store", usage_snapshot_list,
     cmd_snapshot_list},
    {"snapshot show", "print the manifest of a snapshot or segment", usage_snapshot_show,
     cmd_snapshot_show},
    {"snapshot verify", "read snapshots back and check them completely", usage_snapshot_verify,
     cmd_snapshot_verify},
    {"snapshot get", "write the plain etcd snapshot file of a snapshot", usage_snapshot_get,
     cmd_snapshot_get},
    {"snapshot delete", "delete a snapshot or segment", usage_snapshot_delete, cmd_snapshot_delete},
    {"snapshot prune", "apply a retention policy (keep-last, hourly ... monthly)",
     usage_snapshot_prune, cmd_snapshot_prune},
    {"catalog rebuild", "recreate the local catalog from the store", usage_catalog_rebuild,
     cmd_catalog_rebuild},
    {"restore keys", "restore the keys under a prefix into a live etcd", usage_restore_keys,
     cmd_restore_keys},
    {"restore", "restore a snapshot, or any revision, into a new etcd data dir", usage_restore,
     cmd_restore},
    {"drill list", "the history of restore drills", usage_drill_list, cmd_drill_list},
    {"drill", "prove a backup restores and measure the restore time", usage_drill, cmd_drill},
    {"key generate", "write a new keyring with a random master key", usage_key_generate,
     cmd_key_generate},
    {"key rotate", "add a new current master key to a keyring", usage_key_rotate, cmd_key_rotate},
    {"run", "the daemon: replication, scheduled snapshots and drills, status server", usage_run,
     cmd_run},
    {"failover", "move the primary role: --planned (RPO 0) or --emergency --force", usage_failover,
     cmd_failover},
    {"failback", "after an emergency failover: demote the old primary, list what only it had",
     usage_failback, cmd_failback},
    {"runbook list", "the runbook runs (failover, failback) and their state", usage_runbook,
     cmd_runbook},
    {"runbook show", "one run's steps, results and audit trail", usage_runbook, cmd_runbook},
    {"runbook resume", "continue a stopped or failed run from its step", usage_runbook,
     cmd_runbook},
    {"runbook abort", "give a run up", usage_runbook, cmd_runbook},
    {"fence", "fence an etcd cluster (refuse writes) with etcd's alarm, lift or show it",
     usage_fence, cmd_fence},
    {"status", "what the daemon (drd run) is doing, or what it recorded when it is down",
     usage_status, cmd_status},
};
#define NCMD (sizeof commands / sizeof commands[0])

volatile sig_atomic_t drd_stop;
dr_progress_mode drd_progress_mode = DR_PROGRESS_AUTO;

static void on_signal(int sig)
{
    (void)sig;
    drd_stop = 1;
}

void drd_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int drd_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

int drd_getopt(int argc, char **argv, const struct option *opts, const char *cmd)
{
    opterr = 0;
    int idx = 0;
    int c = getopt_long(argc, argv, ":", opts, &idx);
    if (c == '?') {
        const char *bad = argv[optind - 1];
        return dr_error_set(DR_EUSAGE, "drd %s: unknown flag '%s' (see drd %s --help)", cmd,
                            bad ? bad : "?", cmd);
    }
    if (c == ':')
        return dr_error_set(DR_EUSAGE, "drd %s: flag '%s' needs a value", cmd, argv[optind - 1]);
    return c;
}

static int store_value(void *ctx, const dr_flag *f, const char *v)
{
    ((const char **)ctx)[f->id] = v ? v : "";
    return 0;
}

int drd_parse_flags(int argc, char **argv, const char *const *names, size_t n, const char **values)
{
    dr_flag flags[16];
    size_t n_pos = 0;
    if (n > sizeof flags / sizeof flags[0])
        return dr_error_set(DR_EUSAGE, "drd %s: too many flags", argv[0]);
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(names[i], "=");
        memset(&flags[i], 0, sizeof flags[i]);
        snprintf(flags[i].name, sizeof flags[i].name, "%.*s", (int)len, names[i]);
        flags[i].id = (int)i;
        flags[i].has_value = names[i][len] == '=';
        flags[i].allowed = 1;
        values[i] = NULL;
    }
    return dr_flags_parse(argc, argv, flags, n, store_value, values, NULL, 0, &n_pos);
}

int drd_parse_bytes(const char *s, const char *flag, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    double d = strtod(s, &end);
    int64_t mul = 1;
    if (!strcmp(end, "KiB") || !strcmp(end, "K"))
        mul = 1 << 10;
    else if (!strcmp(end, "MiB") || !strcmp(end, "M"))
        mul = 1 << 20;
    else if (!strcmp(end, "GiB") || !strcmp(end, "G"))
        mul = 1 << 30;
    else if (*end)
        return dr_error_set(DR_EUSAGE, "%s '%s': expected bytes, e.g. 64MiB", flag, s);
    if (end == s || !(d * (double)mul >= (double)min && d * (double)mul <= (double)max))
        return dr_error_set(DR_EUSAGE, "%s '%s': want %lld to %lld bytes", flag, s, (long long)min,
                            (long long)max);
    *out = (int64_t)(d * (double)mul);
    return 0;
}

/* The command list; group non-NULL: only that group's commands ("drd replicate --help"). */
static void print_help(FILE *f, const char *group)
{
    size_t gl = group ? strlen(group) : 0;
    fprintf(f,
            "drd %s: disaster recovery for etcd (live standby, snapshots, restore)\n\n"
            "usage: drd %s%s<command> [flags]      drd %s%s<command> --help\n\ncommands:\n",
            DRD_VERSION, group ? group : "", group ? " " : "", group ? group : "",
            group ? " " : "");
    for (size_t i = 0; i < NCMD; i++) {
        const char *n = commands[i].name;
        if (!group || (strncmp(n, group, gl) == 0 && (n[gl] == ' ' || n[gl] == 0)))
            fprintf(f, "  %-24s %s\n", n, commands[i].summary);
    }
    fprintf(f,
            "\nflags for every command:\n  --log-level L      debug, info, warn, error "
            "(default info; also DRD_LOG_LEVEL)\n"
            "  --progress         long jobs (snapshot save, restore, drill) show a progress line\n"
            "                     rewritten every second even when stderr is not a terminal\n"
            "                     (default: on a terminal that line, else a log line every 5 s)\n"
            "  --no-progress      no progress output\n"
            "\nExit status: 0 on success, else the error's number (docs/error-codes.md).\n");
}

int main(int argc, char **argv)
{
    const char *lvl = getenv("DRD_LOG_LEVEL");
    dr_log_level l;
    if (lvl && dr_log_parse_level(lvl, &l) == 0)
        dr_log_set_level(l);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_help(stdout, NULL);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("drd %s\n", DRD_VERSION);
        return 0;
    }
    /* strip global --progress / --no-progress and --log-level flags anywhere */
    for (int i = 1; i < argc; i++) {
        while (i < argc &&
               (strcmp(argv[i], "--progress") == 0 || strcmp(argv[i], "--no-progress") == 0)) {
            drd_progress_mode = argv[i][2] == 'n' ? DR_PROGRESS_OFF : DR_PROGRESS_LINE;
            memmove(&argv[i], &argv[i + 1], sizeof(char *) * (size_t)(argc - i));
            argc--;
        }
    }
    for (int i = 1; i < argc - 1; i++) {
        while (i < argc - 1 && strcmp(argv[i], "--log-level") == 0) {
            if (dr_log_parse_level(argv[i + 1], &l) < 0) {
                fprintf(stderr, "drd: %s\n", dr_error_msg());
                return 2;
            }
            dr_log_set_level(l);
            memmove(&argv[i], &argv[i + 2], sizeof(char *) * (size_t)(argc - i - 1));
            argc -= 2;
        }
    }
    for (size_t i = 0; i < NCMD; i++) {
        /* the command's words ("replicate volume push") against argv[1], argv[2], ... */
        const char *name = commands[i].name;
        int consumed = 1;
        const char *w = name;
        while (*w) {
            size_t wl = strcspn(w, " ");
            if (consumed >= argc || strncmp(argv[consumed], w, wl) != 0 || argv[consumed][wl])
                break;
            consumed++;
            w += wl;
            w += *w == ' ';
        }
        if (*w)
            continue;
        if (drd_wants_help(argc, argv)) {
            fputs(commands[i].usage, stdout);
            return 0;
        }
        /* argv for the command: argv[0] = command name, then its flags */
        char **cargv = argv + consumed - 1;
        int cargc = argc - consumed + 1;
        cargv[0] = (char *)name;
        optind = 1;
        dr_error_clear();
        int rc = commands[i].run(cargc, cargv);
        if (rc < 0) {
            const char *msg = dr_error_msg();
            fprintf(stderr, "drd: %s\n", msg[0] ? msg : dr_error_desc(rc));
        }
        return dr_error_exit_status(rc);
    }
    /* a known group without a valid subcommand */
    for (size_t i = 0; i < NCMD; i++) {
        size_t l1 = strcspn(commands[i].name, " ");
        if (strncmp(argv[1], commands[i].name, l1) == 0 && argv[1][l1] == 0) {
            if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
                print_help(stdout, argv[1]);
                return 0;
            }
            fprintf(stderr, "drd: unknown command 'drd %s %s' (see drd --help)\n", argv[1],
                    argc >= 3 ? argv[2] : "");
            return dr_error_exit_status(DR_EUSAGE);
        }
    }
    fprintf(stderr, "drd: unknown command '%s' (see drd --help)\n", argv[1]);
    return dr_error_exit_status(DR_EUSAGE);
}
