/* Unit tests for drd/lib/archive: round trips (none, zstd), exact entry sizes, truncated and
 * corrupt input, errors of the underlying sink/source passed through unchanged, and archives that
 * GNU tar (and the zstd CLI, when installed) read back to the exact bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/lib/archive/archive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void fill_random(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(rnd() >> 56);
}

typedef struct entry {
    const char *name;
    size_t size;
    char *data;
} entry;

/* Three entries: empty, one byte, 10 MiB of random bytes; plus a small text one. */
static entry *make_entries(size_t *n)
{
    static const char *names[] = {"empty", "one", "etcd.db", "manifest.json"};
    static const size_t sizes[] = {0, 1, 10u << 20, 300};
    entry *e = calloc(4, sizeof *e);
    assert_non_null(e);
    for (size_t i = 0; i < 4; i++) {
        e[i].name = names[i];
        e[i].size = sizes[i];
        e[i].data = malloc(sizes[i] + 1);
        assert_non_null(e[i].data);
        fill_random(e[i].data, sizes[i]);
    }
    memcpy(e[3].data, "{\"kind\":\"snapshot\"}", 19);
    *n = 4;
    return e;
}

static void free_entries(entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
    free(e);
}

/* Writes the entries in random-size pieces (0 to 300 KiB). */
static void write_entries(dr_archive_writer *w, const entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(dr_archive_entry_begin(w, e[i].name, e[i].size, 1700000000 + (int)i), 0);
        size_t off = 0;
        while (off < e[i].size) {
            size_t k = (size_t)(rnd() % (300 * 1024));
            if (k > e[i].size - off)
                k = e[i].size - off;
            assert_int_equal(dr_archive_entry_write(w, e[i].data + off, k), 0);
            off += k;
        }
        assert_int_equal(dr_archive_entry_end(w), 0);
    }
}

static void build(dr_compress c, int level, const entry *e, size_t n, char **data, size_t *len)
{
    dr_sink *out = NULL;
    dr_archive_writer *w = NULL;
    assert_int_equal(dr_buf_sink_new(1u << 30, &out), 0);
    assert_int_equal(dr_archive_writer_new(out, c, level, &w), 0);
    write_entries(w, e, n);
    assert_int_equal(dr_archive_writer_finish(w), 0);
    dr_archive_writer_free(w);
    dr_buf_sink_take(out, data, len);
    dr_sink_free(out);
}

/* Reads the archive and checks it holds exactly the entries, read in random-size pieces. */
static void check_archive(const char *data, size_t len, const entry *e, size_t n)
{
    dr_source *in = NULL;
    dr_archive_reader *r = NULL;
    char name[256];
    uint64_t size = 0;
    size_t cap = 12u << 20;
    char *buf = malloc(cap);
    assert_non_null(buf);
    assert_int_equal(dr_mem_source_new(data, len, &in), 0);
    assert_int_equal(dr_archive_reader_new(in, &r), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(dr_archive_next(r, name, sizeof name, &size), 0);
        assert_string_equal(name, e[i].name);
        assert_int_equal(size, e[i].size);
        size_t got = 0, k = 0;
        do {
            size_t want = 1 + (size_t)(rnd() % (200 * 1024));
            if (want > cap - got)
                want = cap - got;
            assert_int_equal(dr_archive_read(r, buf + got, want, &k), 0);
            got += k;
        } while (k);
        assert_int_equal(got, e[i].size);
        assert_memory_equal(buf, e[i].data, e[i].size);
    }
    assert_int_equal(dr_archive_next(r, name, sizeof name, &size), DR_ENOTFOUND);
    assert_int_equal(dr_archive_next(r, name, sizeof name, &size), DR_ENOTFOUND);
    dr_archive_reader_free(r);
    dr_source_free(in);
    free(buf);
}

/* Reads the whole archive (or only walks its entries, when skip); returns the first error (0 when
 * it gets to its end). */
