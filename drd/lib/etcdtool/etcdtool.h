/*
 * drd etcdtool: the installed etcd programs, driven as child processes: restoring a snapshot file
 * into a data dir (etcdutl, or etcdctl where etcdutl is absent) and running a throw-away etcd on
 * a restored data dir, on unix sockets in a private dir, for replaying revisions and for drills.
 *
 * Must never listen on a TCP port, never give a child more than PATH, TMPDIR and what drd sets
 * for it (ETCDCTL_API) as its environment (no credentials), never restore into a non-empty
 * directory, and never stop a process it did not start (children are stopped by the PID it
 * recorded).
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

/* Writes the snapshot being restored to path, mode 0600, the file appearing only complete and
 * checked. db_only 0: the whole etcd snapshot file (bbolt database + etcd's sha256 trailer), read
 * once by the restore tool and then deleted (needs no fsync). db_only 1: the bbolt database
 * alone (trailer checked and dropped), durable (fsynced), as the member's own database. */
typedef int (*dr_etcdtool_db_fn)(void *ctx, const char *path, int db_only);

/* Restores into data_dir (absent or empty) the snapshot that fn writes. With etcdctl 3.4 (no
 * etcdutl installed) the database is written once, straight into member/snap/db: etcdctl
 * restores an empty database to make the member's WAL and raft snapshot, fn's database replaces
 * it, and the one change etcdctl makes to a database (meta/consistent_index = the raft index of
 * the new cluster's membership) is made to it in place. Otherwise, or when the environment has
 * DRD_RESTORE_VIA=tool, or when that database has no consistent index to set, fn writes a
 * snapshot file next to data_dir and the tool restores from it (the whole file copied once more).
 * Errors as dr_etcdtool_restore, and fn's. */
int dr_etcdtool_restore_from(const char *data_dir, const char *name, const char *initial_cluster,
                             const char *peer_urls, dr_etcdtool_db_fn fn, void *ctx);

/* The members of an --initial-cluster value "a=http://h:2380,b=http://h2:2380,http://h2:2381":
 * names[i] and peers[i] (a member's URLs may be a list) for up to max members; *n gets the count.
 * DR_EUSAGE naming the value when it cannot be read or holds more than max members. */
#define DR_ETCDTOOL_MEMBERS_MAX 9
int dr_etcdtool_members(const char *initial_cluster, char names[][128], char peers[][1024], int max,
                        int *n);

/* The revision of a snapshot file, from `etcdutl|etcdctl snapshot status` (at least 1). */
int dr_etcdtool_snapshot_revision(const char *snapshot_file, int64_t *revision);

/* The installed etcd's version ("3.4.23"), or "unknown". Borrowed, static. */
const char *dr_etcdtool_version(void);

/* The throw-away etcd's --max-txn-ops. */
enum { DR_ETCDTOOL_MAX_TXN_OPS = 1000000 };

/* A throw-away etcd on data_dir, with limits raised so that any revision fits in one
 * transaction (--max-txn-ops DR_ETCDTOOL_MAX_TXN_OPS, 1 GiB requests). It listens (client and
 * peer) only on unix sockets in a new private 0700 dir under $TMPDIR (or /tmp), so no other
 * local user can reach the restored keys; DR_EUSAGE when that path is too long for a socket.
 * Waits until it answers (at most timeout_ms). Its output goes to log_path. Caller stops it with
 * dr_etcdtool_stop. */
typedef struct dr_etcd_proc dr_etcd_proc;
int dr_etcdtool_start(const char *data_dir, const char *name, const char *log_path,
                      int64_t timeout_ms, dr_etcd_proc **out);
/* Its client URL, "unix:///<private dir>/client.sock:0", for dr_etcd_opts.endpoints (borrowed). */
const char *dr_etcdtool_url(const dr_etcd_proc *p);
/* SIGTERM, then SIGKILL after 10 s; waits for it, removes the sockets' dir. Accepts NULL. */
void dr_etcdtool_stop(dr_etcd_proc *p);

#endif
