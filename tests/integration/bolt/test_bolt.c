/*
 * test_bolt: drives snapshot/bolt.c (the streaming revision scanner) on snapshot files made by a
 * real etcd; tests/integration/bolt_revision.sh compares what it prints with etcdctl.
 *
 *   test_bolt scan [--min-rev N] [--seed S] [--max-chunk B | --chunk B] FILE
 *       feeds FILE in pieces of random size (1..B, a quarter of them tiny; or all of size B) and
 *       prints one JSON line: the result fields, seconds, mb_per_s, max_rss_kb. On error prints
 *       "error NAME: message" to stderr and exits with the code's exit status.
 *   test_bolt poison [--seed S] FILE
 *       overwrites every free page of FILE (from its bbolt freelist) with crafted pages that claim
 *       newer revisions, other buckets, huge overflow counts; the result must not change.
 *   test_bolt fuzz [--seed S] [--iters N] FILE
 *       truncations, trailer cuts and extra bytes must fail with DR_EPROTO; random mutations (half
 *       of them on the pages the walk uses) and random garbage must end in 0 or DR_EPROTO with a
 *       message (run under ASan: no crash).
 *   test_bolt synth
 *       a database built here with shapes etcd does not make (root bucket over several pages,
 *       bucket "meta" in its own pages), a stale newer page, a broken meta 0.
 *
 * What it must never do: pass without comparing real results (every mode exits 1 on a mismatch).
 */
#include "drd/core/core.h"
#include "snapshot/bolt.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static size_t rnd_chunk(size_t max)
{
    if (rnd() % 4 == 0)
        return 1 + rnd() % (max < 64 ? max : 64);
    return 1 + rnd() % max;
}

static int failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Scans a buffer in random pieces (max_chunk; 0: one piece). */
static int scan_mem(const uint8_t *d, size_t n, int64_t min_rev, size_t max_chunk,
                    dr_bolt_result *res)
{
    dr_bolt_scan *s = NULL;
    int rc = dr_bolt_scan_new(min_rev, &s);
    size_t off = 0;
    while (rc == 0 && off < n) {
        size_t k = max_chunk ? rnd_chunk(max_chunk) : n;
        if (k > n - off)
            k = n - off;
        rc = dr_bolt_scan_feed(s, d + off, k);
        off += k;
    }
    if (rc == 0)
        rc = dr_bolt_scan_result(s, res);
    dr_bolt_scan_free(s);
    return rc;
}

static int load(const char *path, uint8_t **data, size_t *len)
{
    char *d;
    int rc = dr_fs_read_all(path, (size_t)1 << 31, &d, len);
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", dr_error_msg());
        return rc;
    }
    *data = (uint8_t *)d;
    return 0;
}

