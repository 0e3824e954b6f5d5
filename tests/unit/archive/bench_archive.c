/*
 * Throughput of the container on this machine: writes N MiB (default 512) of etcd-like records
 * (JSON-ish keys and objects with random identifiers and payloads) as one entry, uncompressed and
 * through zstd levels 1 and 3, then reads it back. Prints MiB/s, the compression ratio and the
 * extra resident memory of each direction; asserts nothing (figures depend on the machine).
 * Must never be part of the ctest run: it takes tens of seconds.
 */
#include "drd/lib/archive/archive.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { POOL = 16u << 20, PIECE = 1u << 20 };

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void rnd_chars(dr_buf *b, const char *set, size_t n)
{
    size_t k = strlen(set);
    for (size_t i = 0; i < n; i++) {
        char c = set[rnd() % k];
        dr_buf_append(b, &c, 1);
    }
}

/* A pool of records resembling an etcd keyspace of Kubernetes objects. */
static char *make_pool(void)
{
    static const char *kinds[] = {"pods",   "configmaps",  "secrets", "services",
                                  "events", "deployments", "leases"};
    static const char *ns[] = {"default", "kube-system", "monitoring", "payments", "ingress"};
    static const char *hex = "0123456789abcdef";
    static const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    dr_buf b = {0};
    int64_t rev = 1000;
    while (b.len < POOL) {
        const char *k = kinds[rnd() % 7], *n = ns[rnd() % 5];
        rev++;
        dr_buf_printf(&b, "{\"key\":\"/registry/%s/%s/app-", k, n);
        rnd_chars(&b, hex, 10);
        dr_buf_printf(&b,
                      "\",\"create_revision\":%lld,\"mod_revision\":%lld,\"version\":%d,"
                      "\"value\":{\"apiVersion\":\"v1\",\"kind\":\"%s\",\"metadata\":{"
                      "\"namespace\":\"%s\",\"uid\":\"",
                      (long long)(rev - (int64_t)(rnd() % 900)), (long long)rev,
                      (int)(rnd() % 20) + 1, k, n);
        rnd_chars(&b, hex, 32);
        dr_buf_printf(&b,
                      "\",\"resourceVersion\":\"%lld\",\"creationTimestamp\":"
                      "\"2025-0%d-1%dT0%d:1%d:2%dZ\",\"labels\":{\"app\":\"app\","
                      "\"app.kubernetes.io/managed-by\":\"Helm\"}},\"spec\":{\"containers\":"
                      "[{\"name\":\"main\",\"image\":\"registry.k8s.io/app:v1.%d.%d\","
                      "\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"256Mi\"}}}]},"
                      "\"data\":\"",
                      (long long)rev, (int)(rnd() % 9) + 1, (int)(rnd() % 9), (int)(rnd() % 9),
                      (int)(rnd() % 6), (int)(rnd() % 6), (int)(rnd() % 30), (int)(rnd() % 9));
        rnd_chars(&b, b64, 16 + (size_t)(rnd() % 400));
        dr_buf_printf(&b, "\"}}\n");
    }
    return b.data;
}

/* /proc/self/status field in KiB */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl))
            v = atol(line + fl + 1);
    fclose(f);
    return v;
}

/* resets the peak-RSS mark (Linux >= 4.0) */
static void reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

typedef struct null_sink {
    dr_sink base;
    uint64_t bytes;
} null_sink;

static int null_write(dr_sink *s, const void *d, size_t n)
{
    (void)d;
    ((null_sink *)s)->bytes += n;
    return 0;
}
static int null_finish(dr_sink *s)
{
    (void)s;
    return 0;
}
static void null_free(dr_sink *s)
{
    (void)s;
}
static const dr_sink_ops null_ops = {null_write, null_finish, null_free};

