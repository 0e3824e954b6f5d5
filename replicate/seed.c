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
    char keep[4300]; /* members_dir: the first member's file, copied for the others */
    int keep_db_only;
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
    rc = dr_etcd_snapshot_sized(s->src, on_size, on_data, s, &s->size, NULL, &h);
    if (rc == 0)
        rc = dr_sink_finish(s->top);
    dr_sink_free(s->head);
    dr_sink_free(s->file);
    /* more members to lay out: keep this file (the restore may consume or patch path) */
    if (rc == 0 && s->keep[0]) {
        s->keep_db_only = db_only;
        if (link(path, s->keep) != 0)
            rc = dr_error_set(DR_EIO, "cannot keep '%s' as '%s': %s", path, s->keep,
                              strerror(errno));
    }
    return rc;
}

/* dr_etcdtool_db_fn for the second and later members: the first member's file, copied (the
 * restore of each member then sets the same consistent index in its own copy). */
static int copy_snapshot(void *ctx, const char *path, int db_only)
{
    seed *s = ctx;
    if (db_only != s->keep_db_only)
        return dr_error_set(DR_EGENERIC, "the restore tool changed its mind between members");
    dr_source *in = NULL;
    dr_sink *out = NULL;
    int rc = dr_fs_source_new(s->keep, 0, &in);
    if (rc == 0)
        rc = dr_fs_sink_new(path, 0600, db_only ? 0 : DR_FS_SCRATCH, &out);
    if (rc == 0)
        rc = dr_stream_copy(in, out, NULL);
    if (rc == 0)
        rc = dr_sink_finish(out);
    dr_sink_free(out);
    dr_source_free(in);
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
    enum { MAX_MEMBERS = DR_ETCDTOOL_MEMBERS_MAX };
    int rc = 0, n = 0;
    seed s = {0};
    char names[MAX_MEMBERS][128], peers[MAX_MEMBERS][1024], dirs[MAX_MEMBERS][4200];
    char partial[MAX_MEMBERS][4300], db[4400];
    if (o->members_dir) { /* every member of the initial cluster, from one snapshot */
        if ((rc = dr_etcdtool_members(o->initial_cluster, names, peers, MAX_MEMBERS, &n)) < 0)
            return rc;
        for (int i = 0; i < n; i++)
            if (snprintf(dirs[i], sizeof dirs[i], "%s/%s", o->members_dir, names[i]) >=
                (int)sizeof dirs[i])
                return dr_error_set(DR_EUSAGE, "--members-dir '%s' is too long", o->members_dir);
        if (mkdir(o->members_dir, 0700) != 0 && errno != EEXIST)
            return dr_error_set(DR_EIO, "cannot create '%s': %s", o->members_dir, strerror(errno));
    } else {
        snprintf(names[0], sizeof names[0], "%s", o->name);
        snprintf(peers[0], sizeof peers[0], "%s", o->initial_advertise_peer_urls);
        snprintf(dirs[0], sizeof dirs[0], "%s", o->data_dir);
        n = 1;
    }
    for (int i = 0; i < n; i++)
        if (dr_etcdtool_dir_state(dirs[i]) == 2)
            return dr_error_set(DR_EUSAGE,
                                "data dir '%s' is not empty: refusing to restore over it", dirs[i]);
    if ((rc = dr_etcd_open(&s.src, &o->source)) < 0)
        return rc;
    if (n > 1)
        snprintf(s.keep, sizeof s.keep, "%s/.seed-%ld.db", o->members_dir, (long)getpid());
    /* every data dir appears only complete, and only when all of them are */
    int made = 0;
    for (int i = 0; i < n && rc == 0; i++, made++) {
        if (snprintf(partial[i], sizeof partial[i], "%s.seeding-%ld", dirs[i], (long)getpid()) >=
            (int)sizeof partial[i]) {
            rc = dr_error_set(DR_EUSAGE, "data dir path too long: '%s'", dirs[i]);
            break;
        }
        rc = dr_etcdtool_restore_from(partial[i], names[i], o->initial_cluster, peers[i],
                                      i == 0 ? write_snapshot : copy_snapshot, &s);
    }
    /* the revision of the snapshot: from the database's index, else from the restore tool */
    snprintf(db, sizeof db, "%s/member/snap/db", partial[0]);
    if (rc == 0 && !db_revision(db, revision))
        rc = dr_etcdtool_snapshot_revision(db, revision);
    for (int i = 0; i < n && rc == 0; i++) {
        if (dr_etcdtool_dir_state(dirs[i]) == 1)
            rmdir(dirs[i]);
        if (rename(partial[i], dirs[i]) != 0)
            rc = dr_error_set(DR_EIO, "cannot rename '%s' to '%s': %s", partial[i], dirs[i],
                              strerror(errno));
        else
            chmod(dirs[i], 0700);
    }
    if (s.keep[0])
        unlink(s.keep);
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        for (int i = 0; i < made; i++)
            dr_fs_remove_tree(partial[i]);
        dr_error_set(rc, "%s", msg);
    } else {
        for (int i = 0; i < n; i++)
            dr_info("seeded %s from %s at revision %lld (%llu bytes)", dirs[i],
                    dr_etcd_endpoint(s.src), (long long)*revision, (unsigned long long)s.size);
    }
    dr_etcd_close(s.src);
    return rc;
}
