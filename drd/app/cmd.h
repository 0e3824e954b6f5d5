/*
 * The drd command table and the helpers every command file shares. Each command lives in its own
 * cmd_*.c and returns a DR_E* code; main prints the one-line error and exits with its number.
 */
#ifndef DRD_APP_CMD_H
#define DRD_APP_CMD_H

#include "drd/core/core.h"

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct drd_cmd {
    const char *name;    /* "replicate etcd" */
    const char *summary; /* one line */
    const char *usage;   /* full --help text */
    int (*run)(int argc, char **argv);
} drd_cmd;

extern volatile sig_atomic_t drd_stop;
/* --progress / --no-progress (global flags, like --log-level): how one-shot commands show the
 * progress of long jobs (dr_progress_report_start). */
extern dr_progress_mode drd_progress_mode;
/* Install SIGTERM/SIGINT handlers that set drd_stop. */
void drd_signals_install(void);

/* A command's own flags through the one parser (dr_flags_parse, policies/options.c): names[i] is
 * "name" or "name=" (takes a value); values[i] gets the value, "" for a flag without one, NULL
 * when not given. No positional arguments. DR_EUSAGE with the parser's messages. */
int drd_parse_flags(int argc, char **argv, const char *const *names, size_t n, const char **values);
/* getopt_long over argv with our own one-line errors; returns the option value, -1 at the end, or
 * DR_EUSAGE (message set) for an unknown flag or a missing argument. Superseded by
 * drd_parse_flags and the option table (store_args.c); kept until no command uses it. */
int drd_getopt(int argc, char **argv, const struct option *opts, const char *cmd);
/* A byte count with an optional K/KiB, M/MiB, G/GiB suffix ("64MiB", "1.5M") in [min, max];
 * DR_EUSAGE naming flag otherwise. */
int drd_parse_bytes(const char *s, const char *flag, int64_t min, int64_t max, int64_t *out);
/* --etcd-max-recv-bytes, in every command that talks to etcd */
#define ETCD_RECV_HELP                                                                             \
    "  --etcd-max-recv-bytes N   largest etcd response accepted (default 2MiB, etcd's own\n"       \
    "                       limit; raise it for servers with a larger --max-request-bytes)\n"
/* True when argv contains --help or -h. */
int drd_wants_help(int argc, char **argv);

int cmd_replicate_etcd(int argc, char **argv);
int cmd_replicate_seed(int argc, char **argv);
int cmd_replicate_status(int argc, char **argv);
int cmd_replicate_verify(int argc, char **argv);
extern const char usage_replicate_etcd[], usage_replicate_seed[], usage_replicate_status[],
    usage_replicate_verify[];

int cmd_snapshot_save(int argc, char **argv);
int cmd_snapshot_follow(int argc, char **argv);
int cmd_snapshot_list(int argc, char **argv);
int cmd_snapshot_show(int argc, char **argv);
int cmd_snapshot_verify(int argc, char **argv);
int cmd_snapshot_get(int argc, char **argv);
int cmd_snapshot_delete(int argc, char **argv);
int cmd_snapshot_prune(int argc, char **argv);
int cmd_catalog_rebuild(int argc, char **argv);
int cmd_key_generate(int argc, char **argv);
int cmd_key_rotate(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_drill(int argc, char **argv);
int cmd_restore_keys(int argc, char **argv);
int cmd_drill_list(int argc, char **argv);
extern const char usage_restore[], usage_restore_keys[], usage_drill[], usage_drill_list[];
extern const char usage_snapshot_save[], usage_snapshot_follow[], usage_snapshot_list[],
    usage_snapshot_show[], usage_snapshot_verify[], usage_snapshot_get[], usage_snapshot_delete[],
    usage_snapshot_prune[], usage_catalog_rebuild[], usage_key_generate[], usage_key_rotate[];

/* "1,203 pods, 87 secrets, 5 other": the max largest buckets of kc, the rest as other
 * (cmd_restore.c; the drill's report, the daemon's status). */
struct dr_key_counts;
void drd_key_counts_line(const struct dr_key_counts *kc, size_t max, char *out, size_t cap);
/* A copy of kc's buckets, the largest first (then by name); caller frees; NULL: out of memory. */
struct dr_key_count *drd_key_counts_sorted(const struct dr_key_counts *kc);
int cmd_volume_serve(int argc, char **argv);
int cmd_volume_push(int argc, char **argv);
int cmd_volume_status(int argc, char **argv);
int cmd_volume_promote(int argc, char **argv);
extern const char usage_volume_serve[], usage_volume_push[], usage_volume_status[],
    usage_volume_promote[];
int cmd_fence(int argc, char **argv);
int cmd_failover(int argc, char **argv);
int cmd_failback(int argc, char **argv);
int cmd_runbook(int argc, char **argv);
extern const char usage_fence[], usage_failover[], usage_failback[], usage_runbook[];

int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
extern const char usage_run[], usage_status[];

#endif
