/*
 * Seed a standby: stream a snapshot of the source (sha256 trailer checked) into a temp file next
 * to the data dir, then restore it with etcdutl or etcdctl. The standby etcd started on the dir
 * is at the source's revision with identical history, which exact mode requires.
 *
 * Must never restore into a non-empty directory and never leave the temp snapshot behind.
 */
#include "drd/lib/etcdtool/etcdtool.h"
#include "repl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fsink {
    int fd;
} fsink;

static int sink_write(void *ctx, const void *data, size_t len)
{
    fsink *s = ctx;
    const char *p = data;
    while (len) {
        ssize_t w = write(s->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dr_error_set(DR_EIO, "cannot write the snapshot: %s", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int dr_repl_seed(const dr_repl_seed_opts *o, int64_t *revision)
{
    int rc = 0, fd = -1;
    dr_etcd *src = NULL;
    char tmp[4096];
    int ds = dr_etcdtool_dir_state(o->data_dir);
    if (ds == 2)
        return dr_error_set(DR_EUSAGE, "--data-dir '%s' is not empty: refusing to restore over it",
                            o->data_dir);
    snprintf(tmp, sizeof tmp, "%s.seed-snapshot.db.tmp", o->data_dir);
    if ((rc = dr_etcd_open(&src, &o->source)) < 0)
        return rc;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = dr_error_set(DR_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    fsink s = {fd};
    uint64_t size = 0;
    dr_etcd_header h = {0};
    if ((rc = dr_etcd_snapshot(src, sink_write, &s, &size, &h)) < 0)
        goto out;
    if (fsync(fd) != 0) {
        rc = dr_error_set(DR_EIO, "cannot sync '%s': %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    /* revision of the snapshot, from the restore tool itself */
    if ((rc = dr_etcdtool_snapshot_revision(tmp, revision)) < 0 ||
        (rc = dr_etcdtool_restore(tmp, o->data_dir, o->name, o->initial_cluster,
                                  o->initial_advertise_peer_urls)) < 0)
        goto out;
    chmod(o->data_dir, 0700);
    dr_info("seeded %s from %s at revision %lld (%llu bytes)", o->data_dir, dr_etcd_endpoint(src),
            (long long)*revision, (unsigned long long)size);
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    dr_etcd_close(src);
    return rc;
}
