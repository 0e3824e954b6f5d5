/*
 * policies: the policy model of drd (retention of snapshots and segments; later schedules,
 * filters, runbook steps).
 *
 * Pure logic: nothing here does I/O, reads the clock or touches a store. Callers hand in what the
 * store holds and get back decisions they carry out themselves. A plan must never delete a point
 * that a restore of a kept point needs (see docs/retention.md).
 */
#ifndef DRD_POLICIES_H
#define DRD_POLICIES_H

#include <stddef.h>
#include <stdint.h>

#include "drd/lib/etcd/etcd.h"
#include "drd/lib/repo/repo.h"
#include "drd/lib/yaml/yaml.h"

/* ---- retention ---- */

typedef enum { DR_POINT_FULL = 0, DR_POINT_INCR = 1 } dr_point_kind;

/* One object of the snapshot store, as retention sees it.
 *  - DR_POINT_FULL: a full snapshot at revision rev_end (rev_start is ignored); time_ms is its
 *    creation time.
 *  - DR_POINT_INCR: a segment holding revisions [rev_start, rev_end]; time_ms is the time of its
 *    last event (or its close).
 * Times are wall-clock milliseconds since the epoch; their UTC calendar gives the buckets. */
typedef struct dr_point {
    const char *id; /* borrowed; printed in reasons */
    dr_point_kind kind;
    int64_t rev_start, rev_end;
    int64_t time_ms;
} dr_point;

/* Counts of full snapshots to keep per rule; 0 disables a rule, negative is refused. */
typedef struct dr_retention {
    int keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly;
} dr_retention;

/* The decision for one point: keep (1) or delete (0), and why in one line, e.g.
 * "keep-last 1/3, daily 2026-11-21 (2/7)". */
typedef struct dr_retention_decision {
    int keep;
    char reason[160];
} dr_retention_decision;

/* Decides which points to keep under policy r (grandfather-father-son for full snapshots, every
 * segment after the oldest kept full snapshot for point-in-time restore; docs/retention.md).
 * pts holds n points in any order; out (n entries, caller-owned) gets out[i] for pts[i]. The plan
 * depends only on the points (never on the current time) and not on their order.
 * Returns 0, DR_EUSAGE when every keep option is 0 (refusing to delete everything), an option is
 * negative, or a point is malformed (no id, unknown kind, rev_start > rev_end for a segment, time
 * outside the calendar), DR_ENOMEM. On error out is left undefined. */
int dr_retention_plan(const dr_retention *r, const dr_point *pts, size_t n,
                      dr_retention_decision *out);

/* ---- time zones ----
 * A time zone from the tz database, parsed from the bytes of its TZif file (RFC 8536; the caller
 * reads /usr/share/zoneinfo/<name>): the UTC offset at any instant, from the transitions in the
 * file and, after the last one, the POSIX TZ rule in its footer. Immutable once parsed, so one
 * zone may serve any number of threads (unlike TZ= with localtime_r/mktime, which is process-wide
 * state). */
typedef struct dr_tz dr_tz;
/* Parses a TZif file (version 1 to 4; zones with leap seconds, the "right/" ones, are refused).
 * name is kept for messages. DR_EUSAGE naming the zone when the data is malformed, DR_ENOMEM.
 * Caller frees with dr_tz_free. */
int dr_tz_parse(const char *name, const void *data, size_t len, dr_tz **out);
void dr_tz_free(dr_tz *z);
/* The zone's name ("UTC" for NULL). Borrowed. */
const char *dr_tz_name(const dr_tz *z);
/* Seconds east of UTC at the instant t (seconds since the epoch); 0 for z == NULL (UTC). */
int32_t dr_tz_offset(const dr_tz *z, int64_t t);

