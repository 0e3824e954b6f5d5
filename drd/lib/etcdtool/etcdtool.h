/*
 * drd etcdtool: the installed etcd programs, driven as child processes: restoring a snapshot file
 * into a data dir (etcdutl, or etcdctl where etcdutl is absent) and running a throw-away etcd on
 * a restored data dir, on loopback ports, for replaying revisions and for drills.
 *
 * Must never listen anywhere but 127.0.0.1, never restore into a non-empty directory, and never
 * stop a process it did not start (children are stopped by the PID it recorded).
 */
#ifndef DRD_ETCDTOOL_H
#define DRD_ETCDTOOL_H

#include <stdint.h>

/* 0: absent, 1: an empty directory, 2: anything else (non-empty, or not a directory). */
int dr_etcdtool_dir_state(const char *path);

/* Restores snapshot_file into data_dir (absent or empty) for a member name of initial_cluster
 * advertising peer_urls. DR_EUSAGE (no tool installed, non-empty dir), DR_EGENERIC with the
 * tool's last output line. */
int dr_etcdtool_restore(const char *snapshot_file, const char *data_dir, const char *name,
                        const char *initial_cluster, const char *peer_urls);

/* The revision of a snapshot file, from `etcdutl|etcdctl snapshot status` (at least 1). */
int dr_etcdtool_snapshot_revision(const char *snapshot_file, int64_t *revision);

/* The installed etcd's version ("3.4.23"), or "unknown". Borrowed, static. */
const char *dr_etcdtool_version(void);

/* A throw-away etcd on data_dir, on free 127.0.0.1 ports, with limits raised so that any
 * revision fits in one transaction. Waits until it answers (at most timeout_ms). Its output goes
 * to log_path. Caller stops it with dr_etcdtool_stop. */
typedef struct dr_etcd_proc dr_etcd_proc;
int dr_etcdtool_start(const char *data_dir, const char *name, const char *log_path,
                      int64_t timeout_ms, dr_etcd_proc **out);
/* "http://127.0.0.1:PORT" (borrowed). */
const char *dr_etcdtool_url(const dr_etcd_proc *p);
/* SIGTERM, then SIGKILL after 10 s; waits for it. Accepts NULL. */
void dr_etcdtool_stop(dr_etcd_proc *p);

#endif
