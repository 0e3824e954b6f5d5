/*
 * Volume replication, destination side: receiving a file's data (vol_int.h has the
 * conversation). Whole: DATA frames written at their offsets. By delta: the source's chunk sums
 * (GMAC under the session's key) compared with the destination's, RUNS and a librsync signature of
 * the runs sent back, then the delta of the runs patched over the result, which got the basis'
 * bytes as they were read to be summed (one read of the basis for its equal chunks; a run's range
 * is zeroed before its bytes are written). Every file is written so that runs of zero 4 KiB blocks
 * stay holes. Must never write past the size the ENTRY announced (but for the basis' bytes of the
 * source's last chunk, cut off at the end), read the basis outside the ranges the runs name (but
 * to sum it), or accept a result whose patched bytes fail the source's sha256 (DR_ECHECKSUM: the
 * caller asks for the file whole).
 */
#include "replicate/volume/vol_int.h"

#include "drd/lib/crypto/crypto.h"
#include "drd/lib/delta/delta.h"
#include "drd/lib/tlsnet/tlsnet.h"
#include "drd/lib/zstd/zstd.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int recv_msg(vol_rx *s, uint8_t *type, size_t *n)
{
    return vol_recv(s->t, s->buf, type, n, "source reported");
}

/* A sink into fd from offset 0 that leaves runs of zero blocks as holes, optionally hashing. */
typedef struct file_sink {
    dr_sink base;
    int fd;
    uint64_t pos;
    dr_sha256 *h;
} file_sink;

static int is_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zero[4096];
    return n <= sizeof zero && memcmp(p, zero, n) == 0;
}

int vol_write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    /* skip 4 KiB blocks of zeros (aligned to the file): the file stays sparse */
    while (n) {
        size_t k = 4096 - (size_t)(off % 4096);
        if (k > n)
            k = n;
        if (is_zero(p, k)) {
            p += k;
            off += k;
            n -= k;
            continue;
        }
        size_t run = k;
        while (run < n) {
            size_t k2 = n - run < 4096 ? n - run : 4096;
            if (is_zero(p + run, k2))
                break;
            run += k2;
        }
        ssize_t w = pwrite(fd, p, run, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dr_error_set(DR_EIO, "write: %s", w < 0 ? strerror(errno) : "short write");
        p += w;
        off += (uint64_t)w;
        n -= (size_t)w;
    }
    return 0;
}

static int file_sink_write(dr_sink *sk, const void *data, size_t len)
{
    file_sink *f = (file_sink *)sk;
    if (f->h)
        dr_sha256_update(f->h, data, len);
    int rc = vol_write_sparse(f->fd, data, len, f->pos);
    f->pos += len;
    return rc;
}

static int file_sink_finish(dr_sink *sk)
{
    (void)sk;
    return 0;
}

static void file_sink_free(dr_sink *sk)
{
    (void)sk;
}

static const dr_sink_ops file_sink_ops = {file_sink_write, file_sink_finish, file_sink_free};

/* Hashes n zero bytes (a hole the source skipped). */
static void hash_zeros(dr_sha256 *h, uint64_t n)
{
    static const uint8_t zero[65536];
    while (n) {
        size_t k = n < sizeof zero ? (size_t)n : sizeof zero;
        dr_sha256_update(h, zero, k);
        n -= k;
    }
}

/* A sink sending what is written as frames of one type. */
typedef struct frame_sink {
    dr_sink base;
    dr_tls_conn *t;
    uint8_t type;
} frame_sink;

static int frame_sink_write(dr_sink *sk, const void *data, size_t len)
{
    frame_sink *f = (frame_sink *)sk;
    return dr_tls_send(f->t, f->type, data, len);
}

static const dr_sink_ops frame_sink_ops = {frame_sink_write, file_sink_finish, file_sink_free};

/* Receives one DATA or DELTA frame's raw bytes: *body points at them (in s->raw when they came
 * compressed), *raw their count; *off a DATA frame's offset (off NULL: a DELTA frame). */
static int frame_body(vol_rx *s, size_t n, uint64_t *off, const uint8_t **body, uint32_t *raw)
{
    uint8_t flags;
    size_t blen;
    int rc = vol_data_decode(s->buf, n, off, &flags, raw, body, &blen);
    if (rc == 0 && (flags & 1)) {
        size_t got;
        if ((rc = dr_zstd_decompress(s->z, *body, blen, s->raw, VOL_CHUNK, &got)) < 0)
            return rc;
        if (got != *raw)
            return dr_error_set(DR_EPROTO, "data frame: %zu bytes for %u announced", got, *raw);
        *body = s->raw;
    }
    return rc;
}