static int cmd_scan(const char *path, int64_t min_rev, size_t max_chunk, size_t fixed)
{
    enum { BUF = 4 << 20 };
    uint8_t *buf = malloc(BUF);
    dr_bolt_scan *s = NULL;
    dr_bolt_result r;
    struct rusage ru;
    int fd = -1, rc;
    uint64_t total = 0;
    int64_t t0;
    double secs;
    if (!buf)
        return DR_ENOMEM;
    if ((fd = open(path, O_RDONLY)) < 0) {
        fprintf(stderr, "error: cannot open '%s'\n", path);
        free(buf);
        return DR_EIO;
    }
    t0 = dr_mono_ms();
    rc = dr_bolt_scan_new(min_rev, &s);
    for (;;) {
        size_t want = fixed ? fixed : rnd_chunk(max_chunk);
        ssize_t n;
        if (rc < 0)
            break;
        if (want > BUF)
            want = BUF;
        n = read(fd, buf, want);
        if (n < 0) {
            rc = dr_error_set(DR_EIO, "cannot read '%s'", path);
            break;
        }
        if (n == 0)
            break;
        total += (uint64_t)n;
        rc = dr_bolt_scan_feed(s, buf, (size_t)n);
    }
    if (rc == 0)
        rc = dr_bolt_scan_result(s, &r);
    secs = (double)(dr_mono_ms() - t0) / 1000.0;
    close(fd);
    free(buf);
    dr_bolt_scan_free(s);
    if (rc < 0) {
        fprintf(stderr, "error %s: %s\n", dr_error_name(rc), dr_error_msg());
        return rc;
    }
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"revision\":%" PRId64 ",\"key_revision\":%" PRId64 ",\"compact_revision\":%" PRId64
           ",\"scheduled_compact_revision\":%" PRId64 ",\"consistent_index\":%" PRIu64
           ",\"txid\":%" PRIu64 ",\"page_size\":%u,\"db_size\":%" PRIu64
           ",\"has_trailer\":%d,\"stream_bytes\":%" PRIu64 ",\"branch_pages\":%" PRIu64
           ",\"leaf_records\":%" PRIu64 ",\"buffered_extents\":%" PRIu64
           ",\"oversized_extents\":%" PRIu64 ",\"key_leaf_oversized\":%d,\"peak_mem\":%zu"
           ",\"seconds\":%.3f,\"mb_per_s\":%.1f,\"max_rss_kb\":%ld}\n",
           r.revision, r.key_revision, r.compact_revision, r.scheduled_compact_revision,
           r.consistent_index, r.txid, r.page_size, r.db_size, r.has_trailer, total, r.branch_pages,
           r.leaf_records, r.buffered_extents, r.oversized_extents, r.key_leaf_oversized,
           r.peak_mem, secs, secs > 0 ? (double)total / 1e6 / secs : 0.0, ru.ru_maxrss);
    return 0;
}

/* ---- poison: free pages must not matter ---- */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p)
{
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}
static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)v);
    wr16(p + 2, (uint16_t)(v >> 16));
}
static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}
static void page_hdr(uint8_t *p, uint64_t id, uint16_t flags, uint16_t count, uint32_t overflow)
{
    wr64(p, id);
    wr16(p + 8, flags);
    wr16(p + 10, count);
    wr32(p + 12, overflow);
}
static void rev_bytes(uint8_t *k, uint64_t main_rev)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(main_rev >> (56 - 8 * i));
    k[8] = '_';
    memset(k + 9, 0, 8);
}

/* A leaf element i of a page at p, with its key and value written at *data (offset in page). */
static void leaf_elem(uint8_t *p, unsigned i, uint32_t flags, const void *k, uint32_t ks,
                      const void *v, uint32_t vs, size_t *data)
{
    uint8_t *e = p + 16 + 16 * i;
    wr32(e, flags);
    wr32(e + 4, (uint32_t)(*data - (16 + 16 * i)));
    wr32(e + 8, ks);
    wr32(e + 12, vs);
    memcpy(p + *data, k, ks);
    memcpy(p + *data + ks, v, vs);
    *data += ks + vs;
}