static int walk(const char *data, size_t len, int skip)
{
    dr_source *in = NULL;
    dr_archive_reader *r = NULL;
    char name[256], buf[65536];
    uint64_t size = 0;
    size_t k = 0;
    int rc = 0;
    assert_int_equal(dr_mem_source_new(data, len, &in), 0);
    if ((rc = dr_archive_reader_new(in, &r)) < 0)
        goto out;
    while ((rc = dr_archive_next(r, name, sizeof name, &size)) == 0) {
        if (skip)
            continue;
        do {
            if ((rc = dr_archive_read(r, buf, sizeof buf, &k)) < 0)
                goto out;
        } while (k);
    }
    if (rc == DR_ENOTFOUND)
        rc = 0;
out:
    dr_archive_reader_free(r);
    dr_source_free(in);
    return rc;
}

static int read_all(const char *data, size_t len)
{
    return walk(data, len, 0);
}

static void test_roundtrip_none(void **state)
{
    (void)state;
    size_t n, len;
    char *data;
    entry *e = make_entries(&n);
    build(DR_COMPRESS_NONE, 0, e, n, &data, &len);
    /* plain tar: 512-byte header + data padded to 512 per entry, then two zero records; the
     * last block is not padded to libarchive's default 10 KiB */
    size_t expect = 1024;
    for (size_t i = 0; i < n; i++)
        expect += 512 + (e[i].size + 511) / 512 * 512;
    assert_int_equal(len, expect);
    check_archive(data, len, e, n);
    free(data);
    free_entries(e, n);
}

static void test_roundtrip_zstd(void **state)
{
    (void)state;
    size_t n, len;
    char *data;
    entry *e = make_entries(&n);
    build(DR_COMPRESS_ZSTD, 0, e, n, &data, &len);
    assert_memory_equal(data, "\x28\xb5\x2f\xfd", 4); /* zstd frame magic */
    check_archive(data, len, e, n);
    free(data);
    build(DR_COMPRESS_ZSTD, 1, e, n, &data, &len);
    check_archive(data, len, e, n);
    free(data);
    free_entries(e, n);
}

static void test_small_archive_sizes(void **state)
{
    (void)state;
    entry one = {"a", 1, "x"};
    char *data;
    size_t len;
    build(DR_COMPRESS_NONE, 0, &one, 1, &data, &len);
    assert_int_equal(len, 2048); /* header, one data record, end of archive */
    free(data);
    build(DR_COMPRESS_NONE, 0, &one, 0, &data, &len);
    assert_int_equal(len, 1024); /* an empty archive is its end marker */
    assert_int_equal(read_all(data, len), 0);
    free(data);
    build(DR_COMPRESS_ZSTD, 0, &one, 1, &data, &len);
    assert_true(len < 200); /* the zstd output is not padded to a block either */
    check_archive(data, len, &one, 1);
    free(data);
}

