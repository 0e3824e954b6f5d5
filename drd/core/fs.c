/*
 * Durable local files. The only implementation of "temp -> fsync -> rename -> fsync dir" in drd:
 * everything that writes state files calls dr_fs_write_atomic. Must never leave a half-written
 * file under the final name.
 */
#include "drd/core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dr_fs_create_temp(const char *tmp, unsigned mode)
{
    for (int attempt = 0;; attempt++) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST || attempt > 0)
            break;
        /* left by a crashed run that had our pid, or planted: unlink removes a symlink itself,
         * never its target (and fails in a sticky dir for another user's file) */
        unlink(tmp);
    }
    return dr_error_set(DR_EIO, "cannot create '%s': %s", tmp, strerror(errno));
}

int dr_fs_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    int rc = 0, fd = -1, dfd = -1;
    char tmp[4096], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return dr_error_set(DR_EUSAGE, "path too long: '%s'", path);
    snprintf(dir, sizeof dir, "%s", path);
    if ((fd = dr_fs_create_temp(tmp, mode)) < 0) {
        rc = fd;
        fd = -1;
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = dr_error_set(DR_EIO, "cannot write '%s': %s", tmp, strerror(errno));
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
        rc = dr_error_set(DR_EIO, "cannot sync '%s': %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = dr_error_set(DR_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto out;
    }
    dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int dr_fs_read_all(const char *path, size_t max, char **out, size_t *out_len)
{
    int rc = 0;
    dr_buf b = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "cannot read '%s': %s", path,
                            strerror(errno));
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > max) {
            rc = dr_error_set(DR_EIO, "file '%s' is larger than %zu bytes", path, max);
            goto out;
        }
        if ((rc = dr_buf_append(&b, chunk, n)) < 0)
            goto out;
    }
    if (ferror(f)) {
        rc = dr_error_set(DR_EIO, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    if (!b.data && (rc = dr_buf_append(&b, "", 0)) < 0)
        goto out;
    *out = b.data;
    b.data = NULL;
    if (out_len)
        *out_len = b.len;
out:
    fclose(f);
    dr_buf_free(&b);
    return rc;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int dr_fs_remove_tree(const char *path)
{
    if (!path[0] || !strcmp(path, "/"))
        return dr_error_set(DR_EUSAGE, "refusing to remove '%s'", path);
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return dr_error_set(DR_EIO, "cannot remove '%s': %s", path, strerror(errno));
    return 0;
}
