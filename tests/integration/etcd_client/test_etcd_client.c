/*
 * The etcd client against a real etcd server: every RPC drd wraps, and the error translation.
 * Run by tests/integration/etcd_client.sh, which starts the server and passes its URL in
 * DRD_TEST_ETCD (and DRD_TEST_SNAPSHOT: a file written by `etcdctl snapshot save` afterwards to
 * compare, when set).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/core/core.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/etcd/etcd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dr_etcd *E;

static int setup(void **state)
{
    (void)state;
    dr_etcd_opts o = {.endpoints = getenv("DRD_TEST_ETCD"), .timeout_ms = 5000};
    return dr_etcd_open(&E, &o);
}

static int teardown(void **state)
{
    (void)state;
    dr_etcd_close(E);
    return 0;
}

static void put(const char *k, const char *v)
{
    assert_int_equal(dr_etcd_put(E, k, strlen(k), v, strlen(v), 0, NULL), 0);
}

static void test_range_paged(void **state)
{
    (void)state;
    char k[64], v[64];
    for (int i = 0; i < 25; i++) {
        snprintf(k, sizeof k, "/t/range/%03d", i);
        snprintf(v, sizeof v, "value-%d", i);
        put(k, v);
    }
    uint8_t end[64];
    size_t el;
    dr_etcd_prefix_end("/t/range/", 9, end, &el);
    dr_etcd_range_req q = {
        .key = "/t/range/", .key_len = 9, .range_end = end, .range_end_len = el, .limit = 10};
    dr_etcd_range_res r;
    assert_int_equal(dr_etcd_range(E, &q, &r), 0);
    assert_int_equal(r.n_kvs, 10);
    assert_true(r.more);
    assert_int_equal(r.count, 25);
    assert_memory_equal(r.kvs[0].key, "/t/range/000", 12);
    assert_memory_equal(r.kvs[9].value, "value-9", 7);
    int64_t rev = r.header.revision;
    dr_etcd_range_res_free(&r);
    /* count only and keys only */
    q.limit = 0;
    q.count_only = 1;
    assert_int_equal(dr_etcd_range(E, &q, &r), 0);
    assert_int_equal(r.count, 25);
    assert_int_equal(r.n_kvs, 0);
    dr_etcd_range_res_free(&r);
    q.count_only = 0;
    q.keys_only = 1;
    assert_int_equal(dr_etcd_range(E, &q, &r), 0);
    assert_int_equal(r.n_kvs, 25);
    assert_int_equal(r.kvs[3].value_len, 0);
    dr_etcd_range_res_free(&r);
    /* at a past revision: overwrite, then read the old value */
    put("/t/range/000", "new");
    q.keys_only = 0;
    q.revision = rev;
    q.limit = 1;
    assert_int_equal(dr_etcd_range(E, &q, &r), 0);
    assert_memory_equal(r.kvs[0].value, "value-0", 7);
    dr_etcd_range_res_free(&r);
    /* a future revision is invalid, not a crash */
    q.revision = rev + 1000000;
    assert_int_equal(dr_etcd_range(E, &q, &r), DR_EINVAL);
}

