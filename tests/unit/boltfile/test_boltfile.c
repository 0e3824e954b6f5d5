/*
 * drd/lib/boltfile against databases laid out here byte by byte as bbolt 1.3 writes them (meta
 * pages, a branch root, leaves, an inline bucket, a bucket on its own page), then damaged: a value
 * is found and overwritten in place and nothing else in the file changes; a bucket's greatest key
 * is found; absent buckets/keys are
 * DR_ENOTFOUND; a bad meta checksum, a page past the high-water mark, a wrong page id and a
 * truncated file are DR_EPROTO, never a read outside the file; a deeper tree, a cycle of pages
 * and a node over the size cap (the walk is iterative and holds one page at a time). Real etcd
 * databases are covered by integration.restore_file/restore_s3 (a member restored this way starts,
 * serves every key and accepts writes).
 */
#include "drd/lib/boltfile/boltfile.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

enum { PS = 4096, NPAGES = 8 };

static void p32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void p64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void meta(uint8_t *db, uint64_t id, uint64_t root, uint64_t hwm, uint64_t txid)
{
    uint8_t *p = db + id * PS, *m = p + 16;
    memset(p, 0, PS);
    p64(p, id);
    p[8] = 0x04;
    p32(m, 0xED0CDAED);
    p32(m + 4, 2);
    p32(m + 8, PS);
    p64(m + 16, root);
    p64(m + 32, 2);
    p64(m + 40, hwm);
    p64(m + 48, txid);
    p64(m + 56, fnv(m, 56));
}

typedef struct el {
    uint32_t flags;
    const char *k;
    const void *v;
    size_t vl;
} el;

/* A leaf page image (id, elements in key order) at p; returns its used length. */
static size_t leaf(uint8_t *p, uint64_t id, const el *e, size_t n)
{
    p64(p, id);
    p[8] = 0x02;
    p[10] = (uint8_t)n;
    size_t data = 16 + 16 * n;
    for (size_t i = 0; i < n; i++) {
        uint8_t *x = p + 16 + 16 * i;
        size_t kl = strlen(e[i].k);
        p32(x, e[i].flags);
        p32(x + 4, (uint32_t)(data - (16 + 16 * i)));
        p32(x + 8, (uint32_t)kl);
        p32(x + 12, (uint32_t)e[i].vl);
        memcpy(p + data, e[i].k, kl);
        memcpy(p + data + kl, e[i].v, e[i].vl);
        data += kl + e[i].vl;
    }
    return data;
}

static const uint8_t CI[8] = {0, 0, 0, 0, 0, 1, 0x86, 0xa0};

/* pages: 0,1 meta; 2 freelist; 3 branch root -> 4 (keys "alarm".."key") and 5 ("lease"..);
 * bucket "key" has its own leaf, page 6; "meta" is inline in page 5. */
static uint8_t *build(void)
{
    uint8_t *db = calloc(NPAGES, PS);
    meta(db, 0, 3, 7, 4);
    meta(db, 1, 3, 7, 3);
    p64(db + 2 * PS, 2);
    db[2 * PS + 8] = 0x10;
    /* branch root */
    uint8_t *b = db + 3 * PS;
    p64(b, 3);
    b[8] = 0x01;
    b[10] = 2;
    p32(b + 16, 32); /* element 0: key "alarm" at 16 + 32 */
    p32(b + 20, 5);
    p64(b + 24, 4);
    p32(b + 32, 16 + 5); /* element 1: key "lease" right after "alarm" */
    p32(b + 36, 5);
    p64(b + 40, 5);
    memcpy(b + 48, "alarmlease", 10);
    /* leaf 4: buckets alarm (inline, empty) and key (page 6) */
    uint8_t alarm[32] = {0}, key[16] = {0};
    p64(alarm + 16 + 8, 0); /* inline page header, leaf with no elements */
    alarm[16 + 8] = 0x02;
    p64(key, 6);
    el l4[] = {{1, "alarm", alarm, sizeof alarm}, {1, "key", key, sizeof key}};
    leaf(db + 4 * PS, 4, l4, 2);
    /* meta: inline bucket with two values */
    uint8_t inl[256] = {0};
    el me[] = {{0, "consistent_index", CI, 8}, {0, "finishedCompactRev", "0123456789abcdefg", 17}};
    size_t il = 16 + leaf(inl + 16, 0, me, 2);
    el l5[] = {{1, "lease", alarm, sizeof alarm}, {1, "meta", inl, il}};
    leaf(db + 5 * PS, 5, l5, 2);
    el l6[] = {{0, "/registry/a", "1", 1}, {0, "/registry/b", "22", 2}};
    leaf(db + 6 * PS, 6, l6, 2);
    return db;
}

