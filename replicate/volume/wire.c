/*
 * Volume replication: encoding and decoding of the wire messages (see vol_int.h), and the check
 * of every path that comes from a peer. Everything here is pure and fuzzed (fuzz_volume).
 * Must never accept a path that could leave the root: absolute, "..", ".", empty components.
 */
#include "replicate/volume/vol_int.h"

#include <string.h>

int vol_get_u8(vol_rd *r, uint8_t *v)
{
    if (r->n < 1)
        return dr_error_set(DR_EPROTO, "truncated %s", r->what);
    *v = r->p[0];
    r->p++;
    r->n--;
    return 0;
}

int vol_get_u32(vol_rd *r, uint32_t *v)
{
    if (r->n < 4)
        return dr_error_set(DR_EPROTO, "truncated %s", r->what);
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->n -= 4;
    return 0;
}

int vol_get_u64(vol_rd *r, uint64_t *v)
{
    uint32_t hi = 0, lo = 0;
    int rc = vol_get_u32(r, &hi);
    if (rc == 0)
        rc = vol_get_u32(r, &lo);
    if (rc == 0)
        *v = (uint64_t)hi << 32 | lo;
    return rc;
}

int vol_get_str(vol_rd *r, char *out, size_t max)
{
    if (r->n < 2)
        return dr_error_set(DR_EPROTO, "truncated %s", r->what);
    size_t len = (size_t)r->p[0] << 8 | r->p[1];
    if (len > max || len > r->n - 2)
        return dr_error_set(DR_EPROTO, "%s: string of %zu bytes too long or truncated", r->what,
                            len);
    if (memchr(r->p + 2, 0, len))
        return dr_error_set(DR_EPROTO, "%s: NUL byte in a string", r->what);
    memcpy(out, r->p + 2, len);
    out[len] = 0;
    r->p += 2 + len;
    r->n -= 2 + len;
    return 0;
}

int vol_get_end(vol_rd *r)
{
    if (r->n)
        return dr_error_set(DR_EPROTO, "%s: %zu bytes too many", r->what, r->n);
    return 0;
}

void vol_put_u8(dr_buf *b, uint8_t v)
{
    dr_buf_append(b, &v, 1);
}

void vol_put_u32(dr_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    dr_buf_append(b, x, 4);
}

void vol_put_u64(dr_buf *b, uint64_t v)
{
    vol_put_u32(b, (uint32_t)(v >> 32));
    vol_put_u32(b, (uint32_t)v);
}

void vol_put_str(dr_buf *b, const char *s)
{
    size_t n = strlen(s);
    vol_put_u8(b, (uint8_t)(n >> 8));
    vol_put_u8(b, (uint8_t)n);
    dr_buf_append(b, s, n);
}

int vol_entry_encode(const vol_entry *e, dr_buf *b)
{
    b->len = 0;
    vol_put_u8(b, e->kind);
    vol_put_u32(b, e->mode);
    vol_put_u32(b, e->uid);
    vol_put_u32(b, e->gid);
    vol_put_u64(b, (uint64_t)e->mtime_s);
    vol_put_u32(b, e->mtime_ns);
    vol_put_u64(b, e->size);
    vol_put_str(b, e->path);
    vol_put_str(b, e->target);
    vol_put_u8(b, (uint8_t)((e->has_sha ? 1 : 0) | (e->sparse ? 2 : 0)));
    if (e->has_sha)
        dr_buf_append(b, e->sha, 32);
    return b->data ? 0 : dr_error_set(DR_ENOMEM, "out of memory");
}

int vol_path_check(const char *path, size_t len)
{
    char shown[96];
    if (len > VOL_PATH_MAX)
        return dr_error_set(DR_EPROTO, "path of %zu bytes is too long", len);
    if (memchr(path, 0, len))
        return dr_error_set(DR_EPROTO, "path with a NUL byte refused");
    if (len == 0)
        return 0; /* the root */
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t c = j - i;
        if (c == 0 || (c == 1 && path[i] == '.') ||
            (c == 2 && path[i] == '.' && path[i + 1] == '.') || c > VOL_NAME_MAX)
            return dr_error_set(DR_EPROTO,
                                "path '%s' refused: absolute, empty, '.' or '..' component, or "
                                "a name longer than 255 bytes",
                                dr_escape(path, len, shown, sizeof shown));
        i = j + 1;
    }
    return 0;
}

const char *vol_path_base(const char *path, size_t *parent_len)
{
    const char *slash = strrchr(path, '/');
    *parent_len = slash ? (size_t)(slash - path) : 0;
    return slash ? slash + 1 : path;
}