/* The poison for free slot id (kind 0..3), page size ps, hwm pages. */
static void poison(uint8_t *p, uint64_t id, int kind, uint32_t ps, uint64_t hwm)
{
    uint8_t key[17], val[256] = {0}, inl[128] = {0};
    size_t data;
    memset(p, 0, ps);
    rev_bytes(key, 1000000000000ull + id);
    switch (kind) {
    case 0: /* a newer-looking leaf of bucket "key" */
        page_hdr(p, id, 0x02, 1, 0);
        data = 32;
        leaf_elem(p, 0, 0, key, 17, val, 10, &data);
        break;
    case 1: /* a branch pointing at itself */
        page_hdr(p, id, 0x01, 1, 0);
        wr32(p + 16, 16);
        wr32(p + 20, 1);
        wr64(p + 24, id);
        break;
    case 2: /* a leaf claiming overflow pages up to the end of the database */
        page_hdr(p, id, 0x02, 1, (uint32_t)(hwm - id - 1 > UINT32_MAX ? 0 : hwm - id - 1));
        data = 32;
        leaf_elem(p, 0, 0, key, 17, val, 10, &data);
        break;
    default: { /* a root-bucket-looking leaf: inline "key" and "meta" with huge revisions */
        size_t idata = 16 + 16;
        page_hdr(inl, 0, 0x02, 1, 0);
        rev_bytes(key, 2000000000000ull);
        leaf_elem(inl, 0, 0, key, 17, "v", 1, &idata);
        memcpy(val + 16, inl, idata);
        page_hdr(p, id, 0x02, 2, 0);
        data = 48;
        leaf_elem(p, 0, 1, "key", 3, val, (uint32_t)(16 + idata), &data);
        idata = 32;
        page_hdr(inl, 0, 0x02, 1, 0);
        rev_bytes(key, 3000000000000ull);
        leaf_elem(inl, 0, 0, "finishedCompactRev", 18, key, 17, &idata);
        memset(val, 0, sizeof val);
        memcpy(val + 16, inl, idata);
        leaf_elem(p, 1, 1, "meta", 4, val, (uint32_t)(16 + idata), &data);
        break;
    }
    }
}

static int same(const dr_bolt_result *a, const dr_bolt_result *b)
{
    return a->revision == b->revision && a->key_revision == b->key_revision &&
           a->compact_revision == b->compact_revision &&
           a->scheduled_compact_revision == b->scheduled_compact_revision &&
           a->consistent_index == b->consistent_index && a->txid == b->txid;
}

/* Marks the pages reachable from page id (bbolt's own notion of "in use"; etcd 3.4 does not
 * persist a freelist, bbolt rebuilds it the same way on open). Random access: the whole file is
 * in memory, unlike in the scanner. */
static int mark(const uint8_t *d, size_t n, uint32_t ps, uint64_t hwm, uint8_t *live, uint64_t id,
                int depth)
{
    const uint8_t *p;
    uint64_t ov;
    unsigned flags, count;
    if (depth > 64 || id < 2 || id >= hwm || (id + 1) * ps > n)
        return -1;
    p = d + id * ps;
    ov = rd32(p + 12);
    flags = (unsigned)(p[8] | p[9] << 8);
    count = (unsigned)(p[10] | p[11] << 8);
    if (id + ov >= hwm)
        return -1;
    for (uint64_t k = 0; k <= ov; k++)
        live[id + k] = 1;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = p + 16 + 16 * i;
        if (flags == 0x01 && mark(d, n, ps, hwm, live, rd64(e + 8), depth + 1) < 0)
            return -1;
        if (flags == 0x02 && (rd32(e) & 1)) {
            uint64_t root = rd64(e + rd32(e + 4) + rd32(e + 8));
            if (root && mark(d, n, ps, hwm, live, root, depth + 1) < 0)
                return -1;
        }
    }
    return 0;
}