static void test_txn(void **state)
{
    (void)state;
    dr_etcd_txn *t;
    dr_etcd_txn_res res;
    dr_etcd_header h;
    put("/t/txn/a", "1");
    assert_int_equal(dr_etcd_put(E, "/t/txn/a", 8, "2", 1, 0, &h), 0);
    assert_int_equal(dr_etcd_txn_new(&t), 0);
    /* guard holds: mod_revision of a is h.revision */
    dr_etcd_txn_compare(t, "/t/txn/a", 8, DR_CMP_MOD, DR_CMP_EQUAL, h.revision);
    dr_etcd_txn_compare_value(t, "/t/txn/a", 8, DR_CMP_EQUAL, "2", 1);
    dr_etcd_txn_put(t, DR_TXN_SUCCESS, "/t/txn/b", 8, "bb", 2, 0);
    dr_etcd_txn_delete(t, DR_TXN_SUCCESS, "/t/txn/a", 8, NULL, 0);
    dr_etcd_txn_get(t, DR_TXN_FAILURE, "/t/txn/a", 8);
    assert_int_equal(dr_etcd_txn_nops(t), 2);
    assert_int_equal(dr_etcd_txn_do(E, t, &res), 0);
    assert_true(res.succeeded);
    assert_int_equal(res.header.revision, h.revision + 1);
    assert_int_equal(dr_etcd_txn_res_deleted(&res, 1), 1);
    dr_etcd_txn_res_free(&res);
    /* same txn again: guard fails, failure branch reads a (gone) */
    assert_int_equal(dr_etcd_txn_do(E, t, &res), 0);
    assert_false(res.succeeded);
    dr_etcd_kv tmp;
    assert_null(dr_etcd_txn_res_kv(&res, 0, &tmp));
    dr_etcd_txn_res_free(&res);
    /* missing key compares as mod_revision 0 */
    dr_etcd_txn_reset(t);
    dr_etcd_txn_compare(t, "/t/txn/a", 8, DR_CMP_MOD, DR_CMP_EQUAL, 0);
    dr_etcd_txn_get(t, DR_TXN_SUCCESS, "/t/txn/b", 8);
    assert_int_equal(dr_etcd_txn_do(E, t, &res), 0);
    assert_true(res.succeeded);
    const dr_etcd_kv *kv = dr_etcd_txn_res_kv(&res, 0, &tmp);
    assert_non_null(kv);
    assert_memory_equal(kv->value, "bb", 2);
    dr_etcd_txn_res_free(&res);
    /* too many operations: the server's --max-txn-ops (128) */
    dr_etcd_txn_reset(t);
    char k[32];
    for (int i = 0; i < 129; i++) {
        snprintf(k, sizeof k, "/t/txn/many/%d", i);
        dr_etcd_txn_put(t, DR_TXN_SUCCESS, k, strlen(k), "x", 1, 0);
    }
    assert_int_equal(dr_etcd_txn_do(E, t, &res), DR_ETOOMANYOPS);
    /* a pipeline: 200 puts in flight, all complete */
    dr_etcd_pipe *p;
    assert_int_equal(dr_etcd_pipe_new(E, &p), 0);
    for (intptr_t i = 0; i < 200; i++) {
        dr_etcd_txn_reset(t);
        snprintf(k, sizeof k, "/t/pipe/%03d", (int)i);
        dr_etcd_txn_put(t, DR_TXN_SUCCESS, k, strlen(k), "p", 1, 0);
        assert_int_equal(dr_etcd_pipe_submit(p, t, (void *)i), 0);
    }
    int seen = 0, trc;
    void *user;
    while (dr_etcd_pipe_inflight(p) > 0) {
        assert_int_equal(dr_etcd_pipe_next(p, 5000, &user, &trc, &res), 0);
        assert_int_equal(trc, 0);
        assert_true(res.succeeded);
        dr_etcd_txn_res_free(&res);
        seen++;
    }
    assert_int_equal(seen, 200);
    assert_int_equal(dr_etcd_pipe_next(p, 10, &user, &trc, &res), DR_ENOTFOUND);
    dr_etcd_pipe_free(p);
    dr_etcd_txn_free(t);
}

