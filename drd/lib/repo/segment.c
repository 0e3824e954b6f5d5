/*
 * Segment records: the encoding of watch events inside a segment's events entries (repo.h and
 * docs/format.md). Big-endian fixed-width integers, length-prefixed bytes: simple to read back
 * with any language. The decoder streams with a small buffer and must never trust a length
 * beyond its cap (DR_EPROTO instead of allocating what a corrupt record asks for), nor allocate
 * for a field ahead of the bytes that arrived (a claimed 256 MiB costs memory only once sent).
 */
#include "drd/lib/repo/repo.h"

#include <stdlib.h>
#include <string.h>

#define SEG_FIELD_MAX (256u * 1024 * 1024) /* no etcd key or value is near this */
#define SEG_STEP (64u * 1024)              /* read (and grown into) per step of a field */

static int put_u32(dr_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return dr_buf_append(b, x, 4);
}

static int put_u64(dr_buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    return dr_buf_append(b, x, 8);
}

static int put_bytes(dr_buf *b, const uint8_t *p, size_t n)
{
    int rc = put_u32(b, (uint32_t)n);
    return rc ? rc : dr_buf_append(b, p, n);
}

int dr_seg_encode_rev(dr_buf *b, int64_t rev, uint32_t count)
{
    int rc = dr_buf_append(b, "R", 1);
    rc = rc ? rc : put_u64(b, (uint64_t)rev);
    return rc ? rc : put_u32(b, count);
}

int dr_seg_encode_event(dr_buf *b, const dr_seg_event *ev)
{
    char t = (char)ev->type;
    int rc = dr_buf_append(b, &t, 1);
    if (rc)
        return rc;
    switch (ev->type) {
    case 'P':
        rc = put_bytes(b, ev->key, ev->key_len);
        rc = rc ? rc : put_bytes(b, ev->value, ev->value_len);
        rc = rc ? rc : put_u64(b, (uint64_t)ev->create_revision);
        rc = rc ? rc : put_u64(b, (uint64_t)ev->mod_revision);
        rc = rc ? rc : put_u64(b, (uint64_t)ev->version);
        return rc ? rc : put_u64(b, (uint64_t)ev->lease);
    case 'D':
        return put_bytes(b, ev->key, ev->key_len);
    case 'L':
        rc = put_u64(b, (uint64_t)ev->lease);
        return rc ? rc : put_u64(b, (uint64_t)ev->ttl);
    default:
        return dr_error_set(DR_EINVAL, "unknown segment record type %d", ev->type);
    }
}

struct dr_seg_reader {
    dr_source *in;
    uint32_t left; /* events left in the current revision */
    int64_t rev;
    uint8_t *key, *val;
    size_t key_cap, val_cap;
};

int dr_seg_reader_new(dr_source *in, dr_seg_reader **out)
{
    dr_seg_reader *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->in = in;
    *out = s;
    return 0;
}

void dr_seg_reader_free(dr_seg_reader *s)
{
    if (!s)
        return;
    free(s->key);
    free(s->val);
    free(s);
}

/* Exactly n bytes or DR_EPROTO (truncated); *eof_ok allows a clean end before the first byte. */
static int need(dr_seg_reader *s, void *p, size_t n, int eof_ok)
{
    size_t got = 0;
    int rc = dr_source_read_full(s->in, p, n, &got);
    if (rc < 0)
        return rc;
    if (got == 0 && eof_ok)
        return DR_ENOTFOUND;
    if (got != n)
        return dr_error_set(DR_EPROTO, "segment events truncated after revision %lld",
                            (long long)s->rev);
    return 0;
}

