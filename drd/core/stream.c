/*
 * Byte streams: the sink/source plumbing every data path is built from, plus the terminal
 * sinks and sources that need nothing but libc (local files, memory).
 * Must never make a partially written file visible under its final name.
 */
#include "drd/core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dr_sink_write(dr_sink *s, const void *data, size_t len)
{
    if (!len)
        return 0;
    return s->ops->write(s, data, len);
}

int dr_sink_finish(dr_sink *s)
{
    return s->ops->finish(s);
}

void dr_sink_free(dr_sink *s)
{
    if (s)
        s->ops->free(s);
}

int dr_source_read(dr_source *s, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (!cap)
        return 0;
    return s->ops->read(s, buf, cap, n);
}

int dr_source_read_full(dr_source *s, void *buf, size_t cap, size_t *n)
{
    size_t got = 0;
    *n = 0;
    while (got < cap) {
        size_t k = 0;
        int rc = dr_source_read(s, (char *)buf + got, cap - got, &k);
        if (rc < 0)
            return rc;
        if (!k)
            break;
        got += k;
    }
    *n = got;
    return 0;
}

int dr_stream_copy(dr_source *src, dr_sink *dst, uint64_t *bytes)
{
    enum { CHUNK = 256 * 1024 };
    char *buf = malloc(CHUNK);
    int rc = 0;
    uint64_t total = 0;
    if (!buf)
        return dr_error_set(DR_ENOMEM, "out of memory");
    for (;;) {
        size_t n = 0;
        if ((rc = dr_source_read(src, buf, CHUNK, &n)) < 0 || !n)
            break;
        if ((rc = dr_sink_write(dst, buf, n)) < 0)
            break;
        total += n;
    }
    free(buf);
    if (bytes)
        *bytes = total;
    return rc;
}

void dr_source_free(dr_source *s)
{
    if (s)
        s->ops->free(s);
}

/* ---- local file sink ---- */

typedef struct fs_sink {
    dr_sink base;
    int fd;
    int finished;
    int exclusive;
    int scratch;
    unsigned mode;
    char *path;
    char *tmp;
} fs_sink;