static int cmd_poison(const char *path)
{
    uint8_t *d = NULL, *live = NULL;
    size_t n;
    dr_bolt_result base, r;
    uint32_t ps;
    uint64_t hwm, npoison = 0, kinds[4] = {0}, newer = 0;
    int rc = load(path, &d, &n);
    if (rc < 0)
        return 1;
    rc = scan_mem(d, n, 0, 65536, &base);
    CHECK(rc == 0, "baseline scan: %s", dr_error_msg());
    if (rc < 0)
        goto out;
    ps = base.page_size;
    hwm = base.db_size / ps;
    live = calloc(hwm, 1);
    if (!live)
        goto out;
    /* the meta WriteTo wrote into slot 0 (both copies describe the same transaction) */
    CHECK(mark(d, n, ps, hwm, live, rd64(d + 16 + 16), 0) == 0, "cannot walk the database");
    {
        uint64_t fl = rd64(d + 16 + 32);
        if (fl < hwm) /* a persisted freelist page is in use too */
            for (uint64_t k = 0; k <= rd32(d + fl * ps + 12) && fl + k < hwm; k++)
                live[fl + k] = 1;
    }
    for (uint64_t id = 2; id < hwm; id++) {
        int kind = (int)(rnd() % 4);
        const uint8_t *p = d + id * ps;
        if (live[id])
            continue;
        /* a free page holding a leaf of bucket "key" newer than the snapshot (written by a
         * concurrent writer while the snapshot streamed) */
        if (rd64(p) == id && p[8] == 0x02 && p[9] == 0 && (p[10] | p[11]) && rd32(p + 12) == 0) {
            unsigned cnt = (unsigned)(p[10] | p[11] << 8);
            const uint8_t *e = p + 16 + 16 * (cnt - 1);
            uint64_t off = 16 + 16 * (uint64_t)(cnt - 1) + rd32(e + 4), ks = rd32(e + 8);
            if (off + ks <= ps && (ks == 17 || ks == 18) && p[off + 8] == '_') {
                uint64_t m = 0;
                for (int b = 0; b < 8; b++)
                    m = m << 8 | p[off + b];
                if (m > (uint64_t)base.revision)
                    newer++;
            }
        }
        poison(d + id * ps, id, kind, ps, hwm);
        kinds[kind]++;
        npoison++;
    }
    CHECK(npoison > 0, "no free pages to poison: the test state is too small");
    for (int pass = 0; pass < 2; pass++) {
        int64_t min_rev = pass ? base.revision : 0;
        rc = scan_mem(d, n, min_rev, pass ? 4096 : 1 << 20, &r);
        CHECK(rc == 0, "poisoned scan (min_rev %" PRId64 "): %s", min_rev, dr_error_msg());
        if (rc == 0 && pass == 0)
            CHECK(same(&r, &base),
                  "poisoned free pages changed the result: revision %" PRId64
                  " key_revision %" PRId64 ", want %" PRId64 " %" PRId64,
                  r.revision, r.key_revision, base.revision, base.key_revision);
        if (rc == 0 && pass == 1)
            CHECK(r.revision == base.revision,
                  "poisoned, min_rev: revision %" PRId64 ", want %" PRId64, r.revision,
                  base.revision);
    }
    /* the trailer is not looked at */
    for (size_t i = base.db_size; i < n; i++)
        d[i] ^= 0xA5;
    rc = scan_mem(d, n, 0, 8192, &r);
    CHECK(rc == 0 && same(&r, &base), "trailer bytes changed the result");
    printf("%" PRIu64 " free pages held revisions newer than the snapshot; ", newer);
    printf("poisoned %" PRIu64 " free pages of %" PRIu64 " (newer leaf %" PRIu64
           ", self-branch %" PRIu64 ", overflow to the end %" PRIu64 ", fake root leaf %" PRIu64
           "): revision %" PRId64 " unchanged\n",
           npoison, hwm, kinds[0], kinds[1], kinds[2], kinds[3], base.revision);
out:
    free(live);
    free(d);
    return failures ? 1 : 0;
}

/* ---- fuzz ---- */

/* Pages the scanner's walk uses (metas, root bucket page, the path to the newest entry of bucket
 * "key"): mutations aimed there test the walk, not only the skipping of free pages. */
static uint64_t hot[64];
static int nhot;

static void find_hot(const uint8_t *d, size_t n, uint32_t ps)
{
    uint64_t id = rd64(d + 32), hwm = rd64(d + 56);
    nhot = 0;
    hot[nhot++] = 0;
    hot[nhot++] = 1;
    for (int depth = 0; depth < 40 && id >= 2 && id < hwm && (id + 1) * ps <= n; depth++) {
        const uint8_t *p = d + id * ps;
        unsigned count = (unsigned)(p[10] | p[11] << 8);
        hot[nhot++] = id;
        if (!count)
            break;
        if (p[8] == 0x01) { /* branch: the rightmost child */
            id = rd64(p + 16 + 16 * (count - 1) + 8);
            continue;
        }
        if (depth > 0 || p[8] != 0x02)
            break;
        id = 0; /* the root leaf: on to bucket "key" */
        for (unsigned i = 0; i < count; i++) {
            const uint8_t *e = p + 16 + 16 * i;
            if (rd32(e + 8) == 3 && !memcmp(e + rd32(e + 4), "key", 3))
                id = rd64(e + rd32(e + 4) + 3);
        }
    }
}

