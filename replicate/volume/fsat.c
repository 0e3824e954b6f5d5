/*
 * Volume replication: file operations relative to a directory descriptor that never follow a
 * symlink, so that nothing a peer names, and no symlink in the tree, can reach outside the root.
 */
#include "replicate/volume/vol_int.h"

#include "drd/lib/crypto/crypto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vol_remove_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : dr_error_set(DR_EIO, "stat '%s': %s", name, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
            return dr_error_set(DR_EIO, "cannot remove '%s': %s", name, strerror(errno));
        return 0;
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return dr_error_set(DR_EIO, "cannot open '%s': %s", name, strerror(errno));
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return dr_error_set(DR_EIO, "cannot read '%s': %s", name, strerror(errno));
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        rc = vol_remove_at(dirfd(d), de->d_name);
    }
    closedir(d);
    if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = dr_error_set(DR_EIO, "cannot remove '%s': %s", name, strerror(errno));
    return rc;
}

int vol_copy_data(int src, int dst, uint64_t size)
{
    off_t pos = 0;
    while ((uint64_t)pos < size) {
        off_t data = lseek(src, pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break; /* only a hole is left */
        if (data < 0)
            return dr_error_set(DR_EIO, "seek: %s", strerror(errno));
        off_t hole = lseek(src, data, SEEK_HOLE);
        if (hole < 0)
            return dr_error_set(DR_EIO, "seek: %s", strerror(errno));
        off_t in = data, out = data;
        while (in < hole) {
            ssize_t n = copy_file_range(src, &in, dst, &out, (size_t)(hole - in), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return dr_error_set(DR_EIO, "copy: %s", strerror(errno));
            if (n == 0)
                break;
        }
        pos = hole;
    }
    if (ftruncate(dst, (off_t)size) != 0)
        return dr_error_set(DR_EIO, "truncate: %s", strerror(errno));
    return 0;
}

int vol_set_meta_fd(int fd, const vol_entry *e)
{
    if (geteuid() == 0 && fchown(fd, (uid_t)e->uid, (gid_t)e->gid) != 0)
        return dr_error_set(DR_EIO, "chown '%s': %s", e->path, strerror(errno));
    if (fchmod(fd, (mode_t)e->mode) != 0)
        return dr_error_set(DR_EIO, "chmod '%s': %s", e->path, strerror(errno));
    struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT},
                             {.tv_sec = (time_t)e->mtime_s, .tv_nsec = (long)e->mtime_ns}};
    if (futimens(fd, ts) != 0)
        return dr_error_set(DR_EIO, "set mtime of '%s': %s", e->path, strerror(errno));
    return 0;
}

int vol_set_meta(int dirfd, const char *name, const vol_entry *e, int is_link)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return dr_error_set(DR_EIO, "stat '%s': %s", name, strerror(errno));
    if (!is_link && S_ISLNK(st.st_mode))
        return dr_error_set(DR_EIO, "'%s' became a symlink", name);
    if (geteuid() == 0 &&
        fchownat(dirfd, name, (uid_t)e->uid, (gid_t)e->gid, AT_SYMLINK_NOFOLLOW) != 0)
        return dr_error_set(DR_EIO, "chown '%s': %s", name, strerror(errno));
    if (!is_link && fchmodat(dirfd, name, (mode_t)e->mode, 0) != 0)
        return dr_error_set(DR_EIO, "chmod '%s': %s", name, strerror(errno));
    struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT},
                             {.tv_sec = (time_t)e->mtime_s, .tv_nsec = (long)e->mtime_ns}};
    if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) != 0)
        return dr_error_set(DR_EIO, "set mtime of '%s': %s", name, strerror(errno));
    return 0;
}

void vol_tmp_name(char *out, size_t cap)
{
    static atomic_uint counter; /* the session's thread of sums ahead makes temp files too */
    snprintf(out, cap, ".drd-tmp.%ld.%u", (long)getpid(), atomic_fetch_add(&counter, 1) + 1);
}

static size_t ino_hash(dev_t d, ino_t i, size_t cap)
{
    uint64_t x = ((uint64_t)d * 0x9E3779B97F4A7C15ull) ^ (uint64_t)i;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return (size_t)(x ^ (x >> 29)) & (cap - 1);
}

const char *vol_inomap_seen(vol_inomap *m, dev_t d, ino_t i, const char *path, int *err)
{
    if (m->n * 2 >= m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        vol_ino *v = calloc(cap, sizeof *v);
        if (!v) {
            *err = dr_error_set(DR_ENOMEM, "out of memory");
            return NULL;
        }
        for (size_t k = 0; k < m->cap; k++) {
            if (!m->map[k].path)
                continue;
            size_t h = ino_hash(m->map[k].dev, m->map[k].ino, cap);
            while (v[h].path)
                h = (h + 1) & (cap - 1);
            v[h] = m->map[k];
        }
        free(m->map);
        m->map = v;
        m->cap = cap;
    }
    size_t h = ino_hash(d, i, m->cap);
    while (m->map[h].path) {
        if (m->map[h].dev == d && m->map[h].ino == i)
            return m->map[h].path;
        h = (h + 1) & (m->cap - 1);
    }
    if (!(m->map[h].path = strdup(path))) {
        *err = dr_error_set(DR_ENOMEM, "out of memory");
        return NULL;
    }
    m->map[h].dev = d;
    m->map[h].ino = i;
    m->n++;
    return NULL;
}

void vol_inomap_free(vol_inomap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->map[i].path);
    free(m->map);
    memset(m, 0, sizeof *m);
}

int vol_hash_fd(int fd, uint8_t sha[32])
{
    dr_sha256 *h = NULL;
    uint8_t *buf = malloc(VOL_CHUNK);
    int rc = buf ? dr_sha256_new(&h) : dr_error_set(DR_ENOMEM, "out of memory");
    for (off_t off = 0; rc == 0;) {
        ssize_t n = pread(fd, buf, VOL_CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = dr_error_set(DR_EIO, "read: %s", strerror(errno));
        if (n <= 0)
            break;
        dr_sha256_update(h, buf, (size_t)n);
        off += n;
    }
    if (rc == 0)
        rc = dr_sha256_final(h, sha);
    dr_sha256_free(h);
    free(buf);
    return rc;
}

int vol_sum_range(int fd, uint64_t off, uint64_t len, dr_gmac *g, uint8_t *buf, int copy,
                  uint8_t sum[VOL_SUM_BYTES])
{
    int rc = 0;
    while (rc == 0 && len) {
        ssize_t n = pread(fd, buf, len < VOL_CHUNK ? (size_t)len : VOL_CHUNK, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return dr_error_set(DR_EIO, "read: %s", n < 0 ? strerror(errno) : "file shrank");
        rc = dr_gmac_update(g, buf, (size_t)n);
        if (rc == 0 && copy >= 0)
            rc = vol_write_sparse(copy, buf, (size_t)n, off);
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return rc < 0 ? rc : dr_gmac_final(g, sum);
}

int vol_sums_compute(int fd, uint64_t size, uint64_t clen, uint32_t count, dr_gmac *g, uint8_t *buf,
                     int copy, dr_buf *out)
{
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < count && (uint64_t)i * clen < size; i++) {
        uint64_t off = (uint64_t)i * clen;
        uint8_t sum[VOL_SUM_BYTES];
        rc = vol_sum_range(fd, off, size - off < clen ? size - off : clen, g, buf, copy, sum);
        if (rc == 0)
            rc = dr_buf_append(out, sum, sizeof sum);
    }
    return rc;
}