/* ---- schedules ----
 * Text forms (docs/daemon.md):
 *   "M H DOM MON DOW"        5-field cron: numbers, '*', ranges a-b, steps a-b/n a/n (and
 *                            '*' with /n),
 *                            lists; month and weekday names (jan, mon); weekday 7 is Sunday.
 *                            When both DOM and DOW are restricted (neither covers its whole
 *                            range), a day matches either (as cron and croniter do).
 *   "CRON_TZ=Zone M H ..."   the same, in the tz database zone Zone (default UTC); the caller
 *                            loads the zone (dr_schedule_set_tz) before computing runs.
 *   "@hourly" "@daily" "@midnight" "@weekly" "@monthly" "@yearly" "@annually" (cron
 *                            shorthands, also after CRON_TZ=)
 *   "@every D"               every D (1s or more; "30s", "5m", "1h"), at multiples of D since
 *                            the epoch, so the rhythm survives restarts.
 * Daylight saving time in a zone: every wall-clock time runs at most once. A time skipped by a
 * change to summer time runs once, at the end of the gap; a time repeated by the change back runs
 * at its first occurrence only. */
typedef enum { DR_SCHED_CRON = 0, DR_SCHED_EVERY = 1 } dr_schedule_kind;

typedef struct dr_schedule {
    dr_schedule_kind kind;
    int64_t every_ms; /* DR_SCHED_EVERY */
    uint64_t minutes; /* bit m: minute m (0-59) */
    uint32_t hours;   /* bit h (0-23) */
    uint32_t doms;    /* bit d (1-31) */
    uint16_t months;  /* bit m (1-12) */
    uint8_t dows;     /* bit d (0-6, 0 = Sunday) */
    int dom_star;     /* DOM covers 1-31 */
    int dow_star;     /* DOW covers every weekday */
    char tz_name[64]; /* from CRON_TZ=, "" for UTC */
    const dr_tz *tz;  /* borrowed; NULL: UTC (must be set when tz_name is not empty) */
    char text[128];   /* the text parsed, for messages */
} dr_schedule;

/* Parses text into *out. DR_EUSAGE with a message naming the field and the problem, e.g.
 * "hour field '25': 25 is out of range 0-23", or a DOM/month combination that never occurs
 * ("day-of-month field '31': never in the months of '2,4'"). */
int dr_schedule_parse(const char *text, dr_schedule *out);
/* Attaches the zone named by CRON_TZ (borrowed: it must outlive the schedule). */
void dr_schedule_set_tz(dr_schedule *s, const dr_tz *tz);
/* The first run strictly after after_ms (ms since the epoch) into *next_ms. DR_ENOTFOUND when
 * there is none within ten years (only a 29 February far away), DR_EUSAGE when the schedule names
 * a zone that is not attached. */
int dr_schedule_next(const dr_schedule *s, int64_t after_ms, int64_t *next_ms);

/* What a job's schedule asks for at now, given prev_ms, the newest scheduled instant the job has
 * already accounted for (run or missed; for a new job the daemon's start):
 *  - newest_ms: the newest scheduled instant in (prev_ms, now_ms], 0 when none (the caller moves
 *    prev_ms there);
 *  - due_ms: newest_ms when it is at most grace_ms old (run it now), else 0;
 *  - missed: the instants in (prev_ms, now_ms] that will not run (every one but a due one);
 *    counted up to 1,000,000 for cron schedules (a long downtime of a minutely job);
 *  - next_ms: the first instant after now_ms.
 * The caller counts a due run as missed too when the previous run of the job is still going: runs
 * are skipped, never piled up. DR_ENOTFOUND / DR_EUSAGE as dr_schedule_next. */
typedef struct dr_schedule_tick {
    int64_t newest_ms, due_ms, missed, next_ms;
} dr_schedule_tick;
int dr_schedule_catch_up(const dr_schedule *s, int64_t prev_ms, int64_t now_ms, int64_t grace_ms,
                         dr_schedule_tick *out);

/* ---- options: one table for config keys and command-line flags ----
 * Every setting of a cluster, a store or a job is named once here: its config key, its flag (when
 * a command takes it) and where its value goes, in the same records the commands fill
 * (dr_etcd_opts, dr_repo_opts) or in the job records below. A cluster's flags carry the side as
 * their prefix: key "cacert" is --etcd-cacert, --source-cacert or --target-cacert, and key
 * "endpoints" is --etcd, --source or --target; a flag written with its "--" is the same on
 * every side (--timeout, --etcd-max-recv-bytes).
 * docs/daemon.md lists the table (tools/gen-daemon-keys writes it). */
