/*
 * file:// driver: a store is a local directory; object "a/b" is the file <root>/a/b.
 *
 * A writer writes <root>/.tmp/<random>, fsyncs it, creates the parent directories, link()s it to
 * its name (link fails when the name exists: objects are immutable, and two writers of one name
 * cannot both win), removes the temp name and fsyncs the directories. So an object appears only
 * complete, and a killed writer leaves only a file under .tmp/, which dr_store_cleanup removes.
 *
 * Must never make a partially written object visible under its name, replace an existing object,
 * or follow symbolic links while listing.
 */
#include "drd/lib/objstore/objstore_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_DIR ".tmp"
#define FILE_MODE 0600
#define DIR_MODE 0700

typedef struct file_store {
    dr_store base;
    char *root; /* absolute, no trailing '/' (except "/" itself) */
} file_store;

static int errno_rc(int e)
{
    if (e == ENOENT || e == ENOTDIR)
        return DR_ENOTFOUND;
    if (e == EACCES || e == EPERM)
        return DR_EAUTH;
    if (e == ENOMEM)
        return DR_ENOMEM;
    return DR_EIO;
}

/* root + "/" + name into a new string (NULL when out of memory) */
static char *join(const file_store *st, const char *name)
{
    size_t rl = strlen(st->root), nl = strlen(name);
    char *p = malloc(rl + nl + 2);
    if (!p)
        return NULL;
    memcpy(p, st->root, rl);
    size_t o = rl;
    if (!rl || st->root[rl - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, name, nl + 1);
    return p;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* ---- writer ---- */

typedef struct file_sink {
    dr_sink base;
    file_store *st;
    char *name; /* object name */
    char *path; /* final path */
    char *tmp;  /* temp path under .tmp/ */
    int fd;
    int finished;
} file_sink;

static int file_sink_write(dr_sink *base, const void *data, size_t len)
{
    file_sink *k = (file_sink *)base;
    const char *p = data;
    if (k->fd < 0)
        return dr_error_set(DR_EIO, "cannot write '%s': writer already finished", k->path);
    while (len) {
        ssize_t w = write(k->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dr_error_set(errno_rc(errno) == DR_ENOTFOUND ? DR_EIO : errno_rc(errno),
                                "cannot write '%s': %s", k->tmp, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsync every directory from path's parent up to the root (new directories must be durable
 * entries of their parents too) */
static void fsync_parents(const file_store *st, const char *path)
{
    char *d = strdup(path);
    size_t rl = strlen(st->root);
    if (!d)
        return;
    for (;;) {
        char *slash = strrchr(d, '/');
        if (!slash || (size_t)(slash - d) < rl)
            break;
        *slash = 0;
        fsync_dir(*d ? d : "/");
        if ((size_t)(slash - d) == rl)
            break;
    }
    free(d);
}

static int file_sink_finish(dr_sink *base)
{
    file_sink *k = (file_sink *)base;
    int rc = 0;
    char *parent = NULL;
    if (k->fd < 0) {
        rc = dr_error_set(DR_EIO, "cannot finish '%s': writer already finished or failed", k->path);
        goto out;
    }
    if (fsync(k->fd) != 0) {
        rc = dr_error_set(DR_EIO, "cannot sync '%s': %s", k->tmp, strerror(errno));
        goto out;
    }
    close(k->fd);
    k->fd = -1;
    if (!(parent = strdup(k->path))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    *strrchr(parent, '/') = 0;
    /* a concurrent delete may remove an emptied parent between mkdirs and link: try again */
    for (int attempt = 0;; attempt++) {
        if (*parent && (rc = dr_fs_mkdirs(parent, DIR_MODE)) < 0)
            goto out;
        if (link(k->tmp, k->path) == 0)
            break;
        if (errno == ENOENT && attempt < 5)
            continue;
        if (errno == EEXIST)
            rc = dr_error_set(DR_EIO, "cannot put '%s': already exists (objects are immutable)",
                              k->path);
        else
            rc = dr_error_set(errno_rc(errno) == DR_ENOTFOUND ? DR_EIO : errno_rc(errno),
                              "cannot put '%s': %s", k->path, strerror(errno));
        goto out;
    }
    k->finished = 1;
    unlink(k->tmp);
    fsync_parents(k->st, k->path);
out:
    free(parent);
    return rc;
}

static void file_sink_free(dr_sink *base)
{
    file_sink *k = (file_sink *)base;
    if (k->fd >= 0)
        close(k->fd);
    if (!k->finished && k->tmp)
        unlink(k->tmp);
    free(k->name);
    free(k->path);
    free(k->tmp);
    free(k);
}

static const dr_sink_ops file_sink_ops = {file_sink_write, file_sink_finish, file_sink_free};

/* The object name in a temp file's name, so that cleanup can tell whose it is: percent-encoded
 * ('/' as %2F, '%' as %25: a prefix of a name encodes to a prefix of its encoding) and cut before
 * the escape or byte that would pass TMP_NAME_MAX bytes (temp names must fit NAME_MAX). */
#define TMP_NAME_MAX 200
static void tmp_encode(const char *name, char *out)
{
    size_t o = 0;
    for (const char *p = name; *p; p++) {
        int esc = *p == '/' || *p == '%';
        if (o + (esc ? 3 : 1) > TMP_NAME_MAX)
            break;
        if (esc)
            o += (size_t)snprintf(out + o, 4, "%%%02X", (unsigned char)*p);
        else
            out[o++] = *p;
    }
    out[o] = 0;
}

static int file_put(dr_store *s, const char *name, dr_sink **out)
{
    file_store *st = (file_store *)s;
    int rc = 0;
    uint8_t rnd[8];
    char rname[sizeof TMP_DIR + TMP_NAME_MAX + 2 * sizeof rnd + 3];
    file_sink *k = calloc(1, sizeof *k);
    if (!k)
        return dr_error_set(DR_ENOMEM, "out of memory");
    k->base.ops = &file_sink_ops;
    k->st = st;
    k->fd = -1;
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        rc = dr_error_set(DR_EIO, "cannot get random bytes: %s", strerror(errno));
        goto out;
    }
    /* .tmp/<encoded object name>.<random> */
    size_t off = (size_t)snprintf(rname, sizeof rname, "%s/", TMP_DIR);
    tmp_encode(name, rname + off);
    off += strlen(rname + off);
    rname[off++] = '.';
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(rname + off + 2 * i, 3, "%02x", rnd[i]);
    if (!(k->name = strdup(name)) || !(k->path = join(st, name)) || !(k->tmp = join(st, rname))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    /* refuse early what finish would refuse (finish still decides, atomically) */
    if (access(k->path, F_OK) == 0) {
        rc = dr_error_set(DR_EIO, "cannot put '%s': already exists (objects are immutable)",
                          k->path);
        goto out;
    }
    char *slash = strrchr(k->tmp, '/');
    *slash = 0;
    if (mkdir(k->tmp, DIR_MODE) != 0 && errno != EEXIST) {
        rc = dr_error_set(errno_rc(errno) == DR_ENOTFOUND ? DR_EIO : errno_rc(errno),
                          "cannot create '%s': %s", k->tmp, strerror(errno));
        goto out;
    }
    *slash = '/';
    k->fd = open(k->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, FILE_MODE);
    if (k->fd < 0) {
        rc = dr_error_set(errno_rc(errno) == DR_ENOTFOUND ? DR_EIO : errno_rc(errno),
                          "cannot create '%s': %s", k->tmp, strerror(errno));
        goto out;
    }
out:
    if (rc < 0) {
        k->finished = 1; /* nothing of ours to remove */
        file_sink_free(&k->base);
        return rc;
    }
    *out = &k->base;
    return 0;
}

/* ---- reader ---- */

typedef struct file_source {
    dr_source base;
    int fd;
    uint64_t off;
    uint64_t left; /* UINT64_MAX: to the end */
    char *path;
} file_source;

static int file_source_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    file_source *r = (file_source *)base;
    if (!r->left) {
        *n = 0;
        return 0;
    }
    if (cap > r->left)
        cap = (size_t)r->left;
    for (;;) {
        ssize_t got = pread(r->fd, buf, cap, (off_t)r->off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return dr_error_set(DR_EIO, "cannot read '%s': %s", r->path, strerror(errno));
        r->off += (uint64_t)got;
        if (r->left != UINT64_MAX)
            r->left -= (uint64_t)got;
        *n = (size_t)got;
        return 0;
    }
}

static void file_source_free(dr_source *base)
{
    file_source *r = (file_source *)base;
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r);
}

static const dr_source_ops file_source_ops = {file_source_read, file_source_free};

static int file_get(dr_store *s, const char *name, uint64_t off, uint64_t len, dr_source **out)
{
    file_store *st = (file_store *)s;
    int rc = 0;
    struct stat sb;
    file_source *r = calloc(1, sizeof *r);
    if (!r)
        return dr_error_set(DR_ENOMEM, "out of memory");
    r->base.ops = &file_source_ops;
    r->off = off;
    r->left = len ? len : UINT64_MAX;
    if (!(r->path = join(st, name))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        rc = dr_error_set(errno_rc(errno), "cannot get '%s': %s", r->path,
                          errno == ENOENT ? "no such object" : strerror(errno));
        goto out;
    }
    if (fstat(r->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = dr_error_set(DR_ENOTFOUND, "cannot get '%s': no such object", r->path);
        goto out;
    }
out:
    if (rc < 0) {
        file_source_free(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}

static int file_head(dr_store *s, const char *name, uint64_t *size)
{
    file_store *st = (file_store *)s;
    int rc = 0;
    struct stat sb;
    char *path = join(st, name);
    if (!path)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if (stat(path, &sb) != 0) {
        rc = dr_error_set(errno_rc(errno), "cannot stat '%s': %s", path,
                          errno == ENOENT ? "no such object" : strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = dr_error_set(DR_ENOTFOUND, "cannot stat '%s': no such object", path);
        goto out;
    }
    *size = (uint64_t)sb.st_size;
out:
    free(path);
    return rc;
}

static int file_del(dr_store *s, const char *name)
{
    file_store *st = (file_store *)s;
    int rc = 0;
    char *path = join(st, name);
    if (!path)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if (unlink(path) != 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            rc = dr_error_set(errno == EISDIR ? DR_ENOTFOUND : errno_rc(errno),
                              "cannot delete '%s': %s", path, strerror(errno));
        goto out;
    }
    /* remove the parents this left empty (a put racing with this retries its mkdir), then
     * make the removal durable in the deepest directory that is left */
    size_t rl = strlen(st->root);
    for (;;) {
        char *slash = strrchr(path, '/');
        if (!slash || (size_t)(slash - path) <= rl) {
            fsync_dir(st->root);
            break;
        }
        *slash = 0;
        if (rmdir(path) != 0) {
            fsync_dir(path);
            break;
        }
    }
out:
    free(path);
    return rc;
}

/* ---- listing ---- */

typedef struct dent {
    char *key; /* name, with a trailing '/' for a directory: sorting keys sorts full names */
    int is_dir;
} dent;

static int dent_cmp(const void *a, const void *b)
{
    return strcmp(((const dent *)a)->key, ((const dent *)b)->key);
}

/* Could a name starting with rel (a directory path ending in '/') start with prefix? */
static int dir_may_match(const char *rel, size_t rl, const char *prefix, size_t pl)
{
    size_t m = rl < pl ? rl : pl;
    return strncmp(rel, prefix, m) == 0;
}

/* Lists directory rel (relative to the root, "" or ending in '/'), depth first in name order. */
static int walk(file_store *st, dr_buf *rel, const char *prefix, dr_store_list_cb cb, void *ctx)
{
    int rc = 0;
    DIR *d = NULL;
    dent *ents = NULL;
    size_t n = 0, cap = 0, base_len = rel->len;
    char *dir = join(st, rel->data);
    size_t pl = strlen(prefix);
    if (!dir) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if (!(d = opendir(dir))) {
        if (errno == ENOENT && base_len) /* removed meanwhile */
            goto out;
        rc = dr_error_set(errno_rc(errno) == DR_ENOTFOUND ? DR_EIO : errno_rc(errno),
                          "cannot list '%s': %s", dir, strerror(errno));
        goto out;
    }
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        struct stat sb;
        if (!strcmp(nm, ".") || !strcmp(nm, ".."))
            continue;
        if (!base_len && !strcmp(nm, TMP_DIR))
            continue;
        if (fstatat(dfd, nm, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            dent *ne = realloc(ents, nc * sizeof *ne);
            if (!ne) {
                rc = dr_error_set(DR_ENOMEM, "out of memory");
                goto out;
            }
            ents = ne;
            cap = nc;
        }
        size_t l = strlen(nm);
        if (!(ents[n].key = malloc(l + 2))) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            goto out;
        }
        memcpy(ents[n].key, nm, l);
        ents[n].is_dir = S_ISDIR(sb.st_mode);
        ents[n].key[l] = ents[n].is_dir ? '/' : 0;
        ents[n].key[l + 1] = 0;
        n++;
    }
    closedir(d);
    d = NULL;
    if (n)
        qsort(ents, n, sizeof *ents, dent_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rel->len = base_len;
        if ((rc = dr_buf_append(rel, ents[i].key, strlen(ents[i].key))) < 0)
            break;
        if (ents[i].is_dir) {
            if (dir_may_match(rel->data, rel->len, prefix, pl))
                rc = walk(st, rel, prefix, cb, ctx);
            continue;
        }
        if (strncmp(rel->data, prefix, pl) != 0)
            continue;
        char *path = join(st, rel->data);
        struct stat sb;
        if (!path) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            break;
        }
        if (stat(path, &sb) == 0) {
            dr_store_obj o = {rel->data, (uint64_t)sb.st_size,
                              (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000};
            rc = cb(ctx, &o);
        }
        free(path);
    }
out:
    rel->len = base_len;
    if (rel->data)
        rel->data[base_len] = 0;
    if (d)
        closedir(d);
    for (size_t i = 0; i < n; i++)
        free(ents[i].key);
    free(ents);
    free(dir);
    return rc;
}

static int file_list(dr_store *s, const char *prefix, dr_store_list_cb cb, void *ctx)
{
    dr_buf rel = {0};
    int rc = dr_buf_append(&rel, "", 0);
    if (rc == 0)
        rc = walk((file_store *)s, &rel, prefix, cb, ctx);
    dr_buf_free(&rel);
    return rc;
}

static int file_cleanup(dr_store *s, const char *prefix, int64_t older_than_ms, int *count)
{
    file_store *st = (file_store *)s;
    int rc = 0;
    char enc[TMP_NAME_MAX + 1];
    tmp_encode(prefix, enc); /* (a prefix longer than TMP_NAME_MAX matches by its start only) */
    DIR *d = NULL;
    char *dir = join(st, TMP_DIR);
    int64_t cutoff = dr_wall_ms() - older_than_ms;
    *count = 0;
    if (!dir)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if (!(d = opendir(dir))) {
        if (errno != ENOENT)
            rc = dr_error_set(errno_rc(errno), "cannot list '%s': %s", dir, strerror(errno));
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat sb;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            strncmp(e->d_name, enc, strlen(enc)) != 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        int64_t mt = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
        if (mt > cutoff)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            (*count)++;
            dr_debug("store '%s': removed stale temp file '%s/%s'", s->url, dir, e->d_name);
        } else if (errno != ENOENT) {
            rc = dr_error_set(errno_rc(errno), "cannot remove '%s/%s': %s", dir, e->d_name,
                              strerror(errno));
            goto out;
        }
    }
out:
    if (d)
        closedir(d);
    free(dir);
    return rc;
}

static void file_close(dr_store *s)
{
    file_store *st = (file_store *)s;
    free(st->root);
    free(st->base.url);
    free(st);
}

static const store_ops file_ops = {file_put,  file_get,     file_head, file_del,
                                   file_list, file_cleanup, file_close};

int dr_store_file_open(const char *url, const char *rest, int create, dr_store **out)
{
    int rc = 0;
    struct stat sb;
    file_store *st = NULL;
    if (rest[0] != '/') {
        rc = dr_error_set(DR_EUSAGE, "malformed store URL '%s': want file:///absolute/path", url);
        goto out;
    }
    if (!(st = calloc(1, sizeof *st)) || !(st->root = strdup(rest)) ||
        !(st->base.url = strdup(url))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    st->base.ops = &file_ops;
    for (size_t l = strlen(st->root); l > 1 && st->root[l - 1] == '/'; l--)
        st->root[l - 1] = 0;
    if (create && stat(st->root, &sb) != 0 && errno == ENOENT &&
        (rc = dr_fs_mkdirs(st->root, DIR_MODE)) < 0) {
        rc = dr_error_set(rc, "cannot create store '%s': %s", url, dr_error_msg());
        goto out;
    }
    if (stat(st->root, &sb) != 0) {
        rc = dr_error_set(errno_rc(errno), "cannot open store '%s': directory '%s' %s", url,
                          st->root, errno == ENOENT ? "does not exist" : strerror(errno));
        goto out;
    }
    if (!S_ISDIR(sb.st_mode)) {
        rc = dr_error_set(DR_EUSAGE, "cannot open store '%s': '%s' is not a directory", url,
                          st->root);
        goto out;
    }
    if (access(st->root, R_OK | X_OK) != 0) {
        rc = dr_error_set(errno_rc(errno), "cannot open store '%s': %s", url, strerror(errno));
        goto out;
    }
out:
    if (rc < 0) {
        if (st)
            file_close(&st->base);
        return rc;
    }
    *out = &st->base;
    return 0;
}