static void test_watch(void **state)
{
    (void)state;
    dr_etcd_header h;
    assert_int_equal(dr_etcd_put(E, "/t/w/a", 6, "1", 1, 0, &h), 0);
    put("/t/w/a", "2");
    assert_int_equal(dr_etcd_delete(E, "/t/w/a", 6, NULL, 0, NULL, NULL), 0);
    uint8_t end[16];
    size_t el;
    dr_etcd_prefix_end("/t/w/", 5, end, &el);
    dr_etcd_watch_opts wo = {.key = "/t/w/",
                             .key_len = 5,
                             .range_end = end,
                             .range_end_len = el,
                             .start_revision = h.revision,
                             .prev_kv = 1};
    dr_etcd_watch *w;
    assert_int_equal(dr_etcd_watch_open(E, &wo, &w, NULL), 0);
    int got = 0;
    while (got < 3) {
        dr_etcd_watch_res r;
        assert_int_equal(dr_etcd_watch_next(w, 5000, &r), 0);
        for (size_t i = 0; i < r.n_events; i++, got++) {
            const dr_etcd_event *ev = &r.events[i];
            assert_int_equal(ev->kv.mod_revision, h.revision + got);
            assert_int_equal(ev->type, got == 2 ? DR_EV_DELETE : DR_EV_PUT);
            if (got == 1) {
                assert_true(ev->has_prev);
                assert_memory_equal(ev->prev_kv.value, "1", 1);
            }
        }
        dr_etcd_watch_res_free(&r);
    }
    /* nothing more: a timeout keeps the stream usable */
    dr_etcd_watch_res r;
    assert_int_equal(dr_etcd_watch_next(w, 200, &r), DR_ETIMEOUT);
    assert_int_equal(dr_etcd_watch_request_progress(w), 0);
    assert_int_equal(dr_etcd_watch_next(w, 5000, &r), 0);
    assert_int_equal(r.n_events, 0);
    assert_true(r.header.revision >= h.revision + 2);
    dr_etcd_watch_res_free(&r);
    put("/t/w/b", "x");
    assert_int_equal(dr_etcd_watch_next(w, 5000, &r), 0);
    assert_int_equal(r.n_events, 1);
    dr_etcd_watch_res_free(&r);
    dr_etcd_watch_close(w);
    /* compaction: a watch below the compact revision is refused with it */
    dr_etcd_header h2;
    assert_int_equal(dr_etcd_put(E, "/t/w/c", 6, "c", 1, 0, &h2), 0);
    assert_int_equal(dr_etcd_compact(E, h2.revision, 1), 0);
    wo.start_revision = h.revision;
    int64_t cr = 0;
    int rc = dr_etcd_watch_open(E, &wo, &w, &cr);
    if (rc == 0) { /* etcd 3.4 answers "created", then cancels with the compact revision */
        rc = dr_etcd_watch_next(w, 5000, &r);
        cr = r.compact_revision;
        dr_etcd_watch_close(w);
    }
    assert_int_equal(rc, DR_ECOMPACTED);
    assert_int_equal(cr, h2.revision);
    dr_etcd_range_req q = {.key = "/t/w/c", .key_len = 6, .revision = h.revision};
    dr_etcd_range_res rr;
    assert_int_equal(dr_etcd_range(E, &q, &rr), DR_ECOMPACTED);
}

static void test_leases(void **state)
{
    (void)state;
    int64_t id = 0x7e57, got = 0, ttl = 0, granted = 0, nkeys = 0;
    assert_int_equal(dr_etcd_lease_grant(E, id, 30, &got), 0);
    assert_int_equal(got, id);
    assert_int_equal(dr_etcd_put(E, "/t/l/a", 6, "v", 1, id, NULL), 0);
    assert_int_equal(dr_etcd_lease_ttl(E, id, &ttl, &granted, &nkeys), 0);
    assert_int_equal(granted, 30);
    assert_int_equal(nkeys, 1);
    assert_true(ttl > 0 && ttl <= 30);
    assert_int_equal(dr_etcd_lease_keepalive(E, id, &ttl), 0);
    assert_int_equal(ttl, 30);
    int64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(dr_etcd_lease_list(E, &ids, &n), 0);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= ids[i] == id;
    free(ids);
    assert_true(found);
    assert_int_equal(dr_etcd_lease_revoke(E, id), 0);
    assert_int_equal(dr_etcd_lease_ttl(E, id, &ttl, NULL, NULL), DR_ENOTFOUND);
    assert_int_equal(dr_etcd_lease_revoke(E, id), DR_ENOTFOUND);
    assert_int_equal(dr_etcd_lease_keepalive(E, id, &ttl), DR_ENOTFOUND);
    dr_etcd_range_req q = {.key = "/t/l/a", .key_len = 6};
    dr_etcd_range_res rr;
    assert_int_equal(dr_etcd_range(E, &q, &rr), 0);
    assert_int_equal(rr.n_kvs, 0); /* the revoke deleted the key */
    dr_etcd_range_res_free(&rr);
}

typedef struct snap {
    FILE *f;
    uint64_t n;
    uint64_t announced;
    dr_sha256 *h; /* of every byte the sink saw */
} snap;