typedef enum {
    DR_SCOPE_TOP = 0,   /* dr_conf */
    DR_SCOPE_CLUSTER,   /* dr_etcd_opts */
    DR_SCOPE_STORE,     /* dr_repo_opts */
    DR_SCOPE_REPLICATE, /* dr_conf_job */
    DR_SCOPE_SNAPSHOT,  /* dr_conf_job */
    DR_SCOPE_DRILL,     /* dr_conf_job */
    DR_SCOPE_RETENTION, /* dr_retention */
    DR_SCOPE_FAILOVER,  /* dr_conf_failover */
    DR_SCOPE_PEER,      /* dr_conf_peer */
    DR_SCOPE_VOLUME,    /* dr_conf_job */
} dr_opt_scope;

typedef enum {
    DR_OPT_STR = 0, /* const char * */
    DR_OPT_FILE,    /* const char *, a file that must be readable (secrets live in files) */
    DR_OPT_URLS,    /* const char *, "a,b": a list or a comma-separated string */
    DR_OPT_LIST,    /* dr_conf_list: a list or one string */
    DR_OPT_BOOL,    /* int */
    DR_OPT_MS,      /* int64_t milliseconds from a duration ("10s") */
    DR_OPT_INT,     /* int, min..max */
    DR_OPT_I64,     /* int64_t, min..max */
    DR_OPT_MIB,     /* size_t bytes from MiB, min..max MiB */
    DR_OPT_BYTES,   /* int64_t bytes from "4MiB", "512KiB", "1G" or a number */
    DR_OPT_ENUM,    /* int: index in choices "a|b" */
    DR_OPT_SCHED,   /* dr_schedule */
    DR_OPT_MAP,     /* a nested map of scope sub (retention) */
} dr_opt_type;

typedef struct dr_option {
    dr_opt_scope scope;
    const char *key; /* config key */
    const char
        *flag; /* flag without "--" (cluster scope: after the side's prefix); NULL: config only */
    dr_opt_type type;
    size_t offset; /* in the scope's record */
    int64_t min, max;
    const char *choices; /* DR_OPT_ENUM */
    int required;
    dr_opt_scope sub; /* DR_OPT_MAP */
    const char *help;
    /* DR_OPT_FILE that holds a secret (keyring, TLS key, credentials): what it is in messages
     * ("keyring"); the caller checks it private to its owner, as the commands do */
    const char *secret;
} dr_option;

/* The table, ended by an entry with key NULL. */
extern const dr_option dr_options[];

/* The row of scope with config key key; NULL when there is none. */
const dr_option *dr_option_find(dr_opt_scope scope, const char *key);

/* Parses text as o's type into rec + o->offset, with o's range: the one value parser of the
 * config (for scalars) and the flags. what names the setting in messages ("--window",
 * "replicate[0].window"). A DR_OPT_LIST value is appended (rec's list is then caller-owned:
 * free its v); DR_OPT_BOOL takes "true" or "false"; DR_OPT_MAP is not a scalar (DR_EUSAGE).
 * Strings are borrowed from text. DR_EUSAGE "what: problem", DR_ENOMEM. */
int dr_option_parse(const dr_option *o, const char *text, const char *what, void *rec);

/* ---- flags: a command's command line, from the same rows ----
 * A command lists the flags it knows: rows of dr_options (their value is parsed into the
 * command's record by dr_option_parse, so a flag and a config key share spelling, type, range
 * and messages) and a few of its own (--json, --out, ...), which go to its callback. Flags known
 * to the program but not taken by this command are listed with allowed = 0: refused with "does
 * not apply here" rather than "unknown". */
typedef struct dr_flag {
    char name[48];        /* without "--": "source-cacert" */
    const dr_option *opt; /* a row: its value goes into rec; NULL: the command's own flag */
    void *rec;
    int id;        /* own flags: passed to the callback */
    int has_value; /* own flags: takes a value (rows: all but DR_OPT_BOOL) */
    int allowed;
} dr_flag;

