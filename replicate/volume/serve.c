/*
 * Volume replication, destination side: one session per connection, lock-step (vol_int.h).
 *
 * Session states:  HELLO -> ENTRIES (a stack of open directories, the top one being the parent
 * of the next entry) -> COMPLETE (stack empty) -> publish -> done.  Any error: an ERROR message
 * to the peer, nothing published, `syncing` stays, the next sync starts over on current/.
 *
 * Every file is written to a temp name in its directory and renamed; current/ is made durable
 * with one syncfs before a copy is published (an fsync per file cost more than the transfer).
 * A machine that restarts in the middle of a sync may leave renamed files whose data never
 * reached the disk but whose size and time look right: the `syncing` marker holds the boot ID
 * of the sync that wrote it, and a sync that finds another boot's marker asks the source for
 * sha256 sums of every file (as --checksum) so that such a file is found and sent again.
 * A directory's
 * extraneous entries are removed when the source says the directory is complete (DIR_END), so
 * memory holds the names of the directories on the stack only, never the whole tree.
 * Must never follow a symlink, write outside ROOT/NAME, or trust the order, sizes or names the
 * peer sends: an entry whose parent is not the directory on top of the stack is refused.
 */
#include "replicate/volume/volume.h"
#include "replicate/volume/vol_int.h"

#include "drd/lib/crypto/crypto.h"
#include "drd/lib/http/http.h"
#include "drd/lib/zstd/zstd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 256

typedef struct frame {
    char *path;
    int fd; /* -1 in a dry run for a directory that does not exist yet */
    vol_entry meta;
    char **names;
    size_t n, cap;
} frame;

typedef struct session {
    dr_tls_conn *t;
    const dr_vol_serve_opts *o;
    char name[VOL_NAME_MAX + 1];
    int namefd, curfd;
    uint32_t flags;
    int root_seen;
    frame stack[MAX_DEPTH];
    int depth;
    uint8_t *buf;
    uint8_t *raw;
    dr_zstd *z;
    dr_vol_stats st;
    vol_entry e;
    int batch; /* answering a BATCH: actions go to bout */
    dr_buf bout;
    char *anames[VOL_BATCH_MAX];    /* the batch's files to come by delta, for sigahead */
    uint64_t asizes[VOL_BATCH_MAX]; /* their sizes on the source */
    size_t an;
    vol_sigahead *ahead;
    vol_rx rx;                   /* what receiving a file needs of the session */
    uint8_t sumkey[VOL_SUM_KEY]; /* the key of this session's chunk sums (vol_int.h) */
} session;

int dr_vol_name_check(const char *name)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n <= 64 && name[0] != '.';
    for (size_t i = 0; ok && i < n; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
             (name[i] >= '0' && name[i] <= '9') || name[i] == '.' || name[i] == '_' ||
             name[i] == '-';
    if (!ok) {
        char shown[80];
        return dr_error_set(DR_EUSAGE,
                            "volume name '%s': want 1 to 64 of A-Z a-z 0-9 . _ -, not starting "
                            "with '.'",
                            dr_escape(name, n, shown, sizeof shown));
    }
    return 0;
}

static int recv_msg(session *s, uint8_t *type, size_t *n)
{
    return vol_recv(s->t, s->buf, type, n, "source reported");
}

static int send_done(session *s, uint8_t action)
{
    if (action != A_NONE)
        s->st.files_changed++;
    if (s->batch)
        return dr_buf_append(&s->bout, &action, 1);
    return dr_tls_send(s->t, M_DONE, &action, 1);
}

static int frame_add_name(frame *f, const char *name)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        char **p = realloc(f->names, cap * sizeof *p);
        if (!p)
            return dr_error_set(DR_ENOMEM, "out of memory");
        f->names = p;
        f->cap = cap;
    }
    if (!(f->names[f->n] = strdup(name)))
        return dr_error_set(DR_ENOMEM, "out of memory");
    f->n++;
    return 0;
}

static void frame_free(frame *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    free(f->path);
    if (f->fd >= 0)
        close(f->fd);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replaces name in dirfd by the temp file tmp (metadata already set), durably. */
static int install(int dirfd, const char *tmp, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        int rc = vol_remove_at(dirfd, name);
        if (rc < 0)
            return rc;
    }
    if (renameat(dirfd, tmp, dirfd, name) != 0)
        return dr_error_set(DR_EIO, "rename to '%s': %s", name, strerror(errno));
    return 0;
}

