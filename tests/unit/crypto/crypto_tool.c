/*
 * crypto-tool: a small driver of drd/lib/crypto for the format reference test (reference.py
 * checks that a third party following docs/format.md "Encryption" reads and writes what drd
 * does) and for a throughput measurement. Not part of the drd binary.
 *   crypto-tool keygen RING NAME | rotate RING NAME
 *   crypto-tool encrypt RING IN OUT | decrypt RING IN OUT
 *   crypto-tool bench MIB
 * Exits with the drd exit status of the error (its message on stderr). Must never print keys.
 */
#include "drd/core/core.h"
#include "drd/lib/crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run_stream(const char *ring, const char *in, const char *out, int enc)
{
    dr_keyring *k = NULL;
    dr_source *src = NULL, *dec = NULL;
    dr_sink *dst = NULL, *encs = NULL;
    int rc = 0;
    if ((rc = dr_keyring_load(ring, &k)) < 0 || (rc = dr_fs_source_new(in, 0, &src)) < 0 ||
        (rc = dr_fs_sink_new(out, 0600, 0, &dst)) < 0)
        goto out;
    if (enc) {
        if ((rc = dr_encrypt_sink_new(dst, k, &encs)) < 0 ||
            (rc = dr_stream_copy(src, encs, NULL)) < 0 || (rc = dr_sink_finish(encs)) < 0)
            goto out;
    } else {
        if ((rc = dr_decrypt_source_new(src, k, &dec)) < 0 ||
            (rc = dr_stream_copy(dec, dst, NULL)) < 0 || (rc = dr_sink_finish(dst)) < 0)
            goto out;
    }
out:
    dr_sink_free(encs);
    dr_sink_free(dst);
    dr_source_free(dec);
    dr_source_free(src);
    dr_keyring_free(k);
    return rc;
}

/* A sink into a preallocated buffer: measures the crypto, not realloc. */
typedef struct flat_sink {
    dr_sink base;
    char *p;
    size_t len, cap;
} flat_sink;

static int flat_write(dr_sink *base, const void *data, size_t len)
{
    flat_sink *s = (flat_sink *)base;
    if (s->len + len > s->cap)
        return dr_error_set(DR_EIO, "bench buffer full");
    memcpy(s->p + s->len, data, len);
    s->len += len;
    return 0;
}

static int flat_finish(dr_sink *base)
{
    (void)base;
    return 0;
}

static void flat_free(dr_sink *base)
{
    (void)base;
}

static const dr_sink_ops flat_ops = {flat_write, flat_finish, flat_free};

static int bench(size_t mib)
{
    int rc = 0;
    size_t n = mib << 20;
    char ring[] = "/tmp/drd-crypto-bench.XXXXXX", path[64];
    dr_keyring *k = NULL;
    dr_sink *enc = NULL;
    dr_source *mem = NULL, *dec = NULL;
    char *pt = malloc(n), *back = malloc(1 << 20);
    flat_sink fs = {{&flat_ops}, malloc(n + n / 1000 + 4096), 0, n + n / 1000 + 4096};
    if (!pt || !back || !fs.p || !mkdtemp(ring)) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(path, sizeof path, "%s/ring", ring);
    if ((rc = dr_keyring_generate(path, "bench", NULL)) < 0 || (rc = dr_keyring_load(path, &k)) < 0)
        goto out;
    unlink(path);
    rmdir(ring);
    for (size_t i = 0; i < n; i += 4096)
        memset(pt + i, (int)(i >> 12), 4096);
    memset(fs.p, 0, fs.cap); /* fault the pages in before timing */
    static const size_t wsizes[] = {1 << 20, 4096};
    for (size_t w = 0; w < 2; w++) {
        fs.len = 0;
        int64_t t0 = dr_mono_ms();
        if ((rc = dr_encrypt_sink_new(&fs.base, k, &enc)) < 0)
            goto out;
        for (size_t off = 0; off < n; off += wsizes[w])
            if ((rc = dr_sink_write(enc, pt + off, wsizes[w])) < 0)
                goto out;
        if ((rc = dr_sink_finish(enc)) < 0)
            goto out;
        dr_sink_free(enc);
        enc = NULL;
        int64_t t1 = dr_mono_ms();
        printf("encrypt %zu MiB in %zu-byte writes: %lld ms, %.0f MiB/s\n", mib, wsizes[w],
               (long long)(t1 - t0), (double)mib * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1));
    }
    static const size_t rsizes[] = {1 << 20, 4096};
    for (size_t r = 0; r < 2; r++) {
        size_t got = 0, nr = 0;
        int64_t t0 = dr_mono_ms();
        if ((rc = dr_mem_source_new(fs.p, fs.len, &mem)) < 0 ||
            (rc = dr_decrypt_source_new(mem, k, &dec)) < 0)
            goto out;
        do {
            if ((rc = dr_source_read(dec, back, rsizes[r], &nr)) < 0)
                goto out;
            if (nr && memcmp(back, pt + got, nr) != 0) {
                rc = dr_error_set(DR_ECHECKSUM, "bench: decrypted bytes differ at %zu", got);
                goto out;
            }
            got += nr;
        } while (nr);
        int64_t t1 = dr_mono_ms();
        if (got != n) {
            rc = dr_error_set(DR_ECHECKSUM, "bench: decrypted %zu bytes of %zu", got, n);
            goto out;
        }
        printf("decrypt %zu MiB in %zu-byte reads (with compare): %lld ms, %.0f MiB/s\n", mib,
               rsizes[r], (long long)(t1 - t0),
               (double)mib * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1));
        dr_source_free(dec);
        dr_source_free(mem);
        dec = NULL;
        mem = NULL;
    }
out:
    dr_sink_free(enc);
    dr_source_free(dec);
    dr_source_free(mem);
    dr_keyring_free(k);
    free(pt);
    free(back);
    free(fs.p);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc == 4 && strcmp(argv[1], "keygen") == 0)
        rc = dr_keyring_generate(argv[2], argv[3], NULL);
    else if (argc == 4 && strcmp(argv[1], "rotate") == 0)
        rc = dr_keyring_rotate(argv[2], argv[3], NULL);
    else if (argc == 5 && strcmp(argv[1], "encrypt") == 0)
        rc = run_stream(argv[2], argv[3], argv[4], 1);
    else if (argc == 5 && strcmp(argv[1], "decrypt") == 0)
        rc = run_stream(argv[2], argv[3], argv[4], 0);
    else if (argc == 3 && strcmp(argv[1], "bench") == 0)
        rc = bench((size_t)strtoul(argv[2], NULL, 10));
    else
        rc = dr_error_set(DR_EUSAGE, "usage: crypto-tool keygen|rotate RING NAME | "
                                     "encrypt|decrypt RING IN OUT | bench MIB");
    if (rc < 0)
        fprintf(stderr, "crypto-tool: %s\n", dr_error_msg());
    return dr_error_exit_status(rc);
}