static size_t pick_page(size_t n, uint32_t ps)
{
    if (nhot && rnd() % 2)
        return (size_t)hot[rnd() % (uint64_t)nhot] * ps;
    return (size_t)(rnd() % (n / ps)) * ps;
}

static void expect_eproto(const uint8_t *d, size_t n, const char *what, const char *part)
{
    dr_bolt_result r;
    int rc = scan_mem(d, n, 0, 30000, &r);
    CHECK(rc == DR_EPROTO, "%s: got %d (%s), want DR_EPROTO", what, rc, dr_error_msg());
    if (rc == DR_EPROTO && part)
        CHECK(strstr(dr_error_msg(), part), "%s: message '%s' lacks '%s'", what, dr_error_msg(),
              part);
}

static int cmd_fuzz(const char *path, long iters)
{
    uint8_t *d = NULL, *c = NULL;
    size_t n;
    dr_bolt_result base, r;
    long ok = 0, eproto = 0;
    int rc = load(path, &d, &n);
    if (rc < 0)
        return 1;
    rc = scan_mem(d, n, 0, 65536, &base);
    CHECK(rc == 0, "baseline scan: %s", dr_error_msg());
    if (rc < 0)
        goto out;
    /* byte by byte, and in one piece: the same */
    rc = scan_mem(d, n, 0, 1, &r);
    CHECK(rc == 0 && same(&r, &base), "byte-by-byte feed differs (%s)", dr_error_msg());
    rc = scan_mem(d, n, 0, 0, &r);
    CHECK(rc == 0 && same(&r, &base), "one-piece feed differs (%s)", dr_error_msg());
    /* without the trailer */
    CHECK(base.has_trailer && n == base.db_size + 32, "file has a 32-byte trailer");
    rc = scan_mem(d, base.db_size, 0, 65536, &r);
    CHECK(rc == 0 && same(&r, &base) && !r.has_trailer, "without trailer differs (%s)",
          dr_error_msg());
    /* truncated, cut in the trailer, extra bytes */
    expect_eproto(d, 0, "empty stream", "not a bbolt database");
    expect_eproto(d, 50, "50 bytes", "not a bbolt database");
    for (int i = 0; i < 20; i++) {
        size_t cut = base.page_size * 2 + (size_t)(rnd() % (base.db_size - base.page_size * 2));
        expect_eproto(d, cut, "truncated", "truncated");
    }
    expect_eproto(d, base.db_size + 1 + (size_t)(rnd() % 31), "cut in trailer", "trailer");
    c = malloc(n + 4096);
    if (!c)
        goto out;
    memcpy(c, d, n);
    for (size_t i = n; i < n + 4096; i++)
        c[i] = (uint8_t)rnd();
    expect_eproto(c, n + 1, "one byte after the trailer", "after the end");
    expect_eproto(c, n + 4096, "a page after the trailer", "after the end");
    /* random garbage, also behind valid meta pages */
    for (int i = 0; i < 50; i++) {
        size_t len = (size_t)(rnd() % (n + 4096));
        for (size_t j = 0; j < len; j++)
            c[j] = (uint8_t)rnd();
        expect_eproto(c, len, "random bytes", NULL);
        memcpy(c, d, base.page_size * 2);
        rc = scan_mem(c, len > base.page_size * 2 ? len : base.page_size * 2, 0, 20000, &r);
        CHECK(rc == 0 || rc == DR_EPROTO, "metas + garbage: %d (%s)", rc, dr_error_msg());
    }
    /* mutations, half of them on the pages the walk uses */
    find_hot(d, n, base.page_size);
    for (long it = 0; it < iters; it++) {
        size_t len = n;
        memcpy(c, d, n);
        switch (rnd() % 5) {
        case 0: /* flip bytes */
            for (int k = 1 + (int)(rnd() % 20); k > 0; k--)
                c[rnd() % 2 ? rnd() % n : pick_page(n, base.page_size) + rnd() % base.page_size] ^=
                    (uint8_t)(1 + rnd() % 255);
            break;
        case 1: /* a random page header */
            for (int k = 1 + (int)(rnd() % 4); k > 0; k--) {
                size_t p = pick_page(n, base.page_size);
                for (int j = 8; j < 16; j++)
                    c[p + j] = (uint8_t)rnd();
            }
            break;
        case 2: /* huge overflow or count in a page */
            for (int k = 1 + (int)(rnd() % 4); k > 0; k--) {
                size_t p = pick_page(n, base.page_size);
                if (rnd() % 2)
                    wr32(c + p + 12, (uint32_t)rnd());
                else
                    wr16(c + p + 10, (uint16_t)rnd());
            }
            break;
        case 3: /* element fields */
            for (int k = 1 + (int)(rnd() % 8); k > 0; k--) {
                size_t p = pick_page(n, base.page_size);
                size_t e = p + 16 + 16 * (rnd() % 8) + 4 * (rnd() % 4);
                wr32(c + e, rnd() % 2 ? (uint32_t)rnd() : (uint32_t)(rnd() % 70000));
            }
            break;
        default: /* a page of zeros or garbage */
        {
            size_t p = pick_page(n, base.page_size);
            for (size_t j = 0; j < base.page_size; j++)
                c[p + j] = rnd() % 2 ? 0 : (uint8_t)rnd();
            break;
        }
        }
        rc = scan_mem(c, len, rnd() % 2 ? 0 : base.revision, 1 + rnd() % 100000, &r);
        CHECK(rc == 0 || rc == DR_EPROTO, "mutation %ld: %d (%s)", it, rc, dr_error_msg());
        if (rc < 0)
            CHECK(*dr_error_msg(), "mutation %ld: empty error message", it);
        if (rc == 0)
            ok++;
        else
            eproto++;
    }
    printf("fuzz: %ld mutations (%d pages on the walk's path): %ld scanned, %ld refused "
           "(DR_EPROTO); baseline revision %" PRId64 "\n",
           iters, nhot, ok, eproto, base.revision);
out:
    free(c);
    free(d);
    return failures ? 1 : 0;
}