static char path[64];

static void save(const uint8_t *db, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(db, 1, n, f), n);
    fclose(f);
}

static uint8_t *load(size_t n)
{
    uint8_t *b = malloc(n);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(b, 1, n, f), n);
    fclose(f);
    return b;
}

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/drd-boltfile-%ld.db", (long)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void test_get_and_set_in_place(void **state)
{
    (void)state;
    uint8_t *db = build();
    save(db, NPAGES * PS);
    uint8_t v[32];
    size_t n = 0;
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(v, CI, 8);
    assert_int_equal(dr_boltfile_get(path, "meta", "finishedCompactRev", v, sizeof v, &n), 0);
    assert_int_equal(n, 17);
    assert_int_equal(dr_boltfile_get(path, "key", "/registry/b", v, sizeof v, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(v, "22", 2);

    static const uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(dr_boltfile_set_same_size(path, "meta", "consistent_index", one, 8), 0);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), 0);
    assert_memory_equal(v, one, 8);
    /* exactly those 8 bytes changed */
    uint8_t *after = load(NPAGES * PS);
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < NPAGES * PS; i++)
        if (after[i] != db[i] && diff++ == 0)
            first = i;
    assert_in_range(diff, 1, 8);
    assert_true(first >= 5 * PS && first < 6 * PS);
    free(after);
    free(db);
}

static void test_last_key(void **state)
{
    (void)state;
    uint8_t *db = build();
    save(db, NPAGES * PS);
    char k[32];
    size_t n = 0;
    /* a bucket on its own leaf page, an inline bucket, the top level through its branch root */
    assert_int_equal(dr_boltfile_last_key(path, "key", k, sizeof k, &n), 0);
    assert_int_equal(n, 11);
    assert_memory_equal(k, "/registry/b", 11);
    assert_int_equal(dr_boltfile_last_key(path, "meta", k, sizeof k, &n), 0);
    assert_int_equal(n, 18);
    assert_memory_equal(k, "finishedCompactRev", 18);
    assert_int_equal(dr_boltfile_last_key(path, NULL, k, sizeof k, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(k, "meta", 4);
    /* copied up to cap, full length reported */
    assert_int_equal(dr_boltfile_last_key(path, "key", k, 4, &n), 0);
    assert_int_equal(n, 11);
    assert_memory_equal(k, "/reg", 4);
    /* an empty bucket, an absent one, a value that is not a bucket */
    assert_int_equal(dr_boltfile_last_key(path, "alarm", k, sizeof k, &n), DR_ENOTFOUND);
    assert_non_null(strstr(dr_error_msg(), "bucket 'alarm' is empty"));
    assert_int_equal(dr_boltfile_last_key(path, "members", k, sizeof k, &n), DR_ENOTFOUND);
    /* a damaged page on the way down is DR_EPROTO, not a key */
    p64(db + 6 * PS, 7); /* leaf 6 names page 7 */
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_last_key(path, "key", k, sizeof k, &n), DR_EPROTO);
    free(db);
}

static void test_absent_and_wrong_size(void **state)
{
    (void)state;
    uint8_t *db = build();
    save(db, NPAGES * PS);
    uint8_t v[8];
    size_t n;
    assert_int_equal(dr_boltfile_get(path, "members", "x", v, sizeof v, &n), DR_ENOTFOUND);
    assert_non_null(strstr(dr_error_msg(), "no bucket 'members'"));
    assert_int_equal(dr_boltfile_get(path, "meta", "term", v, sizeof v, &n), DR_ENOTFOUND);
    assert_non_null(strstr(dr_error_msg(), "no key 'term' in bucket 'meta'"));
    assert_int_equal(dr_boltfile_get(path, "key", "/registry/c", v, sizeof v, &n), DR_ENOTFOUND);
    assert_int_equal(dr_boltfile_get(path, "aaa", "x", v, sizeof v, &n), DR_ENOTFOUND);
    assert_int_equal(dr_boltfile_set_same_size(path, "meta", "consistent_index", v, 4), DR_EUSAGE);
    uint8_t *after = load(NPAGES * PS);
    assert_memory_equal(after, db, NPAGES * PS);
    free(after);
    free(db);
}

static void test_meta_choice_and_damage(void **state)
{
    (void)state;
    uint8_t *db = build();
    uint8_t v[8];
    size_t n;
    /* meta 0 (newer) damaged: meta 1 still leads to the same root */
    db[16 + 20] ^= 1;
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), 0);
    /* both damaged */
    db[PS + 16 + 20] ^= 1;
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "no valid meta page"));
    free(db);

    /* the newest meta points at a root past the high-water mark */
    db = build();
    meta(db, 0, 9, 7, 4);
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), 0);
    free(db);

    /* a branch element pointing outside the database */
    db = build();
    p64(db + 3 * PS + 40, 1000);
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    free(db);

    /* a page whose header names another page */
    db = build();
    p64(db + 5 * PS, 6);
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    free(db);

    /* an element whose key runs past the page */
    db = build();
    p32(db + 5 * PS + 16 + 16 + 8, 70000);
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    free(db);

    /* truncated: the meta pages' high-water mark is past the end of the file */
    db = build();
    save(db, 5 * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    free(db);

    /* not a database at all, and a missing file */
    save((const uint8_t *)"hello", 5);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    unlink(path);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n),
                     DR_ENOTFOUND);
}