/* dr_archive_entry_sink / dr_archive_entry_source carry a stream into and out of an entry. */
static void test_entry_views(void **state)
{
    (void)state;
    size_t n = 2u << 20, len, blen;
    char *src = malloc(n), *data, *back;
    assert_non_null(src);
    fill_random(src, n);
    dr_sink *out = NULL, *sink = NULL;
    dr_source *in = NULL, *msrc = NULL;
    dr_archive_writer *w = NULL;
    dr_archive_reader *r = NULL;
    uint64_t bytes = 0, size = 0;
    char name[64];

    assert_int_equal(dr_buf_sink_new(64u << 20, &out), 0);
    assert_int_equal(dr_archive_writer_new(out, DR_COMPRESS_ZSTD, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "piped", n, 0), 0);
    assert_int_equal(dr_mem_source_new(src, n, &msrc), 0);
    assert_int_equal(dr_stream_copy(msrc, dr_archive_entry_sink(w), &bytes), 0);
    assert_int_equal(bytes, n);
    assert_int_equal(dr_sink_finish(dr_archive_entry_sink(w)), 0); /* no-op */
    dr_sink_free(dr_archive_entry_sink(w));                        /* no-op */
    assert_int_equal(dr_archive_entry_end(w), 0);
    assert_int_equal(dr_archive_writer_finish(w), 0);
    dr_archive_writer_free(w);
    dr_source_free(msrc);
    dr_buf_sink_take(out, &data, &len);
    dr_sink_free(out);

    assert_int_equal(dr_mem_source_new(data, len, &in), 0);
    assert_int_equal(dr_archive_reader_new(in, &r), 0);
    /* no entry yet */
    size_t k = 1;
    assert_int_equal(dr_archive_read(r, name, sizeof name, &k), DR_EINVAL);
    assert_int_equal(k, 0);
    assert_int_equal(dr_archive_next(r, name, sizeof name, &size), 0);
    assert_string_equal(name, "piped");
    assert_int_equal(size, n);
    assert_int_equal(dr_buf_sink_new(64u << 20, &sink), 0);
    assert_int_equal(dr_stream_copy(dr_archive_entry_source(r), sink, &bytes), 0);
    assert_int_equal(bytes, n);
    dr_source_free(dr_archive_entry_source(r)); /* no-op */
    dr_buf_sink_take(sink, &back, &blen);
    assert_int_equal(blen, n);
    assert_memory_equal(back, src, n);
    assert_int_equal(dr_archive_next(r, name, sizeof name, &size), DR_ENOTFOUND);
    dr_archive_reader_free(r);
    dr_source_free(in);
    dr_sink_free(sink);
    free(back);
    free(data);
    free(src);
}

/* A sink that counts what reaches it and can fail after a number of bytes. */
typedef struct test_sink {
    dr_sink base;
    uint64_t bytes;
    uint64_t fail_after; /* UINT64_MAX: never */
    int writes, finishes;
} test_sink;

static int test_sink_write(dr_sink *s, const void *data, size_t len)
{
    test_sink *t = (test_sink *)s;
    (void)data;
    if (t->bytes + len > t->fail_after)
        return dr_error_set(DR_EIO, "cannot write 'test-sink': No space left on device");
    t->bytes += len;
    t->writes++;
    return 0;
}

static int test_sink_finish(dr_sink *s)
{
    ((test_sink *)s)->finishes++;
    return 0;
}

static void test_sink_free(dr_sink *s)
{
    (void)s;
}

static const dr_sink_ops test_sink_ops = {test_sink_write, test_sink_finish, test_sink_free};

