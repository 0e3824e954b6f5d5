/*
 * Helpers of the fuzz targets (fuzz.h). Must never fail quietly: a harness problem aborts.
 */
#include "fuzz.h"
#include "drd/lib/crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void fuzz_quiet(void)
{
    dr_log_set_level(DR_LOG_ERROR);
}

typedef struct piece_source {
    dr_source base;
    const uint8_t *p;
    size_t left, max;
    uint32_t state;
} piece_source;

static int piece_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    piece_source *s = (piece_source *)base;
    size_t k = s->left < cap ? s->left : cap;
    if (s->max && k > 1) {
        s->state ^= s->state << 13; /* xorshift32 */
        s->state ^= s->state >> 17;
        s->state ^= s->state << 5;
        size_t want = 1 + s->state % s->max;
        if (want < k)
            k = want;
    }
    memcpy(buf, s->p, k);
    s->p += k;
    s->left -= k;
    *n = k;
    return 0;
}

static void piece_free(dr_source *base)
{
    free(base);
}

static const dr_source_ops piece_ops = {piece_read, piece_free};

dr_source *fuzz_source_new(const uint8_t *data, size_t len, uint32_t seed, size_t max)
{
    piece_source *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->base.ops = &piece_ops;
    s->p = data;
    s->left = len;
    s->max = max;
    s->state = seed ? seed : 0x9e3779b9u;
    return &s->base;
}

const char *fuzz_file(const uint8_t *data, size_t len)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("drd-fuzz", MFD_CLOEXEC);
        if (fd < 0 || fchmod(fd, 0600) != 0) {
            perror("fuzz_file");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    size_t done = 0;
    if (ftruncate(fd, 0) != 0) {
        perror("fuzz_file");
        abort();
    }
    while (done < len) {
        ssize_t w = pwrite(fd, data + done, len - done, (off_t)done);
        if (w <= 0) {
            perror("fuzz_file");
            abort();
        }
        done += (size_t)w;
    }
    return path;
}

char *fuzz_strndup(const uint8_t *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        abort();
    memcpy(s, data, len);
    s[len] = 0;
    return s;
}

const struct dr_keyring *fuzz_keyring(void)
{
    static const char text[] = "key fuzz-key "
                               "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                               "current fuzz-key\n";
    static dr_keyring *ring;
    if (!ring && dr_keyring_load(fuzz_file((const uint8_t *)text, strlen(text)), &ring) != 0) {
        fprintf(stderr, "fuzz_keyring: %s\n", dr_error_msg());
        abort();
    }
    return ring;
}