static int write_archive(dr_sink *out, dr_compress c, int level, const char *pool, uint64_t total)
{
    dr_archive_writer *w = NULL;
    int rc = 0;
    uint64_t off = 0;
    if ((rc = dr_archive_writer_new(out, c, level, &w)) < 0 ||
        (rc = dr_archive_entry_begin(w, "etcd.db", total, 0)) < 0)
        goto out;
    while (off < total) {
        size_t k = total - off < PIECE ? (size_t)(total - off) : PIECE;
        if ((rc = dr_archive_entry_write(w, pool + off % (POOL - PIECE), k)) < 0)
            goto out;
        off += k;
    }
    if ((rc = dr_archive_entry_end(w)) < 0 || (rc = dr_archive_writer_finish(w)) < 0)
        goto out;
out:
    dr_archive_writer_free(w);
    return rc;
}

int main(int argc, char **argv)
{
    /* big blocks from mmap and back to the kernel on free, so that the peak-RSS figures are
     * not hidden by memory an earlier mode freed into the heap */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024);
    uint64_t mib = argc > 1 ? (uint64_t)atoll(argv[1]) : 512, total = mib << 20;
    char *pool = make_pool(), *piece = malloc(PIECE);
    memset(piece, 0, PIECE); /* resident before the read figures are taken */
    static const struct {
        const char *name;
        dr_compress c;
        int level;
    } modes[] = {{"none", DR_COMPRESS_NONE, 0},
                 {"zstd-1", DR_COMPRESS_ZSTD, 1},
                 {"zstd-3", DR_COMPRESS_ZSTD, 3}};
    printf("archive throughput, %llu MiB of etcd-like records in one entry, single thread\n",
           (unsigned long long)mib);
    printf("%-8s %12s %12s %8s %12s %10s %10s\n", "mode", "write MiB/s", "read MiB/s", "ratio",
           "stored MiB", "write RSS", "read RSS");
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        null_sink ns = {{&null_ops}, 0};
        dr_sink *buf = NULL;
        dr_source *in = NULL;
        dr_archive_reader *r = NULL;
        char *data = NULL, name[64];
        size_t len = 0, k = 0;
        uint64_t size = 0, got = 0;

        /* write into a discarding sink: the archive's own cost and memory */
        reset_hwm();
        long rss0 = status_kib("VmRSS");
        int64_t t0 = dr_mono_ms();
        if (write_archive(&ns.base, modes[m].c, modes[m].level, pool, total) < 0)
            goto fail;
        int64_t t1 = dr_mono_ms();
        long wrss = status_kib("VmHWM") - rss0;

        /* again into memory, to have something to read back */
        if (dr_buf_sink_new(SIZE_MAX, &buf) < 0 ||
            write_archive(buf, modes[m].c, modes[m].level, pool, total) < 0)
            goto fail;
        dr_buf_sink_take(buf, &data, &len);
        dr_sink_free(buf);

        reset_hwm();
        rss0 = status_kib("VmRSS");
        int64_t t2 = dr_mono_ms();
        if (dr_mem_source_new(data, len, &in) < 0 || dr_archive_reader_new(in, &r) < 0 ||
            dr_archive_next(r, name, sizeof name, &size) < 0)
            goto fail;
        do {
            if (dr_archive_read(r, piece, PIECE, &k) < 0)
                goto fail;
            got += k;
        } while (k);
        int64_t t3 = dr_mono_ms();
        long rrss = status_kib("VmHWM") - rss0;
        if (got != total || size != total) {
            fprintf(stderr, "read back %llu of %llu bytes\n", (unsigned long long)got,
                    (unsigned long long)total);
            return 1;
        }
        printf("%-8s %12.1f %12.1f %8.2f %12.1f %7ld KiB %6ld KiB\n", modes[m].name,
               (double)mib * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1),
               (double)mib * 1000.0 / (double)(t3 - t2 ? t3 - t2 : 1),
               (double)total / (double)ns.bytes, (double)ns.bytes / (1 << 20), wrss, rrss);
        fflush(stdout);
        dr_archive_reader_free(r);
        dr_source_free(in);
        free(data);
        continue;
    fail:
        fprintf(stderr, "%s: %s\n", modes[m].name, dr_error_msg());
        return 1;
    }
    printf("target: etcdctl snapshot save to local disk, ~110 MB/s (105 MiB/s)\n");
    free(pool);
    free(piece);
    return 0;
}