/* Fills *f for row (scope, key) writing into rec. For DR_SCOPE_CLUSTER, side ("etcd",
 * "source", "target") prefixes the flag: key "cacert" is --source-cacert, "endpoints" is
 * --source; a row whose flag starts with "--" is the same on every side. DR_ENOTFOUND when the
 * row does not exist or has no flag (a bug in the caller: tests catch it). */
int dr_flag_row(dr_flag *f, dr_opt_scope scope, const char *key, const char *side, void *rec,
                int allowed);

/* Called for the command's own flags; value is NULL for a flag without one. */
typedef int (*dr_flag_fn)(void *ctx, const dr_flag *f, const char *value);

/* Parses argv[1..argc-1] (argv[0] is the command's name, "snapshot save", for messages):
 * "--name VALUE" and "--name=VALUE"; "--" ends the flags; an argument not starting with '-' (or
 * "-" alone) is positional, kept in pos (at most max_pos, *n_pos set). A row's flag is parsed
 * into every allowed entry of that name (one --timeout for a command's etcd and store). Returns
 * 0, the callback's error, or DR_EUSAGE: "drd CMD: unknown flag '--x' (known: --a, --b)",
 * "drd CMD: flag '--x' does not apply here (see drd CMD --help)", "drd CMD: flag '--x' needs a
 * value", "drd CMD: --x: <the value's problem>", "drd CMD: unexpected argument 'y'". No
 * abbreviations: a flag is spelled out. */
int dr_flags_parse(int argc, char **argv, const dr_flag *flags, size_t n, dr_flag_fn fn, void *ctx,
                   const char **pos, size_t max_pos, size_t *n_pos);

/* ---- the daemon's config (drd run --config F) ----
 * Built from a YAML tree (drd/lib/yaml) and validated without touching anything outside the tree:
 * unknown keys, wrong types, bad schedules, dangling references and inline secrets are refused as
 * "file:line:column: message". The caller then checks what needs I/O (files readable, time
 * zones loaded) with the positions kept here. */
typedef struct dr_conf_list {
    const char **v;
    size_t n;
} dr_conf_list;

typedef struct dr_conf_pos {
    int line, col;
} dr_conf_pos;

typedef struct dr_conf_cluster {
    const char *name;
    dr_conf_pos at;
    dr_etcd_opts etcd;
} dr_conf_cluster;

typedef struct dr_conf_store {
    const char *name;
    dr_conf_pos at;
    dr_repo_opts repo;
} dr_conf_store;

/* The other site's daemon (peers.<name>): its status server, probed on /healthz and /readyz. */
typedef struct dr_conf_peer {
    const char *name; /* the site, as it labels metrics */
    dr_conf_pos at;
    const char *url;     /* http://HOST:PORT (its listen address) */
    int64_t interval_ms; /* probe this often (default 5s) */
    int64_t timeout_ms;  /* an answer later than this is none (default 3s) */
} dr_conf_peer;

/* The job table: one row per job of any kind. A new kind (volume pairs) is a new enum value, its
 * section in the table of sections (config.c) and its keys in dr_options; the daemon's loop
 * treats every kind alike (scheduled or continuous, state, metrics). */
typedef enum {
    DR_JOB_REPLICATE = 0,
    DR_JOB_SNAPSHOT,
    DR_JOB_DRILL,
    DR_JOB_VOLUME, /* a volume pair's side: role push (scheduled) or serve (continuous) */
    /* not sections: jobs the daemon derives from a config row (which they share) */
    DR_JOB_SEGMENTS, /* the continuous half of a snapshot job with segments */
    DR_JOB_VERIFY,   /* a replicate job's periodic comparison (verify) */
    DR_JOB_PROBE,    /* a replicate job's probe of its source, the other site */
    DR_JOB_POINT,    /* a store's newest restorable point (from its first snapshot job) */
    DR_JOB_PEER,     /* a probe of the other site's daemon (from a peers entry) */
    DR_JOB_EPOCH,    /* the failover pair's epoch records and roles (from failover) */
    DR_JOB_KEYS,     /* the encryption keys a promotion would need (from failover) */
    DR_JOB_KINDS
} dr_job_kind;