static int snap_size(void *ctx, uint64_t total)
{
    snap *s = ctx;
    s->announced = total;
    return s->n == 0 ? 0 : DR_EINVAL; /* before the first byte */
}

static int snap_sink(void *ctx, const void *d, size_t n)
{
    snap *s = ctx;
    s->n += n;
    assert_int_equal(dr_sha256_update(s->h, d, n), 0);
    return s->f && fwrite(d, 1, n, s->f) != n ? DR_EIO : 0;
}

static void test_maintenance(void **state)
{
    (void)state;
    dr_etcd_status st;
    assert_int_equal(dr_etcd_status_get(E, &st), 0);
    assert_true(st.header.revision > 1);
    assert_true(st.db_size > 0);
    assert_non_null(strstr(st.version, "3."));
    uint32_t h1 = 0, h2 = 0;
    int64_t cr = -1;
    assert_int_equal(dr_etcd_hashkv(E, st.header.revision, &h1, &cr, NULL), 0);
    assert_int_equal(dr_etcd_hashkv(E, st.header.revision, &h2, NULL, NULL), 0);
    assert_int_equal(h1, h2);
    assert_true(cr >= 0);
    dr_etcd_member *m = NULL;
    size_t n = 0;
    assert_int_equal(dr_etcd_member_list(E, &m, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(m[0].client_urls, "127.0.0.1"));
    free(m);
    const char *out = getenv("DRD_TEST_SNAPSHOT_OUT");
    snap s = {.f = out ? fopen(out, "wb") : NULL};
    assert_int_equal(dr_sha256_new(&s.h), 0);
    uint64_t size = 0;
    uint8_t whole[32], seen[32];
    assert_int_equal(dr_etcd_snapshot_sized(E, snap_size, snap_sink, &s, &size, whole, NULL), 0);
    assert_int_equal(s.announced, size);             /* the size announced up front is exact */
    assert_int_equal(dr_sha256_final(s.h, seen), 0); /* sha256 of the stream, trailer included */
    assert_memory_equal(whole, seen, 32);
    dr_sha256_free(s.h);
    if (s.f)
        fclose(s.f);
    assert_int_equal(size, s.n);
    assert_true(size > 32);
}

static void test_errors(void **state)
{
    (void)state;
    dr_etcd *x = NULL;
    dr_etcd_opts o = {.endpoints = "http://127.0.0.1:1", .timeout_ms = 2000};
    assert_int_equal(dr_etcd_open(&x, &o), DR_EUNAVAILABLE);
    assert_non_null(strstr(dr_error_msg(), "127.0.0.1:1"));
    o.endpoints = "127.0.0.1:2379";
    assert_int_equal(dr_etcd_open(&x, &o), DR_EUSAGE);
    o.endpoints = "http://127.0.0.1";
    assert_int_equal(dr_etcd_open(&x, &o), DR_EUSAGE);
    o.endpoints = "http://127.0.0.1:2379";
    o.cacert = "/nonexistent/ca.pem";
    assert_int_equal(dr_etcd_open(&x, &o), DR_EUSAGE);
    /* an endpoint list fails over to the live one */
    char list[256];
    snprintf(list, sizeof list, "http://127.0.0.1:1,%s", getenv("DRD_TEST_ETCD"));
    dr_etcd_opts ok = {.endpoints = list, .timeout_ms = 2000};
    assert_int_equal(dr_etcd_open(&x, &ok), 0);
    dr_etcd_status st;
    assert_int_equal(dr_etcd_status_get(x, &st), 0);
    dr_etcd_close(x);
    /* an empty key is an invalid argument */
    assert_int_equal(dr_etcd_put(E, "", 0, "v", 1, 0, NULL), DR_EINVAL);
}

int main(void)
{
    if (!getenv("DRD_TEST_ETCD")) {
        fprintf(stderr, "DRD_TEST_ETCD is not set\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_paged), cmocka_unit_test(test_txn),
        cmocka_unit_test(test_watch),       cmocka_unit_test(test_leases),
        cmocka_unit_test(test_maintenance), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