/* The next frame of a file: a DATA or DELTA frame (type; off NULL for DELTA) into *body and *raw,
 * or FILE_END (*end set, *sha the source's sha256 or NULL when it sent none). */
static int next_frame(vol_rx *s, uint8_t type, uint64_t *off, const uint8_t **body, uint32_t *raw,
                      const uint8_t **sha, int *end)
{
    uint8_t got;
    size_t n;
    int rc = recv_msg(s, &got, &n);
    if (rc < 0)
        return rc;
    if (got == M_FILE_END) {
        *end = 1;
        if (n != 1 && n != 33)
            return dr_error_set(DR_EPROTO, "file end of %zu bytes", n);
        *sha = n == 33 && s->buf[0] == 1 ? s->buf + 1 : NULL;
        return 0;
    }
    if (got != type)
        return dr_error_set(DR_EPROTO, "unexpected message '%c' while receiving '%s'", got,
                            s->e->path);
    return frame_body(s, n, off, body, raw);
}

static int check_sha(vol_rx *s, dr_sha256 *h, const uint8_t *want)
{
    uint8_t sha[32];
    dr_sha256_final(h, sha);
    if (!want || memcmp(sha, want, 32) != 0)
        return dr_error_set(DR_ECHECKSUM, "'%s' differs from the source after transfer (sha256)",
                            s->e->path);
    return 0;
}

int vol_recv_whole(vol_rx *s, int fd)
{
    file_sink fs = {.base = {&file_sink_ops}, .fd = fd};
    uint64_t next = 0;
    const uint8_t *want = NULL;
    int rc = 0;
    if (s->e->has_sha && (rc = dr_sha256_new(&fs.h)) < 0)
        return rc;
    for (int end = 0;;) {
        uint64_t off = 0;
        uint32_t raw;
        const uint8_t *body;
        if ((rc = next_frame(s, M_DATA, &off, &body, &raw, &want, &end)) < 0 || end)
            break;
        if (off < next || off > s->e->size || raw > s->e->size - off) {
            rc = dr_error_set(DR_EPROTO,
                              "data for '%s' at offset %llu out of order or beyond its size",
                              s->e->path, (unsigned long long)off);
            goto out;
        }
        if (fs.h)
            hash_zeros(fs.h, off - next);
        fs.pos = off;
        if ((rc = file_sink_write(&fs.base, body, raw)) < 0)
            goto out;
        next = off + raw;
    }
    if (rc < 0)
        goto out;
    if (fs.h)
        hash_zeros(fs.h, s->e->size - next);
    if (ftruncate(fd, (off_t)s->e->size) != 0) {
        rc = dr_error_set(DR_EIO, "truncate '%s': %s", s->e->path, strerror(errno));
        goto out;
    }
    if (fs.h)
        rc = check_sha(s, fs.h, want);
out:
    dr_sha256_free(fs.h);
    return rc;
}

/* ---- a delta: chunk sums, runs, librsync on the runs (vol_int.h) ---- */

struct vol_delta {
    vol_rx *s;
    int basis;
    uint64_t bsize, clen;
    uint32_t count; /* the source's chunks */
    vol_run *runs;  /* the chunks that differ */
    size_t nruns;
    uint64_t *vstart, *vlen; /* each run's destination bytes, in their concatenation */
    uint8_t *cbuf;           /* VOL_CHUNK bytes for reads of the basis */
    /* the result being written: the basis' bytes already in out (copied as they were summed) */
    dr_sink base;
    int out;
    size_t k;     /* the run being patched */
    uint64_t pos; /* bytes of the result final (all before pos) */
    dr_sha256 *h; /* of the patched bytes */
};

void vol_delta_free(vol_delta *d)
{
    if (!d)
        return;
    free(d->runs);
    free(d->vstart);
    free(d->vlen);
    free(d->cbuf);
    dr_sha256_free(d->h);
    free(d);
}

/* The source's bytes of run k: [first * clen, its end). */
static uint64_t run_src_end(const vol_delta *d, size_t k)
{
    uint64_t end = ((uint64_t)d->runs[k].first + d->runs[k].count) * d->clen;
    return end < d->s->e->size ? end : d->s->e->size;
}

/* The destination's bytes of run k: the same range; the last chunk's run to the basis' end. */
static void run_basis(const vol_delta *d, size_t k, uint64_t *off, uint64_t *len)
{
    uint64_t end = ((uint64_t)d->runs[k].first + d->runs[k].count) * d->clen;
    *off = (uint64_t)d->runs[k].first * d->clen;
    if (d->runs[k].first + d->runs[k].count == d->count || end > d->bsize)
        end = d->bsize;
    *len = *off < end ? end - *off : 0;
}