typedef struct dr_conf_job {
    dr_job_kind kind;
    const char *name;
    dr_conf_pos at;
    int scheduled;        /* has a schedule (snapshot, drill); else continuous (replicate) */
    dr_schedule schedule; /* scheduled jobs */
    dr_conf_pos schedule_at;
    /* references by name, resolved to indexes into dr_conf's arrays (-1: none) */
    const char *cluster, *store, *source, *target;
    int cluster_i, store_i, source_i, target_i;
    const dr_yaml_node *node; /* the job's map in the config (borrowed from dr_conf's doc) */
    /* replicate */
    int mode; /* 0 exact, 1 filtered (dr_repl_mode) */
    dr_conf_list prefixes, excludes;
    const char *dest_prefix;
    int64_t max_txn_ops;
    int window;
    int64_t max_lag_ms; /* /readyz fails past this lag; 0: not checked */
    int64_t verify_ms;  /* compare primary and standby this often (HashKV); 0: never */
    /* snapshot */
    int compression; /* dr_compress */
    int64_t segments_ms;
    dr_retention retention;
    int has_retention;
    /* volume (the flags of drd replicate volume push|serve) */
    int role; /* 0 push, 1 serve */
    const char *vol_source, *to, *listen, *root;
    const char *psk_file, *cert, *key, *cacert;
    int64_t bwlimit; /* bytes per second; 0: none */
    int checksum, keep, no_sync;
    int64_t timeout_ms; /* a peer silent this long fails the sync (0: 120 s) */
} dr_conf_job;

/* A file named in the config, for the caller's readability check; secret is its row's (the
 * option of the key's scope: a volume's key is no etcd client key), NULL for no secret. */
typedef struct dr_conf_file {
    const char *path, *key;
    dr_conf_pos at;
    const char *secret;
} dr_conf_file;

/* failover: the two sites and the runbooks of drd failover / failback (docs/runbooks.md). */
typedef struct dr_conf_failover {
    const char *primary, *standby;              /* cluster names: the roles at epoch 0 */
    const char *replicate;                      /* the replicate job between them (mode, filters) */
    const char *planned, *emergency, *failback; /* runbook files */
    int64_t unreachable_ms; /* emergency: the primary must not answer for this long (30s) */
    int primary_i, standby_i, replicate_i;
    const char *encryption_config; /* the standby's EncryptionConfiguration file (optional) */
    int64_t encryption_scan_ms;    /* the daemon's scan of the keys in use (10m; 0: never) */
} dr_conf_failover;

typedef struct dr_conf {
    const char *file; /* the config's name in messages */
    const char *listen;
    const char *state_dir;
    int64_t grace_ms; /* SIGTERM: how long running jobs may take to finish */
    dr_conf_cluster *clusters;
    size_t n_clusters;
    dr_conf_store *stores;
    size_t n_stores;
    dr_conf_peer *peers;
    size_t n_peers;
    dr_conf_job *jobs;
    size_t n_jobs;
    dr_conf_file *files;
    size_t n_files;
    dr_yaml_doc *doc;   /* owned: the strings above point into it */
    dr_conf_list owned; /* strings made here (joined endpoint lists), freed with the conf */
    dr_conf_failover failover;
    int has_failover;
} dr_conf;

/* Builds and validates the config from doc, taking ownership of doc (also on error). DR_EUSAGE
 * "file:line:column: message", DR_ENOMEM. Caller frees *out with dr_conf_free. */
int dr_conf_from_yaml(dr_yaml_doc *doc, dr_conf **out);
void dr_conf_free(dr_conf *c);
/* "replicate", "snapshot", "drill". */
const char *dr_job_kind_name(dr_job_kind k);