static void test_size_mismatch(void **state)
{
    (void)state;
    test_sink t = {{&test_sink_ops}, 0, UINT64_MAX, 0, 0};
    dr_archive_writer *w = NULL;
    char buf[100] = {0};

    /* more than announced: refused before anything is written */
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "f", 10, 0), 0);
    assert_int_equal(dr_archive_entry_write(w, buf, 6), 0);
    assert_int_equal(dr_archive_entry_write(w, buf, 5), DR_EINVAL);
    assert_non_null(strstr(dr_error_msg(), "'f'"));
    /* the writer is unusable now and never finishes its output */
    assert_int_equal(dr_archive_entry_write(w, buf, 4), DR_EINVAL);
    assert_int_equal(dr_archive_entry_end(w), DR_EINVAL);
    assert_int_equal(dr_archive_writer_finish(w), DR_EINVAL);
    dr_archive_writer_free(w);
    assert_int_equal(t.finishes, 0);

    /* fewer than announced */
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_ZSTD, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "g", 10, 0), 0);
    assert_int_equal(dr_archive_entry_write(w, buf, 9), 0);
    assert_int_equal(dr_archive_entry_end(w), DR_EINVAL);
    assert_string_equal(dr_error_msg(), "archive entry 'g': 9 bytes written, 10 announced");
    assert_int_equal(dr_archive_writer_finish(w), DR_EINVAL);
    dr_archive_writer_free(w);
    assert_int_equal(t.finishes, 0);

    /* through the entry sink, and an empty entry that gets a byte */
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "z", 0, 0), 0);
    assert_int_equal(dr_sink_write(dr_archive_entry_sink(w), buf, 1), DR_EINVAL);
    dr_archive_writer_free(w);

    /* finishing with an entry open, beginning one inside another, writing outside one */
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_entry_write(w, buf, 1), DR_EINVAL);
    dr_archive_writer_free(w);
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "a", 1, 0), 0);
    assert_int_equal(dr_archive_entry_begin(w, "b", 1, 0), DR_EINVAL);
    dr_archive_writer_free(w);
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "a", 1, 0), 0);
    assert_int_equal(dr_archive_writer_finish(w), DR_EINVAL);
    dr_archive_writer_free(w);
    assert_int_equal(t.finishes, 0);

    /* finish twice */
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_writer_finish(w), 0);
    assert_int_equal(t.finishes, 1);
    assert_int_equal(dr_archive_writer_finish(w), DR_EINVAL);
    dr_archive_writer_free(w);
    assert_int_equal(t.finishes, 1);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    test_sink t = {{&test_sink_ops}, 0, UINT64_MAX, 0, 0};
    dr_archive_writer *w = NULL;
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_ZSTD, 99, &w), DR_EUSAGE);
    assert_null(w);
    assert_int_equal(dr_archive_writer_new(&t.base, (dr_compress)7, 0, &w), DR_EUSAGE);
    assert_int_equal(dr_archive_writer_new(&t.base, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "", 1, 0), DR_EINVAL);
    assert_int_equal(dr_archive_entry_begin(w, "/abs", 1, 0), DR_EINVAL);
    assert_int_equal(dr_archive_entry_begin(w, "new\nline", 1, 0), DR_EINVAL);
    /* a refused name leaves the writer usable */
    assert_int_equal(dr_archive_entry_begin(w, "ok", 0, 0), 0);
    assert_int_equal(dr_archive_entry_end(w), 0);
    dr_archive_writer_free(w);
    assert_int_equal(t.finishes, 0);
}

/* Long names (beyond ustar's 100 bytes) round trip; a reader buffer too small is refused. */
static void test_long_names(void **state)
{
    (void)state;
    char longname[201];
    memset(longname, 'n', 200);
    longname[200] = 0;
    memcpy(longname + 100, "/", 1);
    entry e = {longname, 3, "abc"};
    char *data, name[64];
    size_t len;
    uint64_t size;
    build(DR_COMPRESS_NONE, 0, &e, 1, &data, &len);
    check_archive(data, len, &e, 1);
    dr_source *in = NULL;
    dr_archive_reader *r = NULL;
    assert_int_equal(dr_mem_source_new(data, len, &in), 0);
    assert_int_equal(dr_archive_reader_new(in, &r), 0);
    assert_int_equal(dr_archive_next(r, name, sizeof name, &size), DR_EPROTO);
    dr_archive_reader_free(r);
    dr_source_free(in);
    free(data);
}