/* The patch's reader: the concatenated destination bytes of the runs. */
static int basis_read(void *arg, uint64_t pos, void *buf, size_t *len)
{
    vol_delta *d = arg;
    size_t lo = 0, hi = d->nruns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->vstart[mid] <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!lo || pos >= d->vstart[lo - 1] + d->vlen[lo - 1]) {
        *len = 0;
        return 0;
    }
    size_t k = lo - 1, got = 0;
    uint64_t left = d->vstart[k] + d->vlen[k] - pos, boff, blen;
    run_basis(d, k, &boff, &blen);
    size_t want = *len < left ? *len : (size_t)left;
    while (got < want) {
        ssize_t r = pread(d->basis, (char *)buf + got, want - got,
                          (off_t)(boff + (pos - d->vstart[k]) + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return dr_error_set(DR_EIO, "read '%s': %s", d->s->e->path,
                                r < 0 ? strerror(errno) : "changed during the sync");
        got += (size_t)r;
    }
    *len = got;
    return 0;
}

/* Zeroes out's bytes [off, off + len) (a hole where the file system can punch one): a run's
 * bytes of the basis copied there must not stay under the zero blocks the patch leaves as holes. */
static int clear_range(vol_delta *d, uint64_t off, uint64_t len)
{
    if (fallocate(d->out, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    memset(d->cbuf, 0, VOL_CHUNK);
    while (len) {
        size_t n = len < VOL_CHUNK ? (size_t)len : VOL_CHUNK;
        ssize_t w = pwrite(d->out, d->cbuf, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dr_error_set(DR_EIO, "write '%s': %s", d->s->e->path,
                                w < 0 ? strerror(errno) : "short write");
        off += (uint64_t)w;
        len -= (uint64_t)w;
    }
    return 0;
}

/* The patch's output: the source's bytes of the runs, in order, over the basis' copied there. */
static int result_write(dr_sink *sk, const void *data, size_t len)
{
    vol_delta *d = (vol_delta *)((char *)sk - offsetof(vol_delta, base));
    const uint8_t *p = data;
    while (len) {
        if (d->k >= d->nruns)
            return dr_error_set(DR_EPROTO, "delta for '%s' makes more bytes than its runs",
                                d->s->e->path);
        uint64_t start = (uint64_t)d->runs[d->k].first * d->clen, end = run_src_end(d, d->k);
        int rc;
        if (d->pos <= start) { /* the run's first bytes */
            if ((rc = clear_range(d, start, end - start)) < 0)
                return rc;
            d->pos = start;
        }
        size_t take = end - d->pos < len ? (size_t)(end - d->pos) : len;
        dr_sha256_update(d->h, p, take);
        if ((rc = vol_write_sparse(d->out, p, take, d->pos)) < 0)
            return rc;
        d->pos += take;
        p += take;
        len -= take;
        if (d->pos == end)
            d->k++;
    }
    return 0;
}

static const dr_sink_ops result_ops = {result_write, file_sink_finish, file_sink_free};

int vol_delta_start(vol_rx *s, int basis, uint64_t bsize, dr_buf *sums, int tfd, vol_delta **out)
{
    dr_buf *mine = sums;
    dr_delta_job *job = NULL;
    dr_gmac *g = NULL;
    frame_sink fs = {.base = {&frame_sink_ops}, .t = s->t, .type = M_SIG};
    uint32_t i = 0;
    int rc = 0;
    vol_delta *d = *out = calloc(1, sizeof *d);
    if (!d)
        return dr_error_set(DR_ENOMEM, "out of memory");
    d->s = s;
    d->basis = basis;
    d->bsize = bsize;
    d->base.ops = &result_ops;
    d->clen = vol_sum_len(s->e->size);
    d->count = vol_sum_count(s->e->size, d->clen);
    size_t cap = (d->count + 1) / 2 + 1;
    d->runs = malloc(cap * sizeof *d->runs);
    d->cbuf = malloc(VOL_CHUNK);
    if (!d->runs || !d->cbuf)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if (!mine->len && (rc = dr_gmac_new(s->key, &g)) == 0)
        rc = vol_sums_compute(basis, bsize, d->clen, d->count, g, d->cbuf, tfd, mine);
    size_t have = mine->len / VOL_SUM_BYTES;
    for (;;) {
        uint8_t type;
        size_t n;
        if (rc < 0 || (rc = recv_msg(s, &type, &n)) < 0)
            goto out;
        if (type == M_SUMS_END)
            break;
        if (type != M_SUMS || n % VOL_SUM_BYTES || n / VOL_SUM_BYTES > d->count - i) {
            rc = dr_error_set(DR_EPROTO, "bad chunk sums for '%s'", s->e->path);
            goto out;
        }
        for (size_t j = 0; j < n / VOL_SUM_BYTES; j++, i++) {
            uint64_t off = (uint64_t)i * d->clen;
            uint64_t slen = s->e->size - off < d->clen ? s->e->size - off : d->clen;
            int same = i < have && bsize - off >= slen &&
                       (bsize - off == slen || slen == d->clen) &&
                       memcmp(s->buf + VOL_SUM_BYTES * j, (uint8_t *)mine->data + VOL_SUM_BYTES * i,
                              VOL_SUM_BYTES) == 0;
            if (same)
                continue;
            if (d->nruns && d->runs[d->nruns - 1].first + d->runs[d->nruns - 1].count == i)
                d->runs[d->nruns - 1].count++;
            else
                d->runs[d->nruns++] = (vol_run){i, 1};
        }
    }
    if (i != d->count) {
        rc = dr_error_set(DR_EPROTO, "%u chunk sums for '%s', not %u", i, s->e->path, d->count);
        goto out;
    }
    d->vstart = malloc((d->nruns + 1) * sizeof *d->vstart);
    d->vlen = malloc((d->nruns + 1) * sizeof *d->vlen);
    if (!d->vstart || !d->vlen) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t total = 0;
    for (size_t k = 0; k < d->nruns; k++) {
        uint64_t off;
        run_basis(d, k, &off, &d->vlen[k]);
        d->vstart[k] = total;
        total += d->vlen[k];
    }
    for (size_t k = 0; rc == 0 && k < d->nruns; k += VOL_RUNS_FRAME) {
        dr_buf b = {0};
        for (size_t j = k; j < d->nruns && j < k + VOL_RUNS_FRAME; j++) {
            vol_put_u32(&b, d->runs[j].first);
            vol_put_u32(&b, d->runs[j].count);
        }
        rc = b.data ? dr_tls_send(s->t, M_RUNS, b.data, b.len)
                    : dr_error_set(DR_ENOMEM, "out of memory");
        dr_buf_free(&b);
    }
    if (rc == 0)
        rc = dr_delta_sig_job_new(total, &job);
    for (uint64_t pos = 0; rc == 0 && pos < total;) {
        size_t n = total - pos < VOL_CHUNK ? (size_t)(total - pos) : VOL_CHUNK;
        if ((rc = basis_read(d, pos, d->cbuf, &n)) == 0 && !n)
            rc = dr_error_set(DR_EIO, "read '%s': changed during the sync", s->e->path);
        if (rc == 0)
            rc = dr_delta_job_feed(job, d->cbuf, n, &fs.base);
        pos += n;
    }
    if (rc == 0)
        rc = dr_delta_job_finish(job, &fs.base);
    if (rc == 0)
        rc = dr_tls_send(s->t, M_SIG_END, NULL, 0);
out:
    dr_gmac_free(g);
    dr_delta_job_free(job);
    return rc;
}

int vol_recv_delta(vol_rx *s, vol_delta *d, int fd)
{
    /* fd holds the basis' bytes of every equal chunk (vol_delta_start): only the runs are
     * written, then the file cut to the source's size */
    dr_delta_job *job = NULL;
    const uint8_t *want = NULL;
    uint64_t max_out = 0;
    int rc = 0;
    d->out = fd;
    d->k = 0;
    d->pos = 0;
    dr_sha256_free(d->h);
    d->h = NULL;
    for (size_t k = 0; k < d->nruns; k++)
        max_out += run_src_end(d, k) - (uint64_t)d->runs[k].first * d->clen;
    if ((rc = dr_sha256_new(&d->h)) < 0 ||
        (rc = dr_delta_patch_job_new_read(basis_read, d, max_out, &job)) < 0)
        goto out;
    for (int end = 0;;) {
        uint32_t raw;
        const uint8_t *body;
        if ((rc = next_frame(s, M_DELTA, NULL, &body, &raw, &want, &end)) < 0 || end)
            break;
        if ((rc = dr_delta_job_feed(job, body, raw, &d->base)) < 0)
            goto out;
    }
    if (rc == 0)
        rc = dr_delta_job_finish(job, &d->base);
    if (rc == 0 && d->k != d->nruns)
        rc = dr_error_set(DR_EPROTO, "delta for '%s' makes fewer bytes than its runs", s->e->path);
    if (rc == 0 && ftruncate(fd, (off_t)s->e->size) != 0)
        rc = dr_error_set(DR_EIO, "truncate '%s': %s", s->e->path, strerror(errno));
    if (rc == 0)
        rc = check_sha(s, d->h, want);
out:
    dr_delta_job_free(job);
    return rc;
}