static int open_tmp(int dirfd, char *tmp, size_t cap)
{
    for (int i = 0; i < 100; i++) {
        vol_tmp_name(tmp, cap);
        int fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd
                           : dr_error_set(DR_EIO, "cannot create a temp file: %s", strerror(errno));
    }
    return dr_error_set(DR_EIO, "cannot create a temp file");
}

/* Finishes a temp file: metadata, rename over base (made durable by the syncfs before the
 * publish). */
static int finish_tmp(session *s, int dirfd, int fd, const char *tmp, const char *base)
{
    int rc = vol_set_meta_fd(fd, &s->e);
    if (rc == 0)
        rc = install(dirfd, tmp, base);
    return rc;
}

static int do_file(session *s, frame *top, const char *base)
{
    struct stat st;
    int dry = s->flags & VOL_F_DRYRUN;
    int exists = top->fd >= 0 && fstatat(top->fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    int reg = exists && S_ISREG(st.st_mode);
    int same = reg && (uint64_t)st.st_size == s->e.size && st.st_mtim.tv_sec == s->e.mtime_s &&
               (uint32_t)st.st_mtim.tv_nsec == s->e.mtime_ns;
    int rc = 0, fd = -1, basis = -1, tfd = -1;
    char tmp[64] = "";
    vol_delta *plan = NULL;
    s->st.files++;
    if (same && s->e.has_sha) {
        uint8_t sha[32];
        fd = openat(top->fd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || vol_hash_fd(fd, sha) < 0 || memcmp(sha, s->e.sha, 32) != 0) {
            dr_warn("volume %s: '%s' has the source's size and time but not its content; "
                    "sending it again",
                    s->name, s->e.path);
            same = 0;
        }
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    if (same) {
        int meta = (st.st_mode & 07777) != s->e.mode ||
                   (geteuid() == 0 && (st.st_uid != s->e.uid || st.st_gid != s->e.gid));
        if (!meta || dry)
            return send_done(s, meta ? A_META : A_NONE);
        if (st.st_nlink > 1) {
            /* shared with a published copy (or a hard link): a new inode, never a change to
             * what a copy holds */
            if ((fd = openat(top->fd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                rc = dr_error_set(DR_EIO, "open '%s': %s", s->e.path, strerror(errno));
                goto out;
            }
            if ((tfd = open_tmp(top->fd, tmp, sizeof tmp)) < 0) {
                rc = tfd;
                goto out;
            }
            if ((rc = vol_copy_data(fd, tfd, s->e.size)) == 0 &&
                (rc = finish_tmp(s, top->fd, tfd, tmp, base)) == 0)
                tmp[0] = 0;
        } else {
            rc = vol_set_meta(top->fd, base, &s->e, 0);
        }
        if (rc == 0)
            rc = send_done(s, A_META);
        goto out;
    }
    int delta = reg && st.st_size > 0 && s->e.size > 0 && !s->e.sparse;
    if (dry)
        return send_done(s, delta ? A_DELTA : A_WHOLE);
    if (s->batch) { /* the source sends this entry again, on its own, with the data */
        uint8_t need = A_NEED;
        s->st.files--;
        if (delta && s->an < VOL_BATCH_MAX && !(s->anames[s->an] = strdup(base)))
            return dr_error_set(DR_ENOMEM, "out of memory");
        if (delta && s->an < VOL_BATCH_MAX)
            s->asizes[s->an++] = s->e.size;
        return dr_buf_append(&s->bout, &need, 1);
    }
    if (delta) {
        basis = openat(top->fd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (basis < 0) {
            rc = dr_error_set(DR_EIO, "open '%s': %s", s->e.path, strerror(errno));
            goto out;
        }
        dr_buf sums = {0};
        rc = dr_tls_send(s->t, M_WANT_DELTA, s->sumkey, sizeof s->sumkey);
        /* the temp file gets the basis' bytes as they are summed (ahead, or here) */
        if (rc == 0 &&
            !vol_sigahead_take(s->ahead, base, basis, s->e.size, &sums, &tfd, tmp, sizeof tmp) &&
            (tfd = open_tmp(top->fd, tmp, sizeof tmp)) < 0) {
            rc = tfd;
            tmp[0] = 0;
        }
        if (rc == 0)
            rc = vol_delta_start(&s->rx, basis, (uint64_t)st.st_size, &sums, tfd, &plan);
        dr_buf_free(&sums);
    } else {
        rc = dr_tls_send(s->t, M_WANT_WHOLE, NULL, 0);
    }
    if (rc < 0)
        goto out;
    if (tfd < 0 && (tfd = open_tmp(top->fd, tmp, sizeof tmp)) < 0) {
        rc = tfd;
        goto out;
    }
    rc = delta ? vol_recv_delta(&s->rx, plan, tfd) : vol_recv_whole(&s->rx, tfd);
    if (rc == DR_ECHECKSUM && delta) {
        /* a strong-sum collision, or the file changed while the source read it: once more,
         * whole */
        dr_warn("volume %s: '%s' differs from the source after its delta; asking for it whole",
                s->name, s->e.path);
        delta = 0;
        rc = ftruncate(tfd, 0) == 0
                 ? dr_tls_send(s->t, M_WANT_WHOLE, NULL, 0)
                 : dr_error_set(DR_EIO, "truncate '%s': %s", s->e.path, strerror(errno));
        if (rc == 0)
            rc = vol_recv_whole(&s->rx, tfd);
    }
    if (rc < 0)
        goto out;
    if ((rc = finish_tmp(s, top->fd, tfd, tmp, base)) < 0)
        goto out;
    tmp[0] = 0;
    rc = send_done(s, delta ? A_DELTA : A_WHOLE);
out:
    vol_delta_free(plan);
    if (tmp[0])
        unlinkat(top->fd, tmp, 0);
    if (tfd >= 0)
        close(tfd);
    if (fd >= 0)
        close(fd);
    if (basis >= 0)
        close(basis);
    return rc;
}

static int do_symlink(session *s, frame *top, const char *base)
{
    char cur[VOL_PATH_MAX + 1], tmp[64];
    struct stat st;
    int dry = s->flags & VOL_F_DRYRUN;
    if (top->fd >= 0 && fstatat(top->fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)) {
        ssize_t n = readlinkat(top->fd, base, cur, sizeof cur - 1);
        if (n >= 0) {
            cur[n] = 0;
            if (!strcmp(cur, s->e.target)) {
                int meta = st.st_mtim.tv_sec != s->e.mtime_s ||
                           (uint32_t)st.st_mtim.tv_nsec != s->e.mtime_ns ||
                           (geteuid() == 0 && (st.st_uid != s->e.uid || st.st_gid != s->e.gid));
                int rc = meta && !dry ? vol_set_meta(top->fd, base, &s->e, 1) : 0;
                return rc < 0 ? rc : send_done(s, meta ? A_META : A_NONE);
            }
        }
    }
    if (dry)
        return send_done(s, A_CREATED);
    vol_tmp_name(tmp, sizeof tmp);
    if (symlinkat(s->e.target, top->fd, tmp) != 0)
        return dr_error_set(DR_EIO, "symlink '%s': %s", s->e.path, strerror(errno));
    int rc = vol_set_meta(top->fd, tmp, &s->e, 1);
    if (rc == 0)
        rc = install(top->fd, tmp, base);
    if (rc < 0)
        unlinkat(top->fd, tmp, 0);
    return rc < 0 ? rc : send_done(s, A_CREATED);
}

/* Opens the directory holding path's last component, from current/, without following
 * symlinks; *base points into path. */
static int open_parent(session *s, const char *path, const char **base)
{
    size_t plen;
    *base = vol_path_base(path, &plen);
    int fd = dup(s->curfd);
    char comp[VOL_NAME_MAX + 1];
    for (size_t i = 0; fd >= 0 && i < plen;) {
        size_t j = i;
        while (j < plen && path[j] != '/')
            j++;
        memcpy(comp, path + i, j - i);
        comp[j - i] = 0;
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
        i = j + 1;
    }
    return fd;
}

static int do_hardlink(session *s, frame *top, const char *base)
{
    const char *tbase;
    struct stat ts, st;
    int dry = s->flags & VOL_F_DRYRUN;
    int tdir = open_parent(s, s->e.target, &tbase);
    int ok =
        tdir >= 0 && fstatat(tdir, tbase, &ts, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(ts.st_mode);
    int rc = 0;
    char tmp[64];
    if (!ok && !dry) {
        rc = dr_error_set(DR_EPROTO, "hard link '%s' to '%s', which is not a file sent before",
                          s->e.path, s->e.target);
        goto out;
    }
    if (ok && top->fd >= 0 && fstatat(top->fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == ts.st_dev && st.st_ino == ts.st_ino) {
        rc = send_done(s, A_NONE);
        goto out;
    }
    if (dry) {
        rc = send_done(s, A_CREATED);
        goto out;
    }
    vol_tmp_name(tmp, sizeof tmp);
    if (linkat(tdir, tbase, top->fd, tmp, 0) != 0) {
        rc = dr_error_set(DR_EIO, "link '%s': %s", s->e.path, strerror(errno));
        goto out;
    }
    if ((rc = install(top->fd, tmp, base)) < 0)
        unlinkat(top->fd, tmp, 0);
    else
        rc = send_done(s, A_CREATED);
out:
    if (tdir >= 0)
        close(tdir);
    return rc;
}

static int do_dir(session *s, frame *top, const char *base)
{
    struct stat st;
    int dry = s->flags & VOL_F_DRYRUN;
    int action = A_NONE, fd = -1, rc;
    if (s->depth >= MAX_DEPTH)
        return dr_error_set(DR_EPROTO, "directories nested deeper than %d", MAX_DEPTH);
    if (!top) {
        fd = dup(s->curfd);
    } else {
        int exists = top->fd >= 0 && fstatat(top->fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (exists && !S_ISDIR(st.st_mode)) {
            if (!dry && (rc = vol_remove_at(top->fd, base)) < 0)
                return rc;
            exists = 0;
        }
        if (!exists) {
            action = A_CREATED;
            if (!dry && mkdirat(top->fd, base, 0700) != 0)
                return dr_error_set(DR_EIO, "mkdir '%s': %s", s->e.path, strerror(errno));
        }
        if (top->fd >= 0 && (exists || !dry))
            fd = openat(top->fd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && !dry)
            return dr_error_set(DR_EIO, "open '%s': %s", s->e.path, strerror(errno));
    }
    frame *f = &s->stack[s->depth++];
    memset(f, 0, sizeof *f);
    f->fd = fd;
    f->meta = s->e;
    if (!(f->path = strdup(s->e.path)))
        return dr_error_set(DR_ENOMEM, "out of memory");
    if (action == A_CREATED)
        s->st.files_changed++;
    uint8_t a = (uint8_t)action;
    return dr_tls_send(s->t, M_DONE, &a, 1);
}

static int do_entry(session *s, const uint8_t *p, size_t n)
{
    int rc = vol_entry_decode(p, n, &s->e);
    if (rc < 0)
        return rc;
    size_t plen;
    const char *base = vol_path_base(s->e.path, &plen);
    frame *top = s->depth ? &s->stack[s->depth - 1] : NULL;
    if (!s->e.path[0]) {
        if (s->root_seen)
            return dr_error_set(DR_EPROTO, "the root sent twice");
        s->root_seen = 1;
        return do_dir(s, NULL, "");
    }
    if (!top || strlen(top->path) != plen || strncmp(top->path, s->e.path, plen) != 0)
        return dr_error_set(DR_EPROTO, "entry '%s' is not in the directory being synced ('%s')",
                            s->e.path, top ? top->path : "(none)");
    if ((rc = frame_add_name(top, base)) < 0)
        return rc;
    switch (s->e.kind) {
    case K_DIR:
        return do_dir(s, top, base);
    case K_FILE:
        return do_file(s, top, base);
    case K_SYMLINK:
        return do_symlink(s, top, base);
    default:
        return do_hardlink(s, top, base);
    }
}

static int do_batch(session *s, size_t n)
{
    vol_rd r = {.p = s->buf, .n = n, .what = "batch"};
    uint8_t hi = 0, lo = 0;
    int rc = vol_get_u8(&r, &hi);
    if (rc == 0)
        rc = vol_get_u8(&r, &lo);
    size_t count = (size_t)hi << 8 | lo;
    if (rc == 0 && (count == 0 || count > VOL_BATCH_MAX))
        rc = dr_error_set(DR_EPROTO, "batch of %zu entries", count);
    s->bout.len = 0;
    s->batch = 1;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        uint32_t len = 0;
        if ((rc = vol_get_u32(&r, &len)) < 0)
            break;
        if (len > r.n) {
            rc = dr_error_set(DR_EPROTO, "truncated batch");
            break;
        }
        if (len < 1 || r.p[0] != K_FILE) {
            rc = dr_error_set(DR_EPROTO, "a batch holds files only");
            break;
        }
        rc = do_entry(s, r.p, len);
        r.p += len;
        r.n -= len;
    }
    s->batch = 0;
    if (rc == 0)
        rc = vol_get_end(&r);
    if (rc == 0 && s->bout.len != count)
        rc = dr_error_set(DR_ENOMEM, "out of memory");
    vol_sigahead_stop(s->ahead); /* the last batch's files have all been asked for */
    s->ahead = NULL;
    if (rc == 0 && s->an && s->depth)
        rc = vol_sigahead_start(&s->ahead, s->stack[s->depth - 1].fd, s->sumkey, s->anames,
                                s->asizes, s->an);
    for (size_t i = 0; i < s->an; i++)
        free(s->anames[i]);
    s->an = 0;
    return rc < 0 ? rc : dr_tls_send(s->t, M_BATCH_DONE, s->bout.data, s->bout.len);
}

static int do_dir_end(session *s, size_t n)
{
    char path[VOL_PATH_MAX + 1];
    vol_rd r = {.p = s->buf, .n = n, .what = "directory end"};
    int rc = vol_get_str(&r, path, VOL_PATH_MAX);
    if (rc == 0)
        rc = vol_get_end(&r);
    if (rc < 0)
        return rc;
    if (!s->depth || strcmp(s->stack[s->depth - 1].path, path) != 0)
        return dr_error_set(DR_EPROTO, "end of directory '%s' out of order", path);
    frame *f = &s->stack[s->depth - 1];
    int dry = s->flags & VOL_F_DRYRUN;
    if (f->fd >= 0) {
        if (f->n)
            qsort(f->names, f->n, sizeof *f->names, cmp_str);
        int dfd = dup(f->fd);
        DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (d)
            rewinddir(d); /* a dup shares the offset of a directory read before */
        if (!d) {
            if (dfd >= 0)
                close(dfd);
            return dr_error_set(DR_EIO, "read '%s': %s", path, strerror(errno));
        }
        struct dirent *de;
        while (rc == 0 && (de = readdir(d)) != NULL) {
            const char *nm = de->d_name;
            if (!strcmp(nm, ".") || !strcmp(nm, ".."))
                continue;
            if (f->n && bsearch(&nm, f->names, f->n, sizeof *f->names, cmp_str))
                continue;
            /* gone from the source (or a temp file of an interrupted sync) */
            int tmpfile = !strncmp(nm, ".drd-tmp.", 9);
            if (!tmpfile) {
                dr_buf b = {0};
                dr_buf_printf(&b, "%s%s%s", path, path[0] ? "/" : "", nm);
                rc = b.data ? dr_tls_send(s->t, M_DELETED, b.data, b.len)
                            : dr_error_set(DR_ENOMEM, "out of memory");
                dr_buf_free(&b);
                s->st.files_deleted++;
            }
            if (rc == 0 && !dry)
                rc = vol_remove_at(f->fd, nm);
        }
        closedir(d);
        if (rc == 0 && !dry)
            rc = vol_set_meta_fd(f->fd, &f->meta);
    }
    frame_free(f);
    s->depth--;
    return rc < 0 ? rc : dr_tls_send(s->t, M_DIR_DONE, NULL, 0);
}

/* ---- the session ---- */

static int open_name_dirs(session *s)
{
    int rootfd = open(s->o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return dr_error_set(DR_EIO, "cannot open --root '%s': %s", s->o->root, strerror(errno));
    if (mkdirat(rootfd, s->name, 0700) != 0 && errno != EEXIST) {
        close(rootfd);
        return dr_error_set(DR_EIO, "mkdir '%s/%s': %s", s->o->root, s->name, strerror(errno));
    }
    s->namefd = openat(rootfd, s->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(rootfd);
    if (s->namefd < 0)
        return dr_error_set(DR_EIO, "open '%s/%s': %s", s->o->root, s->name, strerror(errno));
    if (flock(s->namefd, LOCK_EX | LOCK_NB) != 0)
        return dr_error_set(DR_EBUSY,
                            "volume '%s' under '%s' is being synced by another drd (two servers "
                            "on one root?)",
                            s->name, s->o->root);
    if (mkdirat(s->namefd, "current", 0700) != 0 && errno != EEXIST)
        return dr_error_set(DR_EIO, "mkdir current: %s", strerror(errno));
    s->curfd = openat(s->namefd, "current", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s->curfd < 0)
        return dr_error_set(DR_EIO, "open current: %s", strerror(errno));
    return 0;
}

/* Reads a small file (cap - 1 bytes at most) into buf, NUL-terminated; -1 when missing. */
static int read_small(int dirfd, const char *name, char *buf, size_t cap)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;
    buf[n > 0 ? n : 0] = 0;
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? 0 : -1;
}

static int do_hello(session *s)
{
    uint8_t type;
    size_t n;
    uint32_t version;
    int rc = recv_msg(s, &type, &n);
    if (rc < 0)
        return rc;
    vol_rd r = {.p = s->buf, .n = n, .what = "hello"};
    if (type != M_HELLO)
        return dr_error_set(DR_EPROTO, "expected a hello, got message '%c'", type);
    rc = vol_get_u32(&r, &version);
    if (rc == 0)
        rc = vol_get_u32(&r, &s->flags);
    if (rc == 0)
        rc = vol_get_str(&r, s->name, 64);
    if (rc == 0)
        rc = vol_get_end(&r);
    if (rc < 0)
        return rc;
    if (version != VOL_PROTO_VERSION)
        return dr_error_set(DR_EPROTO, "protocol version %u, this drd speaks %u", version,
                            VOL_PROTO_VERSION);
    if ((rc = dr_vol_name_check(s->name)) < 0)
        return rc;
    if ((rc = open_name_dirs(s)) < 0)
        return rc;
    uint8_t ok_flags = 0;
    if (!(s->flags & VOL_F_DRYRUN)) {
        char boot[64], prev[64];
        read_small(AT_FDCWD, "/proc/sys/kernel/random/boot_id", boot, sizeof boot);
        if (read_small(s->namefd, "syncing", prev, sizeof prev) == 0) {
            if (strcmp(prev, boot) != 0) {
                ok_flags |= VOL_OK_CHECKSUM;
                dr_warn("volume %s: a sync was interrupted by a restart of this machine; "
                        "comparing every file by sha256",
                        s->name);
            }
        }
        int fd = openat(s->namefd, "syncing", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                        0600);
        if (fd < 0 || write(fd, boot, strlen(boot)) < 0 || fsync(fd) != 0) {
            rc = dr_error_set(DR_EIO, "cannot mark '%s' as syncing: %s", s->name, strerror(errno));
            if (fd >= 0)
                close(fd);
            return rc;
        }
        close(fd);
        fsync(s->namefd);
        vol_clean_copies(s->namefd);
    }
    return dr_tls_send(s->t, M_HELLO_OK, &ok_flags, 1);
}

static int run_session(session *s)
{
    int rc = do_hello(s);
    while (rc == 0) {
        uint8_t type;
        size_t n;
        if ((rc = recv_msg(s, &type, &n)) < 0)
            break;
        if (type == M_ENTRY) {
            rc = do_entry(s, s->buf, n);
        } else if (type == M_BATCH) {
            rc = do_batch(s, n);
        } else if (type == M_DIR_END) {
            rc = do_dir_end(s, n);
        } else if (type == M_COMPLETE) {
            vol_rd r = {.p = s->buf, .n = n, .what = "complete"};
            rc = vol_get_u64(&r, &s->st.literal);
            if (rc == 0)
                rc = vol_get_u64(&r, &s->st.matched);
            if (rc == 0)
                rc = vol_get_end(&r);
            if (rc == 0 && (s->depth || !s->root_seen))
                rc = dr_error_set(DR_EPROTO, "complete before the tree was");
            if (rc == 0 && !(s->flags & VOL_F_DRYRUN))
                rc = vol_publish(s->namefd, s->curfd, s->o->keep ? s->o->keep : 3, !s->o->no_sync,
                                 s->st.copy, sizeof s->st.copy);
            if (rc == 0)
                rc = dr_tls_send(s->t, M_PUBLISHED, s->st.copy, strlen(s->st.copy));
            if (rc == 0)
                rc = dr_tls_flush(s->t);
            return rc;
        } else {
            rc = dr_error_set(DR_EPROTO, "unexpected message '%c'", type);
        }
    }
    return rc;
}

static void serve_one(const dr_vol_serve_opts *o, dr_tls_conn *t)
{
    session s = {.t = t, .o = o, .namefd = -1, .curfd = -1};
    int64_t t0 = dr_mono_ms();
    int rc = 0;
    /* before HELLO_OK: the source reads no file before it, so every file of this sync was read
     * after this time (final-volume-sync compares it with the fence, docs/runbooks.md) */
    s.st.started_ms = dr_wall_ms();
    s.buf = malloc(DR_TLS_MAX_FRAME);
    s.raw = malloc(VOL_CHUNK);
    if (!s.buf || !s.raw)
        rc = dr_error_set(DR_ENOMEM, "out of memory");
    if (rc == 0)
        rc = dr_zstd_new(1, &s.z);
    if (rc == 0)
        rc = dr_random_bytes(s.sumkey, sizeof s.sumkey);
    s.rx = (vol_rx){.t = t, .buf = s.buf, .raw = s.raw, .z = s.z, .e = &s.e, .key = s.sumkey};
    if (rc == 0)
        rc = run_session(&s);
    s.st.duration_ms = dr_mono_ms() - t0;
    dr_tls_counters(t, &s.st.wire_sent, &s.st.wire_received);
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        dr_warn("volume sync%s%s from %s failed: %s", s.name[0] ? " of " : "", s.name,
                dr_tls_peer(t), msg);
        if (rc != DR_EUNAVAILABLE && rc != DR_ETIMEOUT)
            vol_send_error(t, rc, msg);
    } else {
        dr_info("volume %s: %s from %s: %llu files, %llu changed, %llu deleted, received %llu "
                "bytes in %lld ms",
                s.name, (s.flags & VOL_F_DRYRUN) ? "dry run" : s.st.copy, dr_tls_peer(t),
                (unsigned long long)s.st.files, (unsigned long long)s.st.files_changed,
                (unsigned long long)s.st.files_deleted, (unsigned long long)s.st.wire_received,
                (long long)s.st.duration_ms);
    }
    vol_sigahead_stop(s.ahead);
    for (size_t i = 0; i < s.an; i++)
        free(s.anames[i]);
    if (s.namefd >= 0 && !(s.flags & VOL_F_DRYRUN))
        vol_status_write(s.namefd, s.name, &s.st, rc);
    while (s.depth)
        frame_free(&s.stack[--s.depth]);
    if (s.curfd >= 0)
        close(s.curfd);
    if (s.namefd >= 0)
        close(s.namefd);
    dr_zstd_free(s.z);
    dr_buf_free(&s.bout);
    free(s.buf);
    free(s.raw);
}

static int metrics(void *ctx, const char *path, dr_buf *body, const char **ctype)
{
    const dr_vol_serve_opts *o = ctx;
    if (!strcmp(path, "/healthz"))
        return dr_buf_printf(body, "ok\n") < 0 ? 500 : 200;
    if (strcmp(path, "/metrics") != 0)
        return 404;
    *ctype = "text/plain; version=0.0.4";
    return vol_metrics(o->root, body) < 0 ? 500 : 200;
}

int dr_vol_serve(const dr_vol_serve_opts *o)
{
    dr_tls_conf *c = NULL;
    dr_tls_listener *l = NULL;
    dr_http_server *h = NULL;
    struct stat st;
    int rc = 0, served = 0;
    if (stat(o->root, &st) != 0)
        return dr_error_set(DR_ENOTFOUND, "--root '%s': %s", o->root, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return dr_error_set(DR_EUSAGE, "--root '%s': not a directory", o->root);
    dr_tls_opts to = o->tls;
    to.server = 1;
    if ((rc = dr_tls_conf_new(&to, &c)) < 0)
        goto out;
    if ((rc = dr_tls_listen(o->listen, "--listen", &l)) < 0)
        goto out;
    if (o->status_listen &&
        (rc = dr_http_start(o->status_listen, "--status-listen", NULL, metrics, (void *)o, &h)) < 0)
        goto out;
    dr_info("volume server listening on %s (root %s)", o->listen, o->root);
    while (!o->max_syncs || served < o->max_syncs) {
        dr_tls_conn *t = NULL;
        rc = dr_tls_accept(l, c, o->stop, &t);
        if (rc == DR_EINTR) {
            rc = 0;
            break;
        }
        if (rc < 0) {
            dr_warn("%s", dr_error_msg());
            rc = 0;
            continue;
        }
        serve_one(o, t);
        dr_tls_close(t);
        served++;
    }
out:
    dr_http_stop(h);
    dr_tls_listener_close(l);
    dr_tls_conf_free(c);
    return rc;
}