/* ---- runbooks (docs/runbooks.md) ----
 * A runbook is a YAML step list (the files in policies/runbooks/):
 *
 *   runbook: planned-switchover         # its name
 *   description: ...                    # optional
 *   steps:
 *     - { name: fence-old-primary, type: fence, side: old-primary, timeout: 30s, retries: 2 }
 *     - { name: stop-writers, type: hook-exec, command: [/usr/local/bin/scale, "0"] }
 *
 * Step types and their own keys:
 *   check              checks: [reachable, lag, epoch, encryption-keys] (default: all of them
 *                      that apply to the operation); max_lag: revisions (planned: default 1000)
 *   fence              side: old-primary | new-primary (default old-primary)
 *   wait-replication   (drain until the standby holds every revision of the fenced primary)
 *   final-volume-sync  (every volumes: pair holds a copy started after the fence: waits for
 *                      it where the copies are, pushes now where the source is)
 *   promote            (raise the epoch, write it, make the standby the primary)
 *   hook-exec          command: a list (argv, no shell); env DRD_* and the JSON body on stdin
 *   hook-http          url: http://host:port/path (POST of the JSON body)
 *   start-replication  (the other direction: new primary -> old primary)
 *   record             (RPO and RTO into the run's record)
 * Every step: name (unique, [A-Za-z0-9_.-]), type, timeout (default per type), retries (0..100,
 * default 0), retry_delay (default 5s).
 * Pure: built from a YAML tree, refused with "file:line:column: message". */
typedef enum {
    DR_STEP_CHECK = 0,
    DR_STEP_FENCE,
    DR_STEP_WAIT_REPLICATION,
    DR_STEP_FINAL_VOLUME_SYNC,
    DR_STEP_PROMOTE,
    DR_STEP_HOOK_EXEC,
    DR_STEP_HOOK_HTTP,
    DR_STEP_START_REPLICATION,
    DR_STEP_RECORD,
    DR_STEP_TYPES
} dr_step_type;

#define DR_CHECK_REACHABLE 1u
#define DR_CHECK_LAG 2u
#define DR_CHECK_EPOCH 4u
#define DR_CHECK_KEYS 8u

typedef enum { DR_SIDE_OLD_PRIMARY = 0, DR_SIDE_NEW_PRIMARY = 1 } dr_step_side;

typedef struct dr_step {
    const char *name;
    dr_step_type type;
    dr_conf_pos at;
    int64_t timeout_ms;
    int retries;
    int64_t retry_delay_ms;
    unsigned checks;      /* check: DR_CHECK_* bits; 0: the defaults of the operation */
    int64_t max_lag;      /* check: revisions; -1: default */
    dr_step_side side;    /* fence */
    dr_conf_list command; /* hook-exec */
    const char *url;      /* hook-http */
} dr_step;

typedef struct dr_runbook {
    const char *file;
    const char *name;
    const char *description;
    dr_step *steps;
    size_t n_steps;
    dr_yaml_doc *doc; /* owned */
} dr_runbook;

/* Builds a runbook from doc (taking it, also on error). DR_EUSAGE "file:line:column: message"
 * for an unknown key or step type, a missing or mistyped field, a duplicate step name, a hook
 * without its command or url. Caller frees with dr_runbook_free. */
int dr_runbook_from_yaml(dr_yaml_doc *doc, dr_runbook **out);
void dr_runbook_free(dr_runbook *rb);
/* "check", "fence", "wait-replication", ... */
const char *dr_step_type_name(dr_step_type t);

/* ---- the step machine of a runbook run ----
 * Pure bookkeeping: the runner (drd/app/runbook.c) saves it after every change, so a run killed
 * at any moment resumes from the step it was in (that step is run again: steps are idempotent).
 *
 *   pending --start--> running --ok--> ok --> (the next step: pending --> running ...)
 *                         |--fail, attempts <= retries--> waiting (until retry_at) --> running
 *                         |--fail, no retry left--> failed: the run is failed (resume: again)
 *   any --abort--> the run is aborted (never resumed)
 * The run is done when every step is ok. */