/* Freeing an unfinished writer writes nothing more and never finishes the output. */
static void test_free_unfinished(void **state)
{
    (void)state;
    char buf[4096];
    fill_random(buf, sizeof buf);
    for (int c = 0; c < 2; c++) {
        test_sink t = {{&test_sink_ops}, 0, UINT64_MAX, 0, 0};
        dr_archive_writer *w = NULL;
        assert_int_equal(dr_archive_writer_new(&t.base, (dr_compress)c, 0, &w), 0);
        assert_int_equal(dr_archive_entry_begin(w, "a", 200000, 0), 0);
        for (int i = 0; i < 40; i++)
            assert_int_equal(dr_archive_entry_write(w, buf, sizeof buf), 0);
        uint64_t before = t.bytes;
        dr_archive_writer_free(w);
        assert_int_equal(t.bytes, before);
        assert_int_equal(t.finishes, 0);
        /* and after all entries are complete but before finish */
        assert_int_equal(dr_archive_writer_new(&t.base, (dr_compress)c, 0, &w), 0);
        assert_int_equal(dr_archive_entry_begin(w, "b", 10, 0), 0);
        assert_int_equal(dr_archive_entry_write(w, buf, 10), 0);
        assert_int_equal(dr_archive_entry_end(w), 0);
        before = t.bytes;
        dr_archive_writer_free(w);
        assert_int_equal(t.bytes, before);
        assert_int_equal(t.finishes, 0);
    }
    dr_archive_writer_free(NULL);
    dr_archive_reader_free(NULL);

    /* with a file sink: nothing becomes visible, the temp file goes with the sink */
    char dir[] = "/tmp/drd-unit-archive-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.tar", dir);
    dr_sink *out = NULL;
    dr_archive_writer *w = NULL;
    assert_int_equal(dr_fs_sink_new(path, 0600, DR_FS_EXCLUSIVE, &out), 0);
    assert_int_equal(dr_archive_writer_new(out, DR_COMPRESS_NONE, 0, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "a", 1, 0), 0);
    dr_archive_writer_free(w);
    dr_sink_free(out);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(rmdir(dir), 0); /* empty: no temp file left */
}

/* The output sink's error comes back with its own code and message, wherever it happens. */
static void test_sink_error_propagates(void **state)
{
    (void)state;
    static char buf[320 * 1024];
    /* fail at the first byte, in a data write, in a header write (the first entry fills the
     * output block up to the second header), at finish */
    const uint64_t fail_at[] = {0, 0, 0, 1};
    const size_t first[] = {300000, 65536 - 512 - 512, 100, 100};
    for (int c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
            test_sink t = {{&test_sink_ops}, 0, fail_at[i], 0, 0};
            dr_archive_writer *w = NULL;
            int rc = 0;
            assert_int_equal(dr_archive_writer_new(&t.base, (dr_compress)c, 0, &w), 0);
            if ((rc = dr_archive_entry_begin(w, "a", first[i], 0)) == 0 &&
                (rc = dr_archive_entry_write(w, buf, first[i])) == 0 &&
                (rc = dr_archive_entry_end(w)) == 0 &&
                (rc = dr_archive_entry_begin(w, "b", 512, 0)) == 0 &&
                (rc = dr_archive_entry_write(w, buf, 512)) == 0 &&
                (rc = dr_archive_entry_end(w)) == 0)
                rc = dr_archive_writer_finish(w);
            assert_int_equal(rc, DR_EIO);
            assert_string_equal(dr_error_msg(),
                                "cannot write 'test-sink': No space left on device");
            assert_int_equal(dr_archive_writer_finish(w), DR_EINVAL);
            dr_archive_writer_free(w);
            assert_int_equal(t.finishes, 0);
        }
    }
}

/* Cut anywhere before the end-of-archive marker, the archive is reported truncated. */
static void test_truncated(void **state)
{
    (void)state;
    char small[3000];
    fill_random(small, sizeof small);
    entry e[3] = {{"a", 1000, small}, {"b", 0, small}, {"c", 2000, small + 1000}};
    for (int c = 0; c < 2; c++) {
        char *data;
        size_t len;
        build((dr_compress)c, 0, e, 3, &data, &len);
        assert_int_equal(read_all(data, len), 0);
        size_t stop = c == DR_COMPRESS_NONE ? len - 512 : len; /* one zero record is enough */
        for (size_t cut = 0; cut < stop; cut += (c == DR_COMPRESS_NONE ? 37 : 1)) {
            int rc = read_all(data, cut);
            if (rc != DR_EPROTO)
                fail_msg("%s archive cut at %zu of %zu: rc %d (%s)", c ? "zstd" : "plain", cut, len,
                         rc, dr_error_msg());
        }
        if (c == DR_COMPRESS_NONE) {
            /* exactly at entry boundaries and without the end marker */
            assert_int_equal(read_all(data, len - 1024), DR_EPROTO);
            assert_non_null(strstr(dr_error_msg(), "truncated"));
            assert_int_equal(read_all(data, 512 + 1024), DR_EPROTO);
            assert_int_equal(read_all(data, len - 512), 0);
            /* the same when the entries are skipped rather than read */
            assert_int_equal(walk(data, len, 1), 0);
            assert_int_equal(walk(data, len - 1024, 1), DR_EPROTO);
            assert_int_equal(walk(data, len - 1500, 1), DR_EPROTO);
        }
        free(data);
    }
}