/* The walk down is iterative and holds one page at a time (issue 10, part 3): a tree a level
 * deeper reads the same, a cycle of branch pages ends at the depth limit, and a node claiming
 * more than the cap on bytes held is refused before it is read. */
static void test_deep_tree_cycle_and_cap(void **state)
{
    (void)state;
    uint8_t *db = build();
    uint8_t v[32];
    size_t n = 0;
    /* root 3 -> branch 7 (the old root) -> leaves 4 and 5 */
    memcpy(db + 7 * PS, db + 3 * PS, PS);
    p64(db + 7 * PS, 7);
    uint8_t *b = db + 3 * PS;
    memset(b, 0, PS);
    p64(b, 3);
    b[8] = 0x01;
    b[10] = 1;
    p32(b + 16, 16); /* element 0: key "alarm" right after it */
    p32(b + 20, 5);
    p64(b + 24, 7);
    memcpy(b + 32, "alarm", 5);
    meta(db, 0, 3, 8, 4);
    meta(db, 1, 3, 8, 3);
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(v, CI, 8);
    assert_int_equal(dr_boltfile_last_key(path, "key", v, sizeof v, &n), 0);
    assert_memory_equal(v, "/registry/b", 11);
    assert_int_equal(dr_boltfile_set_same_size(path, "meta", "consistent_index", CI, 8), 0);

    /* a cycle: both children of branch 7 are page 7 itself */
    p64(db + 7 * PS + 16 + 8, 7);
    p64(db + 7 * PS + 32 + 8, 7);
    save(db, NPAGES * PS);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "deeper than 64 levels"));
    assert_int_equal(dr_boltfile_last_key(path, NULL, v, sizeof v, &n), DR_EPROTO);

    /* page 7 claims 64 MiB of overflow pages, all inside a (sparse) file: over the cap */
    uint64_t over = (64u << 20) / PS, hwm = 8 + over;
    p32(db + 7 * PS + 12, (uint32_t)over);
    meta(db, 0, 3, hwm, 4);
    meta(db, 1, 3, hwm, 3);
    save(db, NPAGES * PS);
    assert_int_equal(truncate(path, (off_t)(hwm * PS)), 0);
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n), DR_EPROTO);
    assert_non_null(strstr(dr_error_msg(), "(page 7)"));
    free(db);
}

static void test_empty(void **state)
{
    (void)state;
    dr_buf b = {0};
    assert_int_equal(dr_boltfile_empty(&b), 0);
    assert_int_equal(b.len, 4 * PS);
    save((const uint8_t *)b.data, b.len);
    uint8_t v[8];
    size_t n;
    assert_int_equal(dr_boltfile_get(path, "meta", "consistent_index", v, sizeof v, &n),
                     DR_ENOTFOUND);
    assert_non_null(strstr(dr_error_msg(), "no bucket 'meta'"));
    /* bbolt's init: meta txids 0 and 1, freelist page 2, root leaf 3, high-water mark 4 */
    const uint8_t *p = (const uint8_t *)b.data;
    assert_int_equal(p[PS + 16 + 48], 1);
    assert_int_equal(p[16 + 16], 3);
    assert_int_equal(p[16 + 40], 4);
    assert_int_equal(p[2 * PS + 8], 0x10);
    assert_int_equal(p[3 * PS + 8], 0x02);
    dr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_and_set_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_and_wrong_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_choice_and_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_tree_cycle_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