typedef enum {
    DR_STEP_PENDING = 0,
    DR_STEP_RUNNING,
    DR_STEP_OK,
    DR_STEP_WAITING,
    DR_STEP_FAILED
} dr_step_status;
typedef enum {
    DR_RUN_ACTIVE = 0, /* a step is pending, running or waiting */
    DR_RUN_DONE,
    DR_RUN_FAILED,
    DR_RUN_ABORTED
} dr_run_status;

typedef struct dr_run_step {
    dr_step_status status;
    int attempts;
    int64_t started_ms, ended_ms, retry_at_ms;
    int rc;
    char result[512]; /* one line: what it did, or why it failed / waits */
} dr_run_step;

typedef struct dr_run {
    dr_run_status status;
    size_t cur; /* the step in progress (n_steps when done) */
    size_t n_steps;
    dr_run_step steps[64];
} dr_run;

#define DR_RUN_MAX_STEPS 64
/* A new run of rb (DR_EUSAGE when it has more than DR_RUN_MAX_STEPS steps). */
int dr_run_init(dr_run *r, const dr_runbook *rb);
/* What to do now: 0 and *step = the step to start (its attempt begins), DR_ETIMEOUT and *wait_ms
 * (a retry is due later), or 1 when there is nothing to do (done, failed or aborted). */
int dr_run_next(dr_run *r, const dr_runbook *rb, int64_t now_ms, size_t *step, int64_t *wait_ms);
/* Records the end of the current step's attempt: rc 0 (ok: the run moves on), or an error with
 * its one-line message (a retry when one is left, else the run fails). */
void dr_run_step_done(dr_run *r, const dr_runbook *rb, int rc, const char *result, int64_t now_ms);
/* A failed run is made resumable: its failed step becomes pending again (attempts reset). */
void dr_run_retry(dr_run *r);
const char *dr_step_status_name(dr_step_status s);
const char *dr_run_status_name(dr_run_status s);
/* The state as text (one line per field) and back; parse refuses anything it did not write
 * (DR_EPROTO). The result lines are escaped. */
int dr_run_format(const dr_run *r, dr_buf *out);
int dr_run_parse(const char *text, size_t len, dr_run *out);

/* ---- Kubernetes encryption at rest (policies/enckeys.c) ---- */
/* 1 and "provider:key name" in out (e.g. "aesgcm:key2") when the value was encrypted by the API
 * server ("k8s:enc:aesgcm:v1:key2:..."), else 0. */
int dr_k8s_enc_key(const void *val, size_t len, char *out, size_t cap);
/* Calls cb with "provider:key name" for every key an EncryptionConfiguration offers (aescbc,
 * aesgcm, secretbox keys; kms provider names). DR_EUSAGE (file:line:column) when doc is not one;
 * cb's non-zero return stops and is returned. */
typedef int (*dr_k8s_key_cb)(void *ctx, const char *name);
int dr_k8s_enc_config_keys(const dr_yaml_doc *doc, dr_k8s_key_cb cb, void *ctx);

/* Values counted per "provider:key name" (dr_k8s_enc_key), at most DR_K8S_ENC_NAMES names: the
 * values of names past them count in other. A fixed table: no allocation, any number of values. */
#define DR_K8S_ENC_NAMES 64
typedef struct dr_k8s_enc_counts {
    struct {
        char name[300];
        int64_t n;
    } k[DR_K8S_ENC_NAMES];
    size_t n;
    int64_t values; /* every value seen, encrypted or not */
    int64_t other;  /* encrypted values of names beyond the table */
} dr_k8s_enc_counts;
/* Counts one value (plain values count in values alone). */
void dr_k8s_enc_counts_add(dr_k8s_enc_counts *c, const void *val, size_t len);
/* {"values": N, "keys": {"aesgcm:key1": 12, ...}, "other": M} (names escaped) */
int dr_k8s_enc_counts_json(const dr_k8s_enc_counts *c, dr_buf *out);
/* "aesgcm:key1 (12), kms:vault (3)", or "none" (truncated to cap with "..."). */
void dr_k8s_enc_counts_line(const dr_k8s_enc_counts *c, char *out, size_t cap);

#endif