static void test_corrupt(void **state)
{
    (void)state;
    size_t n, len;
    char *data;
    entry *e = make_entries(&n);
    /* compressible content, so that zstd emits compressed blocks rather than raw ones */
    for (size_t i = 0; i < e[2].size; i++)
        e[2].data[i] = "etcd-key-value "[i % 15] ^ (char)(i / 4096 % 3);
    build(DR_COMPRESS_ZSTD, 0, e, n, &data, &len);
    assert_int_equal(read_all(data, len), 0);
    /* magic, frame header descriptor, first block header */
    const size_t at[] = {0, 4, 6, 7};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        data[at[i]] ^= 0x55;
        int rc = read_all(data, len);
        if (rc != DR_EPROTO)
            fail_msg("zstd byte %zu corrupted: rc %d (%s)", at[i], rc, dr_error_msg());
        data[at[i]] ^= 0x55;
    }
    assert_int_equal(read_all(data, len), 0);
    free(data);

    /* a damaged tar header fails its checksum */
    build(DR_COMPRESS_NONE, 0, e, n, &data, &len);
    data[3 * 512 + 10] ^= 1; /* the name in the header of etcd.db (after empty, one + data) */
    assert_int_equal(read_all(data, len), DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "corrupt archive"));
    free(data);

    /* not an archive at all, and empty input */
    char junk[4096];
    fill_random(junk, sizeof junk);
    assert_int_equal(read_all(junk, sizeof junk), DR_EPROTO);
    assert_int_equal(read_all(junk, 0), DR_EPROTO);
    free_entries(e, n);
}

/* A source that fails like a decrypting source whose chunk does not authenticate. */
typedef struct fail_source {
    dr_source base;
    const char *p;
    size_t left;
    size_t fail_after;
} fail_source;

static int fail_source_read(dr_source *s, void *buf, size_t cap, size_t *n)
{
    fail_source *f = (fail_source *)s;
    if (!f->fail_after)
        return dr_error_set(DR_ECHECKSUM, "chunk 7 of 'obj' failed authentication");
    size_t k = cap < f->left ? cap : f->left;
    if (k > f->fail_after)
        k = f->fail_after;
    if (k > 4096)
        k = 4096;
    memcpy(buf, f->p, k);
    f->p += k;
    f->left -= k;
    f->fail_after -= k;
    *n = k;
    return 0;
}

static void fail_source_free(dr_source *s)
{
    (void)s;
}

static const dr_source_ops fail_source_ops = {fail_source_read, fail_source_free};

static void test_source_error_propagates(void **state)
{
    (void)state;
    size_t n, len;
    char *data;
    entry *e = make_entries(&n);
    for (int c = 0; c < 2; c++) {
        build((dr_compress)c, 0, e, n, &data, &len);
        const size_t at[] = {0, 100, 3000, len / 2, len - 1};
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            fail_source f = {{&fail_source_ops}, data, len, at[i]};
            dr_archive_reader *r = NULL;
            char name[64], buf[65536];
            uint64_t size;
            size_t k;
            int rc = dr_archive_reader_new(&f.base, &r);
            while (rc == 0 && (rc = dr_archive_next(r, name, sizeof name, &size)) == 0)
                do
                    rc = dr_archive_read(r, buf, sizeof buf, &k);
                while (rc == 0 && k);
            if (rc != DR_ECHECKSUM)
                fail_msg("%s, source failing at %zu: rc %d (%s)", c ? "zstd" : "plain", at[i], rc,
                         dr_error_msg());
            assert_string_equal(dr_error_msg(), "chunk 7 of 'obj' failed authentication");
            if (r) {
                /* and the reader stays failed with that code */
                assert_int_equal(dr_archive_next(r, name, sizeof name, &size), DR_ECHECKSUM);
                assert_int_equal(dr_archive_read(r, buf, sizeof buf, &k), DR_ECHECKSUM);
            }
            dr_archive_reader_free(r);
        }
        free(data);
    }
    free_entries(e, n);
}