static int fs_sink_write(dr_sink *base, const void *data, size_t len)
{
    fs_sink *s = (fs_sink *)base;
    const char *p = data;
    while (len) {
        ssize_t w = write(s->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dr_error_set(DR_EIO, "cannot write '%s': %s", s->tmp, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int fsync_parent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    fsync(dfd);
    close(dfd);
    return 0;
}

static int fs_sink_finish(dr_sink *base)
{
    fs_sink *s = (fs_sink *)base;
    if (fchmod(s->fd, (mode_t)s->mode) != 0 || (!s->scratch && fsync(s->fd) != 0))
        return dr_error_set(DR_EIO, "cannot sync '%s': %s", s->tmp, strerror(errno));
    close(s->fd);
    s->fd = -1;
    if (s->exclusive) {
        /* link() fails when the name exists: no window where two writers both win */
        if (link(s->tmp, s->path) != 0)
            return dr_error_set(DR_EIO, "cannot create '%s': %s", s->path,
                                errno == EEXIST ? "it already exists" : strerror(errno));
        unlink(s->tmp);
    } else if (rename(s->tmp, s->path) != 0) {
        return dr_error_set(DR_EIO, "cannot rename '%s' to '%s': %s", s->tmp, s->path,
                            strerror(errno));
    }
    s->finished = 1;
    return s->scratch ? 0 : fsync_parent(s->path);
}

static void fs_sink_free(dr_sink *base)
{
    fs_sink *s = (fs_sink *)base;
    if (s->fd >= 0)
        close(s->fd);
    if (!s->finished)
        unlink(s->tmp);
    free(s->path);
    free(s->tmp);
    free(s);
}

static const dr_sink_ops fs_sink_ops = {fs_sink_write, fs_sink_finish, fs_sink_free};

int dr_fs_sink_new(const char *path, unsigned mode, int flags, dr_sink **out)
{
    fs_sink *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &fs_sink_ops;
    s->fd = -1;
    s->mode = mode;
    s->exclusive = (flags & DR_FS_EXCLUSIVE) != 0;
    s->scratch = (flags & DR_FS_SCRATCH) != 0;
    s->path = strdup(path);
    size_t tl = strlen(path) + 32;
    s->tmp = malloc(tl);
    if (!s->path || !s->tmp) {
        fs_sink_free(&s->base);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    snprintf(s->tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    s->fd = dr_fs_create_temp(s->tmp, mode);
    if (s->fd < 0) {
        int rc = s->fd;
        s->fd = -1;
        s->finished = 1; /* nothing to unlink */
        fs_sink_free(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* ---- local file source ---- */

typedef struct fs_source {
    dr_source base;
    int fd;
    char *path;
} fs_source;

static int fs_source_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    fs_source *s = (fs_source *)base;
    for (;;) {
        ssize_t r = read(s->fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dr_error_set(DR_EIO, "cannot read '%s': %s", s->path, strerror(errno));
        *n = (size_t)r;
        return 0;
    }
}

static void fs_source_free(dr_source *base)
{
    fs_source *s = (fs_source *)base;
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s);
}

static const dr_source_ops fs_source_ops = {fs_source_read, fs_source_free};

int dr_fs_source_new(const char *path, uint64_t off, dr_source **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "cannot open '%s': %s", path,
                            strerror(errno));
    if (off && lseek(fd, (off_t)off, SEEK_SET) < 0) {
        close(fd);
        return dr_error_set(DR_EIO, "cannot seek '%s': %s", path, strerror(errno));
    }
    fs_source *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        close(fd);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    s->base.ops = &fs_source_ops;
    s->fd = fd;
    *out = &s->base;
    return 0;
}

/* ---- memory sink and source ---- */

typedef struct buf_sink {
    dr_sink base;
    dr_buf b;
    size_t max;
} buf_sink;

static int buf_sink_write(dr_sink *base, const void *data, size_t len)
{
    buf_sink *s = (buf_sink *)base;
    if (s->b.len + len > s->max)
        return dr_error_set(DR_EIO, "object larger than %zu bytes", s->max);
    return dr_buf_append(&s->b, data, len);
}

static int buf_sink_finish(dr_sink *base)
{
    (void)base;
    return 0;
}

static void buf_sink_free(dr_sink *base)
{
    buf_sink *s = (buf_sink *)base;
    dr_buf_free(&s->b);
    free(s);
}

static const dr_sink_ops buf_sink_ops = {buf_sink_write, buf_sink_finish, buf_sink_free};

int dr_buf_sink_new(size_t max, dr_sink **out)
{
    buf_sink *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &buf_sink_ops;
    s->max = max;
    *out = &s->base;
    return 0;
}

void dr_buf_sink_take(dr_sink *base, char **data, size_t *len)
{
    buf_sink *s = (buf_sink *)base;
    if (!s->b.data)
        dr_buf_append(&s->b, "", 0);
    *data = s->b.data;
    if (len)
        *len = s->b.len;
    memset(&s->b, 0, sizeof s->b);
}

typedef struct head_sink {
    dr_sink base;
    dr_sink *next;
    uint64_t left;
} head_sink;

static int head_sink_write(dr_sink *base, const void *data, size_t len)
{
    head_sink *s = (head_sink *)base;
    size_t take = len < s->left ? len : (size_t)s->left;
    s->left -= take;
    return take ? dr_sink_write(s->next, data, take) : 0;
}

static int head_sink_finish(dr_sink *base)
{
    return dr_sink_finish(((head_sink *)base)->next);
}

static void head_sink_free(dr_sink *base)
{
    free(base);
}

static const dr_sink_ops head_sink_ops = {head_sink_write, head_sink_finish, head_sink_free};

int dr_head_sink_new(dr_sink *next, uint64_t keep, dr_sink **out)
{
    head_sink *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &head_sink_ops;
    s->next = next;
    s->left = keep;
    *out = &s->base;
    return 0;
}

typedef struct mem_source {
    dr_source base;
    const char *p;
    size_t left;
} mem_source;

static int mem_source_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    mem_source *s = (mem_source *)base;
    size_t k = cap < s->left ? cap : s->left;
    memcpy(buf, s->p, k);
    s->p += k;
    s->left -= k;
    *n = k;
    return 0;
}

static void mem_source_free(dr_source *base)
{
    free(base);
}

static const dr_source_ops mem_source_ops = {mem_source_read, mem_source_free};

int dr_mem_source_new(const void *data, size_t len, dr_source **out)
{
    mem_source *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &mem_source_ops;
    s->p = data;
    s->left = len;
    *out = &s->base;
    return 0;
}

int dr_fs_mkdirs(const char *dir, unsigned mode)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return dr_error_set(DR_EUSAGE, "path too long: '%s'", dir);
    for (char *c = p + 1;; c++) {
        if (*c == '/' || !*c) {
            char save = *c;
            *c = 0;
            if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
                return dr_error_set(DR_EIO, "cannot create directory '%s': %s", p, strerror(errno));
            *c = save;
            if (!save)
                break;
        }
    }
    return 0;
}
