/*
 * Volume replication, source side: walks the tree depth first (each directory's children
 * sorted by name, right after it), asks the destination about each entry and sends what it
 * wants: a whole file (its data extents, zstd-compressed, holes skipped) or a delta: a keyed sum
 * of each chunk, then a librsync delta of the chunks the destination found different, against
 * the signature it sent. One sync per connection (vol_int.h has the conversation).
 * Must never follow a symlink (the tree is read with openat/O_NOFOLLOW from the source dir),
 * read a file whole into memory, or write anything on the source.
 */
#include "replicate/volume/volume.h"
#include "replicate/volume/vol_int.h"

#include "drd/lib/crypto/crypto.h"
#include "drd/lib/delta/delta.h"
#include "drd/lib/zstd/zstd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 256

typedef struct push {
    const dr_vol_push_opts *o;
    dr_tls_conn *t;
    dr_zstd *z;
    uint8_t *buf, *raw, *cbuf;
    size_t cbuf_cap, raw_len;
    dr_buf eb;
    vol_inomap links;
    dr_vol_stats *st;
    vol_entry e;
    int depth;
    int checksum; /* --checksum, or asked for by the destination */
    /* the files of the current directory gathered for one BATCH */
    vol_entry *bent;
    char *bname[VOL_BATCH_MAX];
    size_t bn;
    dr_buf bbuf;
} push;

static int recv_reply(push *p, uint8_t *type, size_t *n)
{
    return vol_recv(p->t, p->buf, type, n, "destination refused the sync");
}

static int unexpected(uint8_t type, const char *what)
{
    return dr_error_set(DR_EPROTO, "unexpected message '%c' from the destination (%s)", type, what);
}

static void report(push *p, const char *what, const char *path)
{
    if (p->o->dry_run || p->o->verbose)
        printf("%s%s %s\n", p->o->dry_run ? "would " : "", what, path[0] ? path : ".");
}

static int count_action(push *p, uint8_t a, const char *path)
{
    static const char *names[] = {"keep", "update metadata of", "send whole", "send delta of",
                                  "create"};
    if (a > A_CREATED)
        return dr_error_set(DR_EPROTO, "bad answer from the destination");
    if (a != A_NONE) {
        p->st->files_changed++;
        report(p, names[a], path);
    }
    return 0;
}

static int handle_done(push *p, size_t n)
{
    if (n != 1)
        return dr_error_set(DR_EPROTO, "bad answer from the destination");
    return count_action(p, p->buf[0], p->e.path);
}

/* Compresses and sends the raw bytes gathered for a DATA (off >= 0) or DELTA frame. */
static int send_chunk(push *p, int64_t off, const uint8_t *data, size_t n)
{
    size_t cn = 0;
    uint8_t hdr[13];
    size_t hl = 0;
    int rc = dr_zstd_compress(p->z, data, n, p->cbuf, p->cbuf_cap, &cn);
    if (rc < 0)
        return rc;
    int comp = cn < n;
    if (off >= 0) {
        for (int i = 0; i < 8; i++)
            hdr[hl++] = (uint8_t)((uint64_t)off >> (56 - 8 * i));
    }
    hdr[hl++] = (uint8_t)comp;
    hdr[hl++] = (uint8_t)(n >> 24);
    hdr[hl++] = (uint8_t)(n >> 16);
    hdr[hl++] = (uint8_t)(n >> 8);
    hdr[hl++] = (uint8_t)n;
    return dr_tls_send2(p->t, off >= 0 ? M_DATA : M_DELTA, hdr, hl, comp ? p->cbuf : data,
                        comp ? cn : n);
}

static int send_file_end(push *p, int has, const uint8_t sha[32])
{
    uint8_t m[33] = {(uint8_t)has};
    if (has)
        memcpy(m + 1, sha, 32);
    return dr_tls_send(p->t, M_FILE_END, m, has ? 33 : 1);
}