/* ---- synth: tree shapes etcd does not make (a root bucket over several pages, a bucket "meta"
 * of its own pages); built here page by page ---- */

static uint64_t fnv64a(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void meta_page(uint8_t *p, uint64_t id, uint32_t ps, uint64_t root, uint64_t hwm,
                      uint64_t txid)
{
    uint8_t *m = p + 16;
    page_hdr(p, id, 0x04, 0, 0);
    wr32(m, 0xED0CDAED);
    wr32(m + 4, 2);
    wr32(m + 8, ps);
    wr64(m + 16, root);
    wr64(m + 32, UINT64_MAX); /* no freelist, as etcd 3.4 */
    wr64(m + 40, hwm);
    wr64(m + 48, txid);
    wr64(m + 56, fnv64a(m, 56));
}

static void branch_elem(uint8_t *p, unsigned i, const void *k, uint32_t ks, uint64_t child,
                        size_t *data)
{
    uint8_t *e = p + 16 + 16 * i;
    wr32(e, (uint32_t)(*data - (16 + 16 * i)));
    wr32(e + 4, ks);
    wr64(e + 8, child);
    memcpy(p + *data, k, ks);
    *data += ks;
}

/* a bucket value: header {root, sequence}, and for root 0 an empty inline leaf */
static uint32_t bucket_val(uint8_t *v, uint64_t root)
{
    memset(v, 0, 32);
    wr64(v, root);
    if (root)
        return 16;
    page_hdr(v + 16, 0, 0x02, 0, 0);
    return 32;
}

static void rev_val(uint8_t *v, uint64_t main_rev)
{
    rev_bytes(v, main_rev);
}

static int cmd_synth(void)
{
    enum { PS = 4096, HWM = 13 };
    uint8_t *d = calloc(HWM, PS), *p, v[64], k[17];
    size_t data;
    dr_bolt_result r;
    int rc;
    if (!d)
        return 1;
    meta_page(d, 0, PS, 2, HWM, 20);
    meta_page(d + PS, 1, PS, 12, HWM, 19); /* older meta: another root */
    /* 2: root bucket, a branch over two leaves */
    p = d + 2 * PS;
    page_hdr(p, 2, 0x01, 2, 0);
    data = 48;
    branch_elem(p, 0, "alarm", 5, 3, &data);
    branch_elem(p, 1, "lease", 5, 4, &data);
    /* 3, 4: its leaves */
    p = d + 3 * PS;
    page_hdr(p, 3, 0x02, 2, 0);
    data = 48;
    leaf_elem(p, 0, 1, "alarm", 5, v, bucket_val(v, 0), &data);
    leaf_elem(p, 1, 1, "key", 3, v, bucket_val(v, 5), &data);
    p = d + 4 * PS;
    page_hdr(p, 4, 0x02, 2, 0);
    data = 48;
    leaf_elem(p, 0, 1, "lease", 5, v, bucket_val(v, 0), &data);
    leaf_elem(p, 1, 1, "meta", 4, v, bucket_val(v, 8), &data);
    /* 5: bucket "key", a branch; 6, 7: its leaves (newest entry: 52) */
    p = d + 5 * PS;
    page_hdr(p, 5, 0x01, 2, 0);
    data = 48;
    rev_bytes(k, 1);
    branch_elem(p, 0, k, 17, 6, &data);
    rev_bytes(k, 50);
    branch_elem(p, 1, k, 17, 7, &data);
    for (int leaf = 0; leaf < 2; leaf++) {
        p = d + (6 + leaf) * PS;
        page_hdr(p, 6 + (uint64_t)leaf, 0x02, 3, 0);
        data = 64;
        for (unsigned i = 0; i < 3; i++) {
            rev_bytes(k, (leaf ? 50 : 1) + i);
            leaf_elem(p, i, 0, k, 17, "kv", 2, &data);
        }
    }
    /* 8: bucket "meta", a branch; 9, 10: its leaves */
    p = d + 8 * PS;
    page_hdr(p, 8, 0x01, 2, 0);
    data = 48;
    branch_elem(p, 0, "consistent_index", 16, 9, &data);
    branch_elem(p, 1, "scheduledCompactRev", 19, 10, &data);
    p = d + 9 * PS;
    page_hdr(p, 9, 0x02, 2, 0);
    data = 48;
    memset(v, 0, 8);
    v[7] = 77;
    leaf_elem(p, 0, 0, "consistent_index", 16, v, 8, &data);
    rev_val(v, 40);
    leaf_elem(p, 1, 0, "finishedCompactRev", 18, v, 17, &data);
    p = d + 10 * PS;
    page_hdr(p, 10, 0x02, 1, 0);
    data = 32;
    rev_val(v, 60);
    leaf_elem(p, 0, 0, "scheduledCompactRev", 19, v, 17, &data);
    /* 11: a stale, newer leaf; 12: the older meta's root (a leaf with an inline "key") */
    poison(d + 11 * PS, 11, 0, PS, HWM);
    poison(d + 12 * PS, 12, 3, PS, HWM);

    for (int i = 0; i < 3; i++) {
        rc = scan_mem(d, (size_t)HWM * PS, i == 2 ? 55 : 0, i ? 1 + (size_t)i * 1000 : 1, &r);
        CHECK(rc == 0, "synth scan %d: %s", i, dr_error_msg());
        if (rc < 0)
            continue;
        CHECK(r.revision == 60, "synth %d: revision %" PRId64 ", want 60", i, r.revision);
        CHECK(r.key_revision == (i == 2 ? -1 : 52), "synth %d: key_revision %" PRId64, i,
              r.key_revision);
        CHECK(r.compact_revision == 40 && r.scheduled_compact_revision == 60 &&
                  r.consistent_index == 77 && r.txid == 20 && !r.has_trailer,
              "synth %d: compact %" PRId64 " scheduled %" PRId64 " ci %" PRIu64 " txid %" PRIu64, i,
              r.compact_revision, r.scheduled_compact_revision, r.consistent_index, r.txid);
    }
    /* min_rev above what the snapshot can prove: refused */
    rc = scan_mem(d, (size_t)HWM * PS, 61, 5000, &r);
    CHECK(rc == DR_EPROTO && strstr(dr_error_msg(), "min revision"), "synth min_rev 61: %d %s", rc,
          dr_error_msg());
    /* meta 0 broken: meta 1 (txid 19) and its root, page 12, are used */
    d[16 + 48] ^= 1;
    rc = scan_mem(d, (size_t)HWM * PS, 0, 3000, &r);
    CHECK(rc == 0 && r.txid == 19 && r.revision == 3000000000000 && r.key_revision == 2000000000000,
          "synth meta 1: %d (%s) txid %" PRIu64 " revision %" PRId64, rc, dr_error_msg(), r.txid,
          r.revision);
    /* a needed page missing */
    d[16 + 48] ^= 1;
    memset(d + 7 * PS, 0, 16);
    rc = scan_mem(d, (size_t)HWM * PS, 0, 3000, &r);
    CHECK(rc == DR_EPROTO && strstr(dr_error_msg(), "page 7 of bucket 'key' is not a valid page"),
          "synth page 7 zeroed: %d %s", rc, dr_error_msg());
    free(d);
    printf("synth: multi-page root bucket, paged bucket 'meta', stale pages, meta fallback: %s\n",
           failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: test_bolt scan [--min-rev N] [--seed S] [--max-chunk B | --chunk B] "
                    "FILE\n       test_bolt poison [--seed S] FILE\n"
                    "       test_bolt fuzz [--seed S] [--iters N] FILE\n"
                    "       test_bolt synth\n");
    return 2;
}

int main(int argc, char **argv)
{
    int64_t min_rev = 0, v;
    size_t max_chunk = 100000, fixed = 0;
    long iters = 300;
    const char *cmd, *file = NULL;
    int rc;
    if (argc == 2 && !strcmp(argv[1], "synth"))
        return cmd_synth();
    if (argc < 3)
        return usage();
    cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 < argc && a[0] == '-' && a[1] == '-') {
            if (dr_parse_i64(argv[i + 1], a, &v) < 0) {
                fprintf(stderr, "%s\n", dr_error_msg());
                return 2;
            }
            if (!strcmp(a, "--min-rev"))
                min_rev = v;
            else if (!strcmp(a, "--seed"))
                rng_state ^= (uint64_t)v * 0x9E3779B97F4A7C15ull;
            else if (!strcmp(a, "--max-chunk") && v > 0)
                max_chunk = (size_t)v;
            else if (!strcmp(a, "--chunk") && v > 0)
                fixed = (size_t)v;
            else if (!strcmp(a, "--iters"))
                iters = (long)v;
            else
                return usage();
            i++;
        } else if (!file) {
            file = a;
        } else {
            return usage();
        }
    }
    if (!file)
        return usage();
    if (!strcmp(cmd, "scan")) {
        rc = cmd_scan(file, min_rev, max_chunk, fixed);
        return rc < 0 ? dr_error_exit_status(rc) : 0;
    }
    if (!strcmp(cmd, "poison"))
        return cmd_poison(file);
    if (!strcmp(cmd, "fuzz"))
        return cmd_fuzz(file, iters);
    return usage();
}