/* An entry of 8 GiB + 1 byte does not fit ustar's size field: a pax header carries it. Zeros
 * through zstd level 1 keep it quick; only the header is read back. */
static void test_large_entry(void **state)
{
    (void)state;
    const uint64_t size = (8ull << 30) + 1;
    size_t chunk = 4u << 20, len;
    char *zeros = calloc(1, chunk), *data, name[64];
    assert_non_null(zeros);
    dr_sink *out = NULL;
    dr_archive_writer *w = NULL;
    assert_int_equal(dr_buf_sink_new(64u << 20, &out), 0);
    assert_int_equal(dr_archive_writer_new(out, DR_COMPRESS_ZSTD, 1, &w), 0);
    assert_int_equal(dr_archive_entry_begin(w, "huge", size, 0), 0);
    for (uint64_t left = size; left;) {
        size_t k = left < chunk ? (size_t)left : chunk;
        assert_int_equal(dr_archive_entry_write(w, zeros, k), 0);
        left -= k;
    }
    assert_int_equal(dr_archive_entry_end(w), 0);
    assert_int_equal(dr_archive_writer_finish(w), 0);
    dr_archive_writer_free(w);
    dr_buf_sink_take(out, &data, &len);
    dr_sink_free(out);
    assert_true(len < (4u << 20));

    dr_source *in = NULL;
    dr_archive_reader *r = NULL;
    uint64_t got = 0;
    assert_int_equal(dr_mem_source_new(data, len, &in), 0);
    assert_int_equal(dr_archive_reader_new(in, &r), 0);
    assert_int_equal(dr_archive_next(r, name, sizeof name, &got), 0);
    assert_string_equal(name, "huge");
    assert_int_equal(got, size);
    dr_archive_reader_free(r);
    dr_source_free(in);
    free(data);
    free(zeros);
}

/* ---- GNU tar and the zstd CLI read what we write ---- */

static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    dr_buf b = {0};
    char line[4096];
    size_t k;
    while ((k = fread(line, 1, sizeof line, p)) > 0)
        assert_int_equal(dr_buf_append(&b, line, k), 0);
    int st = pclose(p);
    if (st != 0)
        fail_msg("'%s' exited with %d: %.*s", cmd, st, (int)b.len, b.data ? b.data : "");
    assert_int_equal(dr_buf_append(&b, "", 1), 0);
    return b.data;
}

static void check_extract(const char *cmd, const entry *e)
{
    char *got = NULL;
    size_t len = 0;
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    dr_buf b = {0};
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0)
        assert_int_equal(dr_buf_append(&b, buf, k), 0);
    assert_int_equal(pclose(p), 0);
    got = b.data;
    len = b.len;
    assert_int_equal(len, e->size);
    if (len)
        assert_memory_equal(got, e->data, len);
    free(got);
}

