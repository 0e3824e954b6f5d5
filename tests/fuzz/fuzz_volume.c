/*
 * Fuzz target: what a volume replication peer sends (replicate/volume/wire.c, drd/lib/delta,
 * drd/lib/zstd). The first byte picks the parser:
 *   0  an ENTRY: when accepted, its path (and a hard link's target) must be relative, without
 *      "." / ".." / empty components, and within the length limits
 *   1  a DATA frame header (offset, flags, raw length): raw length within VOL_CHUNK
 *   2  a signature from the peer, fed in short pieces (header checks, size cap), then a delta
 *      against it
 *   3  a delta applied to a fixed basis, output capped: never more bytes than the cap
 *   4  a zstd frame decompressed into a bounded buffer
 *   5  a RUNS frame (the chunk count in its first 2 bytes): accepted runs are non-empty, in
 *      order, apart, within the chunk count and the cap
 */
#include "drd/lib/delta/delta.h"
#include "drd/lib/zstd/zstd.h"
#include "fuzz.h"
#include "replicate/volume/vol_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void check_path(const char *p)
{
    size_t n = strlen(p);
    if (n > VOL_PATH_MAX || (n && (p[0] == '/' || p[n - 1] == '/')) || strstr(p, "//"))
        abort();
    for (const char *c = p; *c;) {
        size_t k = strcspn(c, "/");
        if ((k == 1 && c[0] == '.') || (k == 2 && c[0] == '.' && c[1] == '.') || k > VOL_NAME_MAX)
            abort();
        c += k + (c[k] == '/');
    }
}

/* A sink that counts and drops. */
typedef struct count_sink {
    dr_sink base;
    uint64_t n;
} count_sink;
static int cs_write(dr_sink *s, const void *d, size_t n)
{
    (void)d;
    ((count_sink *)s)->n += n;
    return 0;
}
static int cs_finish(dr_sink *s)
{
    (void)s;
    return 0;
}
static void cs_free(dr_sink *s)
{
    (void)s;
}
static const dr_sink_ops cs_ops = {cs_write, cs_finish, cs_free};

static void feed(dr_delta_job *j, const uint8_t *d, size_t n, dr_sink *out, uint32_t seed)
{
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < n;) {
        size_t k = 1 + (seed = seed * 1103515245 + 12345) % 64;
        if (k > n - off)
            k = n - off;
        rc = dr_delta_job_feed(j, d + off, k, out);
        off += k;
    }
    if (rc == 0)
        dr_delta_job_finish(j, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int basis = -1;
    static uint8_t out[VOL_CHUNK];
    fuzz_quiet();
    if (size < 1)
        return 0;
    uint8_t which = data[0] % 6;
    data++;
    size--;
    if (which == 0) {
        static vol_entry e;
        if (vol_entry_decode(data, size, &e) == 0) {
            check_path(e.path);
            if (e.kind == K_HARDLINK)
                check_path(e.target);
            if (!e.path[0] && e.kind != K_DIR)
                abort();
        }
    } else if (which == 1) {
        uint64_t off;
        uint8_t flags;
        uint32_t raw;
        const uint8_t *body;
        size_t blen;
        if (vol_data_decode(data, size, &off, &flags, &raw, &body, &blen) == 0 &&
            (raw > VOL_CHUNK || body + blen != data + size))
            abort();
    } else if (which == 2) {
        dr_delta_sig *sig = NULL;
        dr_delta_job *j = NULL;
        count_sink cs = {.base = {&cs_ops}};
        if (dr_delta_load_job_new(&sig, &j) != 0)
            abort();
        int rc = 0;
        for (size_t off = 0; rc == 0 && off < size; off += 7)
            rc = dr_delta_job_feed(j, data + off, size - off < 7 ? size - off : 7, NULL);
        if (rc == 0)
            rc = dr_delta_job_finish(j, NULL);
        dr_delta_job_free(j);
        if (rc == 0) {
            static const uint8_t text[] = "a new file against a fuzzed signature, twice: "
                                          "a new file against a fuzzed signature";
            if (dr_delta_delta_job_new(sig, &j) == 0)
                feed(j, text, sizeof text, &cs.base, 1);
            dr_delta_job_free(j);
        }
        dr_delta_sig_free(sig);
    } else if (which == 3) {
        if (basis < 0) {
            basis = memfd_create("basis", 0);
            for (int i = 0; i < 4096; i++)
                out[i] = (uint8_t)(i * 7);
            if (basis < 0 || write(basis, out, 4096) != 4096)
                abort();
        }
        dr_delta_job *j = NULL;
        count_sink cs = {.base = {&cs_ops}};
        if (dr_delta_patch_job_new(basis, 100000, &j) != 0)
            abort();
        feed(j, data, size, &cs.base, (uint32_t)size);
        if (cs.n > 100000)
            abort();
        dr_delta_job_free(j);
    } else if (which == 5) {
        static vol_run runs[64];
        size_t n = 0;
        if (size < 2)
            return 0;
        uint32_t chunks = (uint32_t)data[0] << 8 | data[1];
        if (vol_runs_decode(data + 2, size - 2, chunks, runs, &n, 64) == 0 && !n)
            abort();
        if (n > 64)
            abort();
        for (size_t i = 0; i < n; i++)
            if (!runs[i].count || (uint64_t)runs[i].first + runs[i].count > chunks ||
                (i && runs[i].first <= runs[i - 1].first + runs[i - 1].count))
                abort();
    } else {
        static dr_zstd *z;
        size_t got = 0;
        if (!z && dr_zstd_new(1, &z) != 0)
            abort();
        if (dr_zstd_decompress(z, data, size, out, sizeof out, &got) == 0 && got > sizeof out)
            abort();
    }
    dr_error_clear();
    return 0;
}