static int send_whole(push *p, int fd)
{
    off_t pos = 0, size = (off_t)p->e.size;
    while (pos < size) {
        off_t data = lseek(fd, pos, SEEK_DATA), hole;
        if (data < 0 && errno == ENXIO)
            break;
        if (data < 0) { /* no SEEK_DATA here: all of it is data */
            data = pos;
            hole = size;
        } else if ((hole = lseek(fd, data, SEEK_HOLE)) < 0) {
            hole = size;
        }
        if (hole > size)
            hole = size;
        for (off_t off = data; off < hole;) {
            size_t want = (size_t)(hole - off < VOL_CHUNK ? hole - off : VOL_CHUNK);
            ssize_t n = pread(fd, p->raw, want, off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return dr_error_set(DR_EIO, "read '%s': %s", p->e.path, strerror(errno));
            if (n == 0) /* the file shrank while we read it */
                return dr_error_set(DR_EIO, "'%s' changed while being sent", p->e.path);
            int rc = send_chunk(p, off, p->raw, (size_t)n);
            if (rc < 0)
                return rc;
            off += n;
            p->st->whole_bytes += (uint64_t)n;
            dr_progress_add(p->o->progress, (uint64_t)n);
        }
        pos = hole;
    }
    return send_file_end(p, p->e.has_sha, p->e.sha);
}

/* The delta job's output, gathered into VOL_CHUNK pieces. */
typedef struct delta_sink {
    dr_sink base;
    push *p;
} delta_sink;

static int delta_write(dr_sink *s, const void *data, size_t len)
{
    push *p = ((delta_sink *)s)->p;
    while (len) {
        size_t k = VOL_CHUNK - p->raw_len < len ? VOL_CHUNK - p->raw_len : len;
        memcpy(p->raw + p->raw_len, data, k);
        p->raw_len += k;
        data = (const char *)data + k;
        len -= k;
        if (p->raw_len == VOL_CHUNK) {
            int rc = send_chunk(p, -1, p->raw, p->raw_len);
            p->raw_len = 0;
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int delta_finish(dr_sink *s)
{
    push *p = ((delta_sink *)s)->p;
    int rc = p->raw_len ? send_chunk(p, -1, p->raw, p->raw_len) : 0;
    p->raw_len = 0;
    return rc;
}

static void delta_free(dr_sink *s)
{
    (void)s;
}

static const dr_sink_ops delta_ops = {delta_write, delta_finish, delta_free};

/* Pass 1 of a delta: the sum of every chunk under the destination's key, as SUMS frames, then
 * SUMS_END. */
static int send_sums(push *p, int fd, const uint8_t *key, uint64_t clen, uint32_t count)
{
    uint8_t *frame = malloc((size_t)VOL_SUMS_FRAME * VOL_SUM_BYTES);
    dr_gmac *g = NULL;
    size_t k = 0;
    int rc = frame ? dr_gmac_new(key, &g) : dr_error_set(DR_ENOMEM, "out of memory");
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        uint64_t off = (uint64_t)i * clen;
        uint64_t len = p->e.size - off < clen ? p->e.size - off : clen;
        if ((rc = vol_sum_range(fd, off, len, g, p->raw, -1, frame + VOL_SUM_BYTES * k)) < 0) {
            char m[256];
            snprintf(m, sizeof m, "%s", dr_error_msg());
            rc = dr_error_set(DR_EIO, "'%s': %s", p->e.path, m);
            break;
        }
        if (++k == VOL_SUMS_FRAME || i + 1 == count) {
            rc = dr_tls_send(p->t, M_SUMS, frame, VOL_SUM_BYTES * k);
            k = 0;
        }
    }
    dr_gmac_free(g);
    free(frame);
    return rc < 0 ? rc : dr_tls_send(p->t, M_SUMS_END, NULL, 0);
}

/* Pass 2: the runs the destination names, a signature of its bytes of them; sends the delta of
 * ours, then FILE_END with their sha256. */
static int send_delta(push *p, int fd, const uint8_t *key)
{
    uint64_t clen = vol_sum_len(p->e.size);
    uint32_t count = vol_sum_count(p->e.size, clen);
    size_t cap = (count + 1) / 2, nruns = 0;
    vol_run *runs = malloc((cap ? cap : 1) * sizeof *runs);
    dr_delta_sig *sig = NULL;
    dr_delta_job *job = NULL;
    dr_sha256 *h = NULL;
    delta_sink ds = {.base = {&delta_ops}, .p = p};
    uint8_t sha[32], type = 0;
    size_t n = 0;
    int rc = runs ? send_sums(p, fd, key, clen, count) : dr_error_set(DR_ENOMEM, "out of memory");
    while (rc == 0 && (rc = recv_reply(p, &type, &n)) == 0 && type == M_RUNS)
        rc = vol_runs_decode(p->buf, n, count, runs, &nruns, cap);
    if (rc == 0)
        rc = dr_delta_load_job_new(&sig, &job);
    while (rc == 0 && type != M_SIG_END) {
        if (type != M_SIG) {
            rc = unexpected(type, "signature");
            break;
        }
        if ((rc = dr_delta_job_feed(job, p->buf, n, NULL)) == 0)
            rc = recv_reply(p, &type, &n);
    }
    if (rc == 0)
        rc = dr_delta_job_finish(job, NULL);
    dr_delta_job_free(job);
    job = NULL;
    if (rc == 0)
        rc = dr_delta_delta_job_new(sig, &job);
    if (rc == 0)
        rc = dr_sha256_new(&h);
    p->raw_len = 0;
    uint8_t *in = rc == 0 ? malloc(VOL_CHUNK) : NULL;
    if (rc == 0 && !in)
        rc = dr_error_set(DR_ENOMEM, "out of memory");
    uint64_t sent = 0; /* bytes of the runs */
    for (size_t r = 0; rc == 0 && r < nruns; r++) {
        uint64_t off = (uint64_t)runs[r].first * clen;
        uint64_t end = ((uint64_t)runs[r].first + runs[r].count) * clen;
        if (end > p->e.size)
            end = p->e.size;
        while (rc == 0 && off < end) {
            ssize_t k =
                pread(fd, in, end - off < VOL_CHUNK ? (size_t)(end - off) : VOL_CHUNK, (off_t)off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                rc = dr_error_set(DR_EIO, "read '%s': %s", p->e.path,
                                  k < 0 ? strerror(errno) : "changed while being sent");
                break;
            }
            off += (uint64_t)k;
            sent += (uint64_t)k;
            dr_sha256_update(h, in, (size_t)k);
            rc = dr_delta_job_feed(job, in, (size_t)k, &ds.base);
        }
    }
    free(in);
    if (rc == 0)
        rc = dr_delta_job_finish(job, &ds.base);
    if (rc == 0)
        rc = delta_finish(&ds.base);
    if (rc == 0) {
        uint64_t lit, matched;
        dr_delta_job_stats(job, &lit, &matched);
        p->st->literal += lit;
        p->st->matched += matched + (p->e.size - sent);
        dr_progress_add(p->o->progress, p->e.size);
        dr_sha256_final(h, sha);
        rc = send_file_end(p, 1, sha);
    }
    dr_sha256_free(h);
    dr_delta_job_free(job);
    dr_delta_sig_free(sig);
    free(runs);
    return rc;
}

static void meta_of(vol_entry *e, const struct stat *st)
{
    e->mode = st->st_mode & 07777;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->mtime_s = st->st_mtim.tv_sec;
    e->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
}

/* Sends p->e and handles the answer (with fd for a file). */
static int exchange(push *p, int fd)
{
    uint8_t type;
    size_t n;
    int rc = vol_entry_encode(&p->e, &p->eb);
    if (rc == 0)
        rc = dr_tls_send(p->t, M_ENTRY, p->eb.data, p->eb.len);
    if (rc == 0)
        rc = recv_reply(p, &type, &n);
    if (rc < 0)
        return rc;
    if (type == M_DONE)
        return handle_done(p, n);
    if (fd < 0 || (type != M_WANT_WHOLE && type != M_WANT_DELTA) ||
        (type == M_WANT_DELTA && n != VOL_SUM_KEY))
        return unexpected(type, p->e.path);
    uint8_t key[VOL_SUM_KEY];
    memcpy(key, p->buf, type == M_WANT_DELTA ? VOL_SUM_KEY : 0);
    rc = type == M_WANT_WHOLE ? send_whole(p, fd) : send_delta(p, fd, key);
    int delta = type == M_WANT_DELTA;
    if (rc == 0)
        rc = recv_reply(p, &type, &n);
    if (rc == 0 && delta && type == M_WANT_WHOLE) { /* the delta's result was not our file */
        rc = send_whole(p, fd);
        if (rc == 0)
            rc = recv_reply(p, &type, &n);
    }
    if (rc == 0 && type != M_DONE)
        rc = unexpected(type, p->e.path);
    return rc < 0 ? rc : handle_done(p, n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(push *p, int dirfd, char *path, const struct stat *dst);

/* Sends the gathered files of dirfd as one BATCH; sends the data of those the destination
 * needs. */
static int flush_batch(push *p, int dirfd)
{
    uint8_t res[VOL_BATCH_MAX], type;
    uint8_t cnt[2] = {(uint8_t)(p->bn >> 8), (uint8_t)p->bn};
    size_t n = 0, count = p->bn;
    int rc = 0;
    if (!count)
        return 0;
    rc = dr_tls_send2(p->t, M_BATCH, cnt, 2, p->bbuf.data, p->bbuf.len);
    if (rc == 0)
        rc = recv_reply(p, &type, &n);
    if (rc == 0 && (type != M_BATCH_DONE || n != count))
        rc = unexpected(type, "batch");
    if (rc == 0)
        memcpy(res, p->buf, count);
    for (size_t k = 0; rc == 0 && k < count; k++) {
        if (res[k] != A_NEED) {
            rc = count_action(p, res[k], p->bent[k].path);
            continue;
        }
        p->e = p->bent[k];
        int fd = openat(dirfd, p->bname[k], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            rc = dr_error_set(DR_EIO, "open '%s/%s': %s", p->o->source, p->e.path, strerror(errno));
        else
            rc = exchange(p, fd);
        if (fd >= 0)
            close(fd);
    }
    for (size_t k = 0; k < count; k++)
        free(p->bname[k]);
    p->bn = 0;
    p->bbuf.len = 0;
    return rc;
}

/* Adds p->e (a file named nm in dirfd) to the batch, sending it when full. */
static int batch_add(push *p, int dirfd, const char *nm)
{
    int rc = vol_entry_encode(&p->e, &p->eb);
    if (rc == 0 && p->bbuf.len + p->eb.len + 64 > DR_TLS_MAX_FRAME)
        rc = flush_batch(p, dirfd);
    if (rc < 0)
        return rc;
    p->bent[p->bn] = p->e;
    if (!(p->bname[p->bn] = strdup(nm)))
        return dr_error_set(DR_ENOMEM, "out of memory");
    p->bn++;
    vol_put_u32(&p->bbuf, (uint32_t)p->eb.len);
    dr_buf_append(&p->bbuf, p->eb.data, p->eb.len);
    if (!p->bbuf.data)
        return dr_error_set(DR_ENOMEM, "out of memory");
    return p->bn == VOL_BATCH_MAX ? flush_batch(p, dirfd) : 0;
}

/* A file with several links (the first of its group): on its own, so that the links that follow
 * find it in place. */
static int flush_then_send(push *p, int dirfd, const char *nm)
{
    int fd = openat(dirfd, nm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return dr_error_set(DR_EIO, "open '%s/%s': %s", p->o->source, p->e.path, strerror(errno));
    int rc = exchange(p, fd);
    close(fd);
    return rc;
}

static int do_child(push *p, int dirfd, const char *nm, char *path)
{
    struct stat st;
    int rc = 0;
    if (fstatat(dirfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 /* gone since listed */
                               : dr_error_set(DR_EIO, "stat '%s': %s", path, strerror(errno));
    int batchable = S_ISREG(st.st_mode) && st.st_nlink == 1;
    if (!batchable && (rc = flush_batch(p, dirfd)) < 0) /* hard links after their targets */
        return rc;
    memset(&p->e, 0, sizeof p->e);
    snprintf(p->e.path, sizeof p->e.path, "%s", path);
    meta_of(&p->e, &st);
    if (S_ISDIR(st.st_mode)) {
        int fd = openat(dirfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return dr_error_set(DR_EIO, "open '%s/%s': %s", p->o->source, path, strerror(errno));
        rc = walk(p, fd, path, &st);
        close(fd);
        return rc;
    }
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlinkat(dirfd, nm, p->e.target, sizeof p->e.target - 1);
        if (n <= 0)
            return dr_error_set(DR_EIO, "readlink '%s': %s", path, strerror(errno));
        p->e.target[n] = 0;
        p->e.kind = K_SYMLINK;
        p->st->files++;
        return exchange(p, -1);
    }
    if (!S_ISREG(st.st_mode)) {
        dr_warn("skipping '%s/%s': not a file, directory or symlink", p->o->source, path);
        return 0;
    }
    p->st->files++;
    if (st.st_nlink > 1) {
        const char *first = vol_inomap_seen(&p->links, st.st_dev, st.st_ino, path, &rc);
        if (rc < 0)
            return rc;
        if (first) {
            p->e.kind = K_HARDLINK;
            snprintf(p->e.target, sizeof p->e.target, "%s", first);
            return exchange(p, -1);
        }
    }
    p->e.kind = K_FILE;
    p->e.size = (uint64_t)st.st_size;
    p->e.sparse = (uint64_t)st.st_blocks * 512 < p->e.size / 2;
    if (p->o->checksum || p->checksum) {
        int fd = openat(dirfd, nm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return dr_error_set(DR_EIO, "open '%s/%s': %s", p->o->source, path, strerror(errno));
        rc = vol_hash_fd(fd, p->e.sha);
        p->e.has_sha = 1;
        close(fd);
    }
    if (rc == 0)
        rc = batchable ? batch_add(p, dirfd, nm) : flush_then_send(p, dirfd, nm);
    return rc;
}

static int walk(push *p, int dirfd, char *path, const struct stat *dst)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (++p->depth > MAX_DEPTH)
        return dr_error_set(DR_EIO, "'%s' nested deeper than %d directories", path, MAX_DEPTH);
    memset(&p->e, 0, sizeof p->e);
    snprintf(p->e.path, sizeof p->e.path, "%s", path);
    meta_of(&p->e, dst);
    p->e.kind = K_DIR;
    if ((rc = exchange(p, -1)) < 0)
        return rc;
    int dfd = dup(dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d)
        rewinddir(d); /* a dup shares the offset of a directory read before */
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return dr_error_set(DR_EIO, "read '%s/%s': %s", p->o->source, path, strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **v = realloc(names, cap * sizeof *v);
            if (!v) {
                rc = dr_error_set(DR_ENOMEM, "out of memory");
                break;
            }
            names = v;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    size_t plen = strlen(path);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (plen + 1 + strlen(names[i]) > VOL_PATH_MAX) {
            rc = dr_error_set(DR_EIO, "path under '%s' longer than %d bytes", path, VOL_PATH_MAX);
            break;
        }
        snprintf(path + plen, VOL_PATH_MAX + 1 - plen, "%s%s", plen ? "/" : "", names[i]);
        rc = do_child(p, dirfd, names[i], path);
        path[plen] = 0;
    }
    if (rc == 0)
        rc = flush_batch(p, dirfd);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc == 0)
        rc = dr_tls_send2(p->t, M_DIR_END, (uint8_t[]){(uint8_t)(plen >> 8), (uint8_t)plen}, 2,
                          path, plen);
    while (rc == 0) {
        uint8_t type;
        size_t k;
        if ((rc = recv_reply(p, &type, &k)) < 0)
            break;
        if (type == M_DIR_DONE)
            break;
        if (type != M_DELETED) {
            rc = unexpected(type, "directory end");
            break;
        }
        char shown[VOL_PATH_MAX + 1];
        p->st->files_deleted++;
        report(p, "delete", dr_escape(p->buf, k, shown, sizeof shown));
    }
    p->depth--;
    return rc;
}

int dr_vol_push(const dr_vol_push_opts *o, dr_vol_stats *st)
{
    push p = {.o = o, .st = st};
    dr_tls_conf *c = NULL;
    struct stat rst;
    char path[VOL_PATH_MAX + 1] = "";
    int64_t t0 = dr_mono_ms();
    memset(st, 0, sizeof *st);
    st->started_ms = dr_wall_ms();
    int rc = dr_vol_name_check(o->name);
    if (rc < 0)
        return rc;
    int root = open(o->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "--source '%s': %s", o->source,
                            strerror(errno));
    dr_tls_opts to = o->tls;
    to.server = 0;
    p.cbuf_cap = dr_zstd_bound(VOL_CHUNK);
    p.buf = malloc(DR_TLS_MAX_FRAME);
    p.raw = malloc(VOL_CHUNK);
    p.cbuf = malloc(p.cbuf_cap);
    p.bent = malloc(VOL_BATCH_MAX * sizeof *p.bent);
    if (!p.buf || !p.raw || !p.cbuf || !p.bent)
        rc = dr_error_set(DR_ENOMEM, "out of memory");
    if (rc == 0)
        rc = dr_zstd_new(3, &p.z);
    if (rc == 0)
        rc = dr_tls_conf_new(&to, &c);
    if (rc == 0)
        rc = dr_tls_connect(o->to, c, &p.t);
    if (rc < 0)
        goto out;
    dr_tls_set_rate(p.t, o->bwlimit);
    dr_buf hello = {0};
    vol_put_u32(&hello, VOL_PROTO_VERSION);
    vol_put_u32(&hello, (o->dry_run ? VOL_F_DRYRUN : 0) | (o->checksum ? VOL_F_CHECKSUM : 0));
    vol_put_str(&hello, o->name);
    rc = hello.data ? dr_tls_send(p.t, M_HELLO, hello.data, hello.len)
                    : dr_error_set(DR_ENOMEM, "out of memory");
    dr_buf_free(&hello);
    uint8_t type;
    size_t n;
    if (rc == 0)
        rc = recv_reply(&p, &type, &n);
    if (rc == 0 && (type != M_HELLO_OK || n != 1))
        rc = unexpected(type, "hello");
    if (rc == 0 && (p.buf[0] & VOL_OK_CHECKSUM) && !o->checksum) {
        dr_warn("the destination restarted during an unfinished sync: comparing every file by "
                "sha256");
        p.checksum = 1;
    }
    if (rc == DR_EUNAVAILABLE) {
        /* TLS 1.3: the server checks our certificate after our side of the handshake is done,
         * so its refusal shows up here, often as a reset that loses the alert */
        char m[400];
        snprintf(m, sizeof m, "%s", dr_error_msg());
        rc = dr_error_set(DR_ETLS,
                          "%s, right after the TLS handshake: the destination refused "
                          "this side's certificate (--cert/--cacert), or is not a drd volume "
                          "server",
                          m);
    }
    if (rc == 0 && fstat(root, &rst) != 0)
        rc = dr_error_set(DR_EIO, "stat '%s': %s", o->source, strerror(errno));
    dr_progress_begin(o->progress, "syncing volume", 0);
    if (rc == 0)
        rc = walk(&p, root, path, &rst);
    if (rc == 0) {
        dr_buf b = {0};
        vol_put_u64(&b, st->literal);
        vol_put_u64(&b, st->matched);
        rc = b.data ? dr_tls_send(p.t, M_COMPLETE, b.data, b.len)
                    : dr_error_set(DR_ENOMEM, "out of memory");
        dr_buf_free(&b);
    }
    if (rc == 0)
        rc = recv_reply(&p, &type, &n);
    if (rc == 0 && type != M_PUBLISHED)
        rc = unexpected(type, "complete");
    if (rc == 0) {
        size_t k = n < sizeof st->copy - 1 ? n : sizeof st->copy - 1;
        memcpy(st->copy, p.buf, k);
        st->copy[k] = 0;
    }
    if (p.t)
        dr_tls_counters(p.t, &st->wire_sent, &st->wire_received);
out:
    dr_progress_end(o->progress);
    st->duration_ms = dr_mono_ms() - t0;
    if (rc < 0 && p.t && dr_error_code() != DR_EUNAVAILABLE) {
        const char *m = dr_error_msg();
        vol_send_error(p.t, rc, m);
    }
    dr_tls_close(p.t);
    dr_tls_conf_free(c);
    dr_zstd_free(p.z);
    vol_inomap_free(&p.links);
    dr_buf_free(&p.eb);
    dr_buf_free(&p.bbuf);
    for (size_t k = 0; k < p.bn; k++)
        free(p.bname[k]);
    free(p.bent);
    free(p.buf);
    free(p.raw);
    free(p.cbuf);
    close(root);
    return rc;
}
