/*
 * Seed a standby: stream a snapshot of the source (etcd's sha256 trailer checked as it arrives)
 * into a member data dir with dr_etcdtool_restore_from: with etcd 3.4 the database goes straight
 * into member/snap/db, otherwise through a temporary snapshot file next to the data dir that
 * etcdutl/etcdctl restores. The standby etcd started on the dir is at the source's revision with
 * identical history, which exact mode requires. Its revision is read from the database's index
 * (the last key of bucket "key"), not by scanning the whole file again.
 *
 * Must never restore into a non-empty directory and never leave a partial data dir or a temporary
 * snapshot behind.
 */
#include "drd/lib/boltfile/boltfile.h"
#include "drd/lib/etcdtool/etcdtool.h"
#include "repl_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct seed {
    dr_etcd *src;
    int db_only;
    dr_sink *file, *head, *top;
    uint64_t size;
} seed;

static int on_size(void *ctx, uint64_t total)
{
    seed *s = ctx;
    if (!s->db_only)
        return 0;
    /* etcd's 32-byte sha256 trailer follows a database of whole pages */
    uint64_t keep = total % 512 == 32 ? total - 32 : total;
    int rc = dr_head_sink_new(s->file, keep, &s->head);
    if (rc == 0)
        s->top = s->head;
    return rc;
}

static int on_data(void *ctx, const void *data, size_t len)
{
    seed *s = ctx;
    return dr_sink_write(s->top, data, len);
}

/* dr_etcdtool_db_fn: the snapshot (trailer checked by dr_etcd_snapshot) into path; the file
 * appears only when the whole stream arrived and its trailer matched. */
static int write_snapshot(void *ctx, const char *path, int db_only)
{
    seed *s = ctx;
    dr_etcd_header h = {0};
    s->db_only = db_only;
    s->head = NULL;
    int rc = dr_fs_sink_new(path, 0600, db_only ? 0 : DR_FS_SCRATCH, &s->file);
    if (rc < 0)
        return rc;
    s->top = s->file;
    rc = dr_etcd_snapshot_sized(s->src, on_size, on_data, s, &s->size, &h);
    if (rc == 0)
        rc = dr_sink_finish(s->top);
    dr_sink_free(s->head);
    dr_sink_free(s->file);
    return rc;
}

/* The revision etcd starts at on the database at path, read from the file's index (no scan):
 * the main revision of the last key of bucket "key" (revision bytes: 8 big-endian bytes, '_',
 * 8 more), or the finished compaction if that is later (etcd's own rule when it opens a
 * database); 1 for a store without keys. 0 with *revision unset when the file does not look like
 * that (the caller asks etcdctl instead). */
static int db_revision(const char *path, int64_t *revision)
{
    uint8_t k[64];
    size_t n = 0;
    int64_t rev = 1;
    int rc = dr_boltfile_last_key(path, "key", k, sizeof k, &n);
    if (rc == 0 && n >= 17 && n <= sizeof k)
        rev = (int64_t)dr_bolt_be64(k);
    else if (rc != DR_ENOTFOUND)
        return 0;
    rc = dr_boltfile_get(path, "meta", "finishedCompactRev", k, sizeof k, &n);
    if (rc == 0 && n >= 8 && n <= sizeof k && (int64_t)dr_bolt_be64(k) > rev)
        rev = (int64_t)dr_bolt_be64(k);
    else if (rc < 0 && rc != DR_ENOTFOUND)
        return 0;
    *revision = rev;
    return 1;
}

int dr_repl_seed(const dr_repl_seed_opts *o, int64_t *revision)
{
    int rc = 0;
    seed s = {0};
    char partial[4200], db[4300];
    if (dr_etcdtool_dir_state(o->data_dir) == 2)
        return dr_error_set(DR_EUSAGE, "--data-dir '%s' is not empty: refusing to restore over it",
                            o->data_dir);
    if ((rc = dr_etcd_open(&s.src, &o->source)) < 0)
        return rc;
    /* the data dir appears only complete */
    snprintf(partial, sizeof partial, "%s.seeding-%ld", o->data_dir, (long)getpid());
    snprintf(db, sizeof db, "%s/member/snap/db", partial);
    rc = dr_etcdtool_restore_from(partial, o->name, o->initial_cluster,
                                  o->initial_advertise_peer_urls, write_snapshot, &s);
    /* the revision of the snapshot: from the database's index, else from the restore tool */
    if (rc == 0 && !db_revision(db, revision))
        rc = dr_etcdtool_snapshot_revision(db, revision);
    if (rc == 0 && dr_etcdtool_dir_state(o->data_dir) == 1)
        rmdir(o->data_dir);
    if (rc == 0 && rename(partial, o->data_dir) != 0)
        rc = dr_error_set(DR_EIO, "cannot rename '%s' to '%s': %s", partial, o->data_dir,
                          strerror(errno));
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        dr_fs_remove_tree(partial);
        dr_error_set(rc, "%s", msg);
    } else {
        chmod(o->data_dir, 0700);
        dr_info("seeded %s from %s at revision %lld (%llu bytes)", o->data_dir,
                dr_etcd_endpoint(s.src), (long long)*revision, (unsigned long long)s.size);
    }
    dr_etcd_close(s.src);
    return rc;
}