int vol_entry_decode(const void *p, size_t n, vol_entry *e)
{
    vol_rd r = {.p = p, .n = n, .what = "entry"};
    uint64_t mt;
    uint8_t has;
    int rc = vol_get_u8(&r, &e->kind);
    if (rc == 0)
        rc = vol_get_u32(&r, &e->mode);
    if (rc == 0)
        rc = vol_get_u32(&r, &e->uid);
    if (rc == 0)
        rc = vol_get_u32(&r, &e->gid);
    if (rc == 0)
        rc = vol_get_u64(&r, &mt);
    if (rc == 0)
        rc = vol_get_u32(&r, &e->mtime_ns);
    if (rc == 0)
        rc = vol_get_u64(&r, &e->size);
    if (rc == 0)
        rc = vol_get_str(&r, e->path, VOL_PATH_MAX);
    if (rc == 0)
        rc = vol_get_str(&r, e->target, VOL_PATH_MAX);
    if (rc == 0)
        rc = vol_get_u8(&r, &has);
    if (rc < 0)
        return rc;
    e->has_sha = has & 1;
    e->sparse = (has & 2) != 0;
    if (has > 3)
        return dr_error_set(DR_EPROTO, "entry: bad flags %u", has);
    if (e->has_sha) {
        if (r.n < 32)
            return dr_error_set(DR_EPROTO, "truncated entry checksum");
        memcpy(e->sha, r.p, 32);
        r.p += 32;
        r.n -= 32;
    }
    if ((rc = vol_get_end(&r)) < 0)
        return rc;
    e->mtime_s = (int64_t)mt;
    if (e->mtime_ns >= 1000000000u)
        return dr_error_set(DR_EPROTO, "entry: nanoseconds %u out of range", e->mtime_ns);
    if ((e->mode & ~07777u) != 0)
        return dr_error_set(DR_EPROTO, "entry: mode %o out of range", e->mode);
    if (e->kind != K_DIR && e->kind != K_FILE && e->kind != K_SYMLINK && e->kind != K_HARDLINK)
        return dr_error_set(DR_EPROTO, "entry: unknown kind %u", e->kind);
    if ((rc = vol_path_check(e->path, strlen(e->path))) < 0)
        return rc;
    if (!e->path[0] && e->kind != K_DIR)
        return dr_error_set(DR_EPROTO, "entry: the root must be a directory");
    if (e->kind == K_SYMLINK && !e->target[0])
        return dr_error_set(DR_EPROTO, "entry: symlink without a target");
    if (e->kind == K_HARDLINK) {
        if (!e->target[0])
            return dr_error_set(DR_EPROTO, "entry: hard link without a target");
        if ((rc = vol_path_check(e->target, strlen(e->target))) < 0)
            return rc;
    }
    if (e->sparse && e->kind != K_FILE)
        return dr_error_set(DR_EPROTO, "entry: sparse flag on a %c entry", e->kind);
    if (e->kind != K_SYMLINK && e->kind != K_HARDLINK && e->target[0])
        return dr_error_set(DR_EPROTO, "entry: target on a %c entry", e->kind);
    return 0;
}

int vol_data_decode(const void *p, size_t n, uint64_t *off, uint8_t *flags, uint32_t *raw,
                    const uint8_t **body, size_t *blen)
{
    vol_rd r = {.p = p, .n = n, .what = "data frame"};
    int rc = off ? vol_get_u64(&r, off) : 0;
    if (rc == 0)
        rc = vol_get_u8(&r, flags);
    if (rc == 0)
        rc = vol_get_u32(&r, raw);
    if (rc < 0)
        return rc;
    if (*flags > 1)
        return dr_error_set(DR_EPROTO, "data frame: unknown flags %u", *flags);
    if (*raw > VOL_CHUNK || (*flags == 0 && *raw != r.n))
        return dr_error_set(DR_EPROTO, "data frame: %u raw bytes for %zu sent", *raw, r.n);
    *body = r.p;
    *blen = r.n;
    return 0;
}

uint64_t vol_sum_len(uint64_t size)
{
    uint64_t c = VOL_SUM_MIN;
    if (size / c >= VOL_SUMS_MAX) {
        c = size / VOL_SUMS_MAX + 1;
        c = (c + VOL_SUM_MIN - 1) / VOL_SUM_MIN * VOL_SUM_MIN;
    }
    return c;
}

uint32_t vol_sum_count(uint64_t size, uint64_t clen)
{
    return (uint32_t)((size + clen - 1) / clen);
}

int vol_runs_decode(const void *p, size_t len, uint32_t nchunks, vol_run *runs, size_t *n,
                    size_t cap)
{
    vol_rd r = {.p = p, .n = len, .what = "runs"};
    if (!len || len % 8)
        return dr_error_set(DR_EPROTO, "runs frame of %zu bytes", len);
    while (r.n) {
        uint32_t first = 0, count = 0;
        vol_get_u32(&r, &first);
        vol_get_u32(&r, &count);
        uint64_t end = (uint64_t)first + count;
        uint64_t prev = *n ? (uint64_t)runs[*n - 1].first + runs[*n - 1].count : 0;
        if (!count || end > nchunks || first < prev || (*n && first == prev))
            return dr_error_set(DR_EPROTO,
                                "run of chunks %u+%u out of order or beyond the %u chunks", first,
                                count, nchunks);
        if (*n >= cap)
            return dr_error_set(DR_EPROTO, "more than %zu runs", cap);
        runs[*n].first = first;
        runs[*n].count = count;
        (*n)++;
    }
    return 0;
}