static void test_gnu_tar_reads(void **state)
{
    (void)state;
    size_t n;
    entry *e = make_entries(&n);
    char dir[] = "/tmp/drd-unit-archive-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int have_zstd = system("command -v zstd >/dev/null 2>&1") == 0;
    for (int c = 0; c < 2; c++) {
        char path[256], cmd[1024];
        snprintf(path, sizeof path, "%s/c.tar%s", dir, c ? ".zst" : "");
        dr_sink *out = NULL;
        dr_archive_writer *w = NULL;
        assert_int_equal(dr_fs_sink_new(path, 0600, DR_FS_EXCLUSIVE, &out), 0);
        assert_int_equal(dr_archive_writer_new(out, (dr_compress)c, 0, &w), 0);
        write_entries(w, e, n);
        assert_int_equal(dr_archive_writer_finish(w), 0);
        dr_archive_writer_free(w);
        dr_sink_free(out);
        if (c == DR_COMPRESS_ZSTD && !have_zstd) {
            print_message("zstd CLI not installed: GNU tar check of the zstd archive skipped\n");
            continue;
        }
        const char *cat = c ? "zstd -dc" : "cat";
        /* stderr is captured: GNU tar's warnings (e.g. a lone zero block) would show up */
        snprintf(cmd, sizeof cmd, "%s '%s' | tar -tvf - 2>&1", cat, path);
        char *list = run(cmd);
        /* one line per entry, in order: "-rw------- 0/0  SIZE DATE TIME NAME" and nothing else */
        char *l = list;
        for (size_t i = 0; i < n; i++) {
            char perm[16], owner[64], date[16], tm[16], nm[256];
            unsigned long long sz = 0;
            int used = 0;
            assert_int_equal(sscanf(l, "%15s %63s %llu %15s %15s %255s%n", perm, owner, &sz, date,
                                    tm, nm, &used),
                             6);
            assert_string_equal(perm, "-rw-------");
            assert_int_equal(sz, e[i].size);
            assert_string_equal(nm, e[i].name);
            l += used;
            assert_int_equal(*l, '\n');
            l++;
        }
        assert_string_equal(l, "");
        free(list);
        if (!c) {
            snprintf(cmd, sizeof cmd, "tar -tvf '%s' 2>&1", path);
            free(run(cmd));
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(cmd, sizeof cmd, "%s '%s' | tar -xOf - '%s'", cat, path, e[i].name);
            check_extract(cmd, &e[i]);
        }
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
    free_entries(e, n);
}

/* A ustar header (name, size, type) into h (512 bytes), checksum included. */
static void tar_header(char *h, const char *name, size_t size, char type)
{
    memset(h, 0, 512);
    memcpy(h, name, strlen(name));
    memcpy(h + 100, "0000600", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf(h + 124, 12, "%011zo", size);
    memcpy(h + 136, "00000000000", 12);
    h[156] = type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
}

/* A pax header may claim an entry of up to 2^63 - 1 bytes: refused as corrupt, no overflow
 * computing where its data ends (found with fuzz_archive's inputs; UBSan: signed overflow). */
static void test_pax_size_near_int64_max(void **state)
{
    (void)state;
    static const char *claims[] = {"9223372036854775807", "9223372036854774807"};
    for (size_t i = 0; i < 2; i++) {
        char tar[5 * 512] = {0}, rec[64];
        int rl = snprintf(rec, sizeof rec, "28 size=%s\n", claims[i]);
        assert_int_equal(rl, 28);
        tar_header(tar, "PaxHeader/x", (size_t)rl, 'x');
        memcpy(tar + 512, rec, (size_t)rl);
        tar_header(tar + 1024, "events-000000", 0, '0');
        assert_int_equal(read_all(tar, sizeof tar), DR_EPROTO);
        /* libarchive refuses 2^63 - 1 itself; just below, the reader does */
        if (i == 1 && !strstr(dr_error_msg(), "claims"))
            fail_msg("claim %s: %s", claims[i], dr_error_msg());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_none),
        cmocka_unit_test(test_roundtrip_zstd),
        cmocka_unit_test(test_small_archive_sizes),
        cmocka_unit_test(test_entry_views),
        cmocka_unit_test(test_size_mismatch),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_free_unfinished),
        cmocka_unit_test(test_sink_error_propagates),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_source_error_propagates),
        cmocka_unit_test(test_large_entry),
        cmocka_unit_test(test_gnu_tar_reads),
        cmocka_unit_test(test_pax_size_near_int64_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