static int get_u32(dr_seg_reader *s, uint32_t *v)
{
    uint8_t x[4];
    *v = 0; /* gcc -O3 cannot see that need() fails only with a negative code */
    int rc = need(s, x, 4, 0);
    if (rc == 0)
        *v = (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | x[3];
    return rc;
}

static int get_u64(dr_seg_reader *s, int64_t *v)
{
    uint8_t x[8];
    *v = 0;
    int rc = need(s, x, 8, 0);
    if (rc == 0) {
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | x[i];
        *v = (int64_t)u;
    }
    return rc;
}

/* A length-prefixed field into *buf (NUL-terminated, *cap bytes allocated). The length is the
 * record's claim: the buffer grows only as the field's bytes arrive, in steps of at most
 * SEG_STEP, so it never holds more than twice what arrived plus a step, whatever the claim. */
static int get_bytes(dr_seg_reader *s, uint8_t **buf, size_t *cap, size_t *len)
{
    uint32_t n = 0;
    size_t got = 0;
    int rc = get_u32(s, &n);
    if (rc < 0)
        return rc;
    if (n > SEG_FIELD_MAX)
        return dr_error_set(DR_EPROTO, "segment record at revision %lld has a %u-byte field",
                            (long long)s->rev, n);
    do {
        size_t want = n - got < SEG_STEP ? n - got : SEG_STEP, k = 0;
        if (got + want + 1 > *cap) {
            size_t ncap = 2 * *cap;
            if (ncap < got + want + 1)
                ncap = got + want + 1;
            if (ncap > (size_t)n + 1)
                ncap = (size_t)n + 1;
            uint8_t *p = realloc(*buf, ncap);
            if (!p)
                return dr_error_set(DR_ENOMEM, "out of memory");
            *buf = p;
            *cap = ncap;
        }
        if ((rc = dr_source_read_full(s->in, *buf + got, want, &k)) < 0)
            return rc;
        if (k != want)
            return dr_error_set(DR_EPROTO, "segment events truncated after revision %lld",
                                (long long)s->rev);
        got += k;
    } while (got < n);
    (*buf)[n] = 0;
    *len = n;
    return 0;
}

int dr_seg_next_rev(dr_seg_reader *s, int64_t *rev, uint32_t *count)
{
    if (s->left)
        return dr_error_set(DR_EPROTO, "segment: revision %lld has %u unread events",
                            (long long)s->rev, s->left);
    char t;
    int rc = need(s, &t, 1, 1);
    if (rc == DR_ENOTFOUND)
        return DR_ENOTFOUND;
    if (rc < 0)
        return rc;
    if (t != 'R')
        return dr_error_set(DR_EPROTO, "segment: expected a revision record after %lld, got 0x%02x",
                            (long long)s->rev, (unsigned char)t);
    int64_t r = 0; /* set by the reads; initialized for gcc -O3's maybe-uninitialized */
    uint32_t c = 0;
    if ((rc = get_u64(s, &r)) < 0 || (rc = get_u32(s, &c)) < 0)
        return rc;
    if (r <= s->rev)
        return dr_error_set(DR_EPROTO, "segment: revision %lld follows %lld", (long long)r,
                            (long long)s->rev);
    s->rev = r;
    s->left = c;
    *rev = r;
    *count = c;
    return 0;
}

int dr_seg_next_event(dr_seg_reader *s, dr_seg_event *ev)
{
    if (!s->left)
        return dr_error_set(DR_EPROTO, "segment: no more events in revision %lld",
                            (long long)s->rev);
    memset(ev, 0, sizeof *ev);
    char t;
    int rc = need(s, &t, 1, 0);
    if (rc < 0)
        return rc;
    ev->type = t;
    switch (t) {
    case 'P':
        if ((rc = get_bytes(s, &s->key, &s->key_cap, &ev->key_len)) < 0 ||
            (rc = get_bytes(s, &s->val, &s->val_cap, &ev->value_len)) < 0 ||
            (rc = get_u64(s, &ev->create_revision)) < 0 ||
            (rc = get_u64(s, &ev->mod_revision)) < 0 || (rc = get_u64(s, &ev->version)) < 0 ||
            (rc = get_u64(s, &ev->lease)) < 0)
            return rc;
        ev->key = s->key;
        ev->value = s->val;
        if (ev->mod_revision != s->rev)
            return dr_error_set(DR_EPROTO, "segment: put at revision %lld has mod_revision %lld",
                                (long long)s->rev, (long long)ev->mod_revision);
        break;
    case 'D':
        if ((rc = get_bytes(s, &s->key, &s->key_cap, &ev->key_len)) < 0)
            return rc;
        ev->key = s->key;
        ev->mod_revision = s->rev;
        break;
    case 'L':
        if ((rc = get_u64(s, &ev->lease)) < 0 || (rc = get_u64(s, &ev->ttl)) < 0)
            return rc;
        break;
    default:
        return dr_error_set(DR_EPROTO, "segment: unknown record 0x%02x at revision %lld",
                            (unsigned char)t, (long long)s->rev);
    }
    s->left--;
    return 0;
}
