/*
 * drd run: the daemon (docs/daemon.md). The config as the daemon uses it (the model from
 * policies/ plus what needed I/O: files checked readable, time zones loaded), and the loop.
 */
#ifndef DRD_APP_DAEMON_H
#define DRD_APP_DAEMON_H

#include "policies/policies.h"
#include "replicate/replicate.h"
#include "replicate/volume/volume.h"

typedef struct drd_config {
    dr_conf *c;
    dr_tz *zones[32]; /* the CRON_TZ zones the schedules use, each loaded once */
    size_t n_zones;
} drd_config;

/* Reads and checks the config at path: YAML and the model (policies/config.c), then every file it
 * names readable, every CRON_TZ zone loaded from $TZDIR or /usr/share/zoneinfo, every replicate
 * job's options as replicate/ checks them. DR_EUSAGE "path:line:column: message" (DR_ENOTFOUND /
 * DR_EIO for the config file itself). Caller frees with drd_config_free. */
int drd_config_load(const char *path, drd_config **out);
void drd_config_free(drd_config *cfg);
/* The replication options of a replicate job (strings borrowed from cfg). */
void drd_job_repl_opts(const drd_config *cfg, const dr_conf_job *j, dr_repl_opts *o);
/* The replication options of a job's row (mode, name, prefixes, ...; not the clusters): what a
 * replicate job of the config and the flags of drd replicate (the same rows) both fill. */
void drd_repl_opts_of_job(const dr_conf_job *j, dr_repl_opts *o);

/* The repository options of store store_i (strings borrowed from cfg): its catalog is
 * <state_dir>/catalog-<store>.db, written into cat (cap bytes), unless it names one. */
void drd_store_repo_opts(const drd_config *cfg, size_t store_i, dr_repo_opts *ro, char *cat,
                         size_t cap);

/* What a scheduled job's state file in state_dir says: the newest scheduled instant accounted
 * for and the last success (ms since the epoch). DR_ENOTFOUND when the job never ran. */
int drd_job_state_read(const drd_config *cfg, dr_job_kind kind, const char *name, int64_t *prev_ms,
                       int64_t *last_success_ms);

/* The cluster called name in cfg (borrowed), or DR_EUSAGE listing the names (cmd_fence.c). */
int drd_config_cluster(const drd_config *cfg, const char *name, const dr_etcd_opts **out);
/* Whether e is fenced (a CORRUPT alarm is active) and its alarms in words (cmd_fence.c). */
int drd_fence_state(dr_etcd *e, int *fenced, char *desc, size_t cap);
/* ---- volume jobs (daemon_volume.c) ---- */

/* One push of volume job cj (role push) on a worker thread: 0 when the copy is published, with
 * its figures in *st and a line for the log in detail; dr_vol_push's errors. */
int drd_volume_push(const dr_conf_job *cj, dr_progress *progress, dr_vol_stats *st, char *detail,
                    size_t cap);
/* Serves cj's volume (role serve) until *stop: 0 when stopped, else dr_vol_serve's errors. */
int drd_volume_serve(const dr_conf_job *cj, volatile sig_atomic_t *stop);

/* What the daemon knows of a push job, for its metrics and status (all borrowed). */
typedef struct drd_volume_state {
    const dr_conf_job *cj;
    int has_run, last_rc;
    int64_t last_success_ms; /* the newest published copy (0: none) */
    int64_t since_ms;        /* when the job was first seen (the age without a copy) */
    int64_t missed_total;
    dr_vol_stats st; /* the last successful sync's figures */
} drd_volume_state;

/* 1 when the last sync failed, or two scheduled instants have passed since the newest copy
 * (since since_ms when none) without a newer one. */
int drd_volume_out_of_sync(const drd_volume_state *v, int64_t now);
/* The drd_volume_* metrics of the n push jobs in v. */
void drd_volume_metrics(const drd_volume_state *v, size_t n, int64_t now, dr_buf *b);
/* ,"volume":{...} of /status, and the lines of drd status. */
void drd_volume_json(const drd_volume_state *v, int64_t now, dr_buf *b);
void drd_volume_text(const drd_volume_state *v, int64_t now, dr_buf *b);

/* ---- the encryption keys a promotion needs (daemon_keys.c) ---- */

typedef struct drd_enc_keys {
    char cluster[64];              /* the cluster scanned */
    int64_t rev;                   /* at this revision */
    dr_k8s_enc_counts c;           /* values per "provider:key name" */
    int compared;                  /* 1: failover.encryption_config was read */
    char config[1024];             /* compared: that file */
    int offered[DR_K8S_ENC_NAMES]; /* compared: 1 when it offers c.k[i] */
    int64_t missing;               /* compared: objects whose key it lacks */
} drd_enc_keys;

/* Scans every value of cluster cluster_i (paged, at one revision) for the API server's
 * encryption keys and, when failover.encryption_config is set, compares them with the names it
 * offers. 0, or DR_ENOTFOUND naming each missing key with its count ("west's
 * EncryptionConfiguration (F) lacks aescbc:old (3 objects): 3 objects would be unreadable after
 * the promotion; ..."): *k is filled in both cases. The scan's and the file's errors otherwise. */
int drd_enc_keys_check(const drd_config *cfg, int cluster_i, drd_enc_keys *k);
/* "west's EncryptionConfiguration (F) lacks ...": the missing keys of a compared *k in words. */
void drd_enc_keys_missing(const drd_enc_keys *k, char *out, size_t cap);
/* drd_encryption_key_objects and drd_encryption_key_missing (HELP and TYPE, and k's series
 * unless k is NULL). */
void drd_enc_keys_metrics(const drd_enc_keys *k, dr_buf *b);
/* ,"encryption_keys":{...} of /status, and the lines of drd status. */
void drd_enc_keys_json(const drd_enc_keys *k, dr_buf *b);
void drd_enc_keys_text(const drd_enc_keys *k, dr_buf *b);

/* Runs the daemon until SIGTERM/SIGINT (drd_stop); SIGHUP reloads path. Takes cfg. */
int drd_daemon_run(drd_config *cfg, const char *path);

#endif
