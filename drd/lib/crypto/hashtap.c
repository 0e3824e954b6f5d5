/*
 * The hash tap: a pass-through sink that counts and SHA-256-hashes the bytes on their way to the
 * next sink (or swallows them when there is none). Must never change, drop or reorder a byte.
 */
#include "drd/lib/crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

typedef struct hash_sink {
    dr_sink base;
    dr_sink *next; /* borrowed; NULL for a terminal tap */
    dr_sha256 *h;
    uint64_t bytes;
    uint8_t digest[32];
    int finished;
} hash_sink;

static int tap_write(dr_sink *base, const void *data, size_t len)
{
    hash_sink *s = (hash_sink *)base;
    int rc = 0;
    if (s->finished)
        return dr_error_set(DR_EGENERIC, "hash tap: write after finish");
    if ((rc = dr_sha256_update(s->h, data, len)) < 0)
        return rc;
    s->bytes += len;
    if (s->next)
        rc = dr_sink_write(s->next, data, len);
    return rc;
}

static int tap_finish(dr_sink *base)
{
    hash_sink *s = (hash_sink *)base;
    int rc = 0;
    if (!s->finished) {
        if ((rc = dr_sha256_final(s->h, s->digest)) < 0)
            return rc;
        s->finished = 1;
    }
    if (s->next)
        rc = dr_sink_finish(s->next);
    return rc;
}

static void tap_free(dr_sink *base)
{
    hash_sink *s = (hash_sink *)base;
    dr_sha256_free(s->h);
    free(s);
}

static const dr_sink_ops tap_ops = {tap_write, tap_finish, tap_free};

int dr_hash_sink_new(dr_sink *next, dr_sink **out)
{
    int rc = 0;
    hash_sink *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &tap_ops;
    s->next = next;
    if ((rc = dr_sha256_new(&s->h)) < 0)
        goto out;
    *out = &s->base;
out:
    if (rc < 0)
        tap_free(&s->base);
    return rc;
}

void dr_hash_sink_result(dr_sink *tap, uint8_t digest[32], uint64_t *bytes)
{
    hash_sink *s = (hash_sink *)tap;
    if (digest)
        memcpy(digest, s->digest, 32);
    if (bytes)
        *bytes = s->bytes;
}
