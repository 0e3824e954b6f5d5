/*
 * fuzz_seeds DIR: writes the generated seed inputs of the fuzz targets into DIR/<target>/ (the
 * checked-in tests/fuzz/corpus), made by drd's own writers so that they are real examples of
 * what a store holds: manifests, IDs, segment records, encrypted objects under the fixed test
 * keyring of fuzz_crypt.c, containers (tar and tar+zstd), an empty bbolt database. The seeds
 * written by hand (S3 answers, credentials, lock bodies, requests) and the etcd snapshot live
 * next to them and are not touched. Must never write outside DIR.
 */
#include "drd/lib/archive/archive.h"
#include "drd/lib/boltfile/boltfile.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/repo/repo.h"
#include "drd/lib/delta/delta.h"
#include "drd/lib/zstd/zstd.h"
#include "replicate/volume/vol_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    if (dr_fs_mkdirs(path, 0755) < 0)
        goto fail;
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        goto fail;
    return;
fail:
    fprintf(stderr, "fuzz_seeds: cannot write %s/%s: %s\n", target, name, dr_error_msg());
    exit(1);
}

static void check(int rc)
{
    if (rc < 0) {
        fprintf(stderr, "fuzz_seeds: %s\n", dr_error_msg());
        exit(1);
    }
}

static void manifests(const dr_keyring *k)
{
    dr_manifest m = {.format = DR_REPO_FORMAT,
                     .kind = DR_KIND_FULL,
                     .rev_start = 1234,
                     .rev_end = 1234,
                     .created_ms = 1764633600000,
                     .cluster_id = 0xcdf818194e3a8c32,
                     .member_id = 0x8e9e05c52164694d,
                     .compact_revision = 1000,
                     .plain_bytes = 20512,
                     .stored_bytes = 4731,
                     .key_count = 42,
                     .has_hashkv = 1,
                     .hashkv = 3141592653u};
    dr_repo_make_id(m.kind, m.rev_start, m.rev_end, m.created_ms, m.id);
    snprintf(m.data, sizeof m.data, "data/save-1764633600000-0a1b2c3d4e5f.drd");
    snprintf(m.etcd_version, sizeof m.etcd_version, "3.4.23");
    snprintf(m.etcd_endpoint, sizeof m.etcd_endpoint, "https://10.0.0.1:2379");
    memset(m.plain_sha256, 'a', 64);
    memset(m.stored_sha256, 'b', 64);
    snprintf(m.compression, sizeof m.compression, "zstd");
    snprintf(m.encryption, sizeof m.encryption, "aes-256-gcm");
    snprintf(m.key_id, sizeof m.key_id, "fuzz-key");
    snprintf(m.labels, sizeof m.labels, "env=prod,team=dr");
    dr_buf b = {0};
    check(dr_manifest_seal_json(&m, k, &b));
    put("manifest", "full.json", b.data, b.len);
    dr_manifest back; /* a seed the parser refuses would seed nothing */
    check(dr_manifest_from_json(b.data, b.len, &back));
    check(dr_manifest_check_mac(&back, k));
    put("repo_id", "full", m.id, strlen(m.id));
    /* the inner copy sealed in the container: no stored fields, no mac */
    dr_manifest in = m;
    in.stored_bytes = 0;
    in.stored_sha256[0] = 0;
    b.len = 0;
    check(dr_manifest_to_json(&in, &b));
    put("manifest", "inner.json", b.data, b.len);
    check(dr_manifest_from_json(b.data, b.len, &back));
    check(dr_manifest_compare_inner(&m, &back));
    b.len = 0;
    m.kind = DR_KIND_INCR;
    m.rev_start = 1235;
    m.rev_end = 1300;
    m.has_hashkv = 0;
    m.key_count = -1;
    m.events = 80;
    m.leases = 2;
    m.compact_revision = 0;
    snprintf(m.compression, sizeof m.compression, "none");
    snprintf(m.encryption, sizeof m.encryption, "none");
    m.key_id[0] = 0;
    m.labels[0] = 0;
    m.created_ms += 60000;
    dr_repo_make_id(m.kind, m.rev_start, m.rev_end, m.created_ms, m.id);
    check(dr_manifest_to_json(&m, &b));
    put("manifest", "incr.json", b.data, b.len);
    check(dr_manifest_from_json(b.data, b.len, &back));
    put("repo_id", "incr", m.id, strlen(m.id));
    dr_buf_free(&b);
}

/* the events of revisions 10..12: puts, a delete, a lease */
static void segment(dr_buf *b)
{
    dr_seg_event put1 = {.type = 'P',
                         .key = (const uint8_t *)"/registry/pods/a",
                         .key_len = 16,
                         .value = (const uint8_t *)"{\"spec\":1}",
                         .value_len = 10,
                         .create_revision = 10,
                         .mod_revision = 10,
                         .version = 1};
    dr_seg_event lease = {.type = 'L', .lease = 0x694d7a1b2c3d4e5f, .ttl = 60};
    dr_seg_event put2 = put1;
    put2.mod_revision = 11;
    put2.version = 2;
    put2.lease = lease.lease;
    dr_seg_event del = {.type = 'D', .key = (const uint8_t *)"/registry/pods/a", .key_len = 16};
    check(dr_seg_encode_rev(b, 10, 1));
    check(dr_seg_encode_event(b, &put1));
    check(dr_seg_encode_rev(b, 11, 2));
    check(dr_seg_encode_event(b, &lease));
    check(dr_seg_encode_event(b, &put2));
    check(dr_seg_encode_rev(b, 12, 1));
    check(dr_seg_encode_event(b, &del));
}

/* a container: the entries a segment has, as tar (+ zstd) */
static void container(dr_compress c, const dr_buf *events, char **data, size_t *len)
{
    dr_sink *out = NULL;
    dr_archive_writer *w = NULL;
    static const char inner[] = "{\"format\": 1}\n";
    check(dr_buf_sink_new(1 << 20, &out));
    check(dr_archive_writer_new(out, c, 0, &w));
    check(dr_archive_entry_begin(w, "events-000000", events->len, 1764633600));
    check(dr_archive_entry_write(w, events->data, events->len));
    check(dr_archive_entry_end(w));
    check(dr_archive_entry_begin(w, "manifest.json", sizeof inner - 1, 1764633600));
    check(dr_archive_entry_write(w, inner, sizeof inner - 1));
    check(dr_archive_entry_end(w));
    check(dr_archive_writer_finish(w));
    dr_archive_writer_free(w);
    dr_buf_sink_take(out, data, len);
    dr_sink_free(out);
}

static void encrypted(const dr_keyring *k, const char *name, const void *plain, size_t len)
{
    dr_sink *out = NULL, *enc = NULL;
    char *data = NULL;
    size_t n = 0;
    check(dr_buf_sink_new(1 << 20, &out));
    check(dr_encrypt_sink_new(out, k, &enc));
    check(dr_sink_write(enc, plain, len));
    check(dr_sink_finish(enc));
    dr_buf_sink_take(out, &data, &n);
    put("crypt", name, data, n);
    free(data);
    dr_sink_free(enc);
    dr_sink_free(out);
}

/* What a volume replication peer sends (fuzz_volume): the first byte picks the parser. */
static void put_tagged(const char *name, uint8_t tag, const void *data, size_t len)
{
    dr_buf b = {0};
    check(dr_buf_append(&b, &tag, 1));
    check(dr_buf_append(&b, data, len));
    put("volume", name, b.data, b.len);
    dr_buf_free(&b);
}

/* Runs a delta job over data into memory. */
static void run_job(dr_delta_job *j, const void *data, size_t len, char **out, size_t *olen)
{
    dr_sink *s = NULL;
    check(dr_buf_sink_new(1 << 20, &s));
    check(dr_delta_job_feed(j, data, len, s));
    check(dr_delta_job_finish(j, s));
    dr_buf_sink_take(s, out, olen);
    dr_sink_free(s);
    dr_delta_job_free(j);
}

static void volume(void)
{
    static const vol_entry ents[] = {
        {.kind = K_FILE, .mode = 0644, .mtime_s = 1764633600, .size = 12, .path = "dir/file"},
        {.kind = K_DIR, .mode = 0755, .path = ""},
        {.kind = K_SYMLINK, .mode = 0777, .path = "link", .target = "/etc/passwd"},
        {.kind = K_HARDLINK, .mode = 0644, .path = "a/b", .target = "dir/file"},
        {.kind = K_FILE, .mode = 0600, .size = 3, .path = "sum", .has_sha = 1},
    };
    static const char *names[] = {"entry-file", "entry-root", "entry-symlink", "entry-hardlink",
                                  "entry-sha"};
    dr_buf b = {0};
    for (size_t i = 0; i < sizeof ents / sizeof *ents; i++) {
        check(vol_entry_encode(&ents[i], &b));
        put_tagged(names[i], 0, b.data, b.len);
    }
    b.len = 0;
    vol_put_u64(&b, 4096);
    vol_put_u8(&b, 0);
    vol_put_u32(&b, 5);
    check(dr_buf_append(&b, "hello", 5));
    put_tagged("data-frame", 1, b.data, b.len);
    dr_buf_free(&b);
    /* the basis fuzz_volume patches: bytes i*7 for 4096 bytes; a new version with a change */
    uint8_t basis[4096], nw[4200];
    for (int i = 0; i < 4096; i++)
        basis[i] = (uint8_t)(i * 7);
    memcpy(nw, basis, 2000);
    memcpy(nw + 2000, "CHANGED", 7);
    memcpy(nw + 2007, basis + 2000, 2096);
    memset(nw + 4103, 'z', sizeof nw - 4103);
    dr_delta_job *j = NULL;
    dr_delta_sig *sig = NULL;
    char *sigb, *delta;
    size_t sl, dl;
    check(dr_delta_sig_job_new(sizeof basis, &j));
    run_job(j, basis, sizeof basis, &sigb, &sl);
    put_tagged("signature", 2, sigb, sl);
    check(dr_delta_load_job_new(&sig, &j));
    check(dr_delta_job_feed(j, sigb, sl, NULL));
    check(dr_delta_job_finish(j, NULL));
    dr_delta_job_free(j);
    check(dr_delta_delta_job_new(sig, &j));
    run_job(j, nw, sizeof nw, &delta, &dl);
    put_tagged("delta", 3, delta, dl);
    dr_delta_sig_free(sig);
    free(sigb);
    free(delta);
    dr_zstd *z = NULL;
    uint8_t frame[8192];
    size_t fl;
    check(dr_zstd_new(3, &z));
    check(dr_zstd_compress(z, nw, sizeof nw, frame, sizeof frame, &fl));
    put_tagged("zstd", 4, frame, fl);
    dr_zstd_free(z);
    /* RUNS of a 300-chunk file: chunks 0-1, 7, 299 */
    b.len = 0;
    vol_put_u8(&b, 300 >> 8);
    vol_put_u8(&b, 300 & 255);
    const uint32_t runs[] = {0, 2, 7, 1, 299, 1};
    for (size_t i = 0; i < 6; i++)
        vol_put_u32(&b, runs[i]);
    put_tagged("runs", 5, b.data, b.len);
    dr_buf_free(&b);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds DIR KEYRING (the keyring of fuzz_crypt.c)\n");
        return 2;
    }
    dir = argv[1];
    dr_keyring *k = NULL;
    check(dr_keyring_load(argv[2], &k));
    manifests(k);
    volume();
    dr_buf ev = {0};
    segment(&ev);
    put("segment", "three-revisions", ev.data, ev.len);
    char *data = NULL;
    size_t len = 0;
    container(DR_COMPRESS_NONE, &ev, &data, &len);
    put("archive", "segment.tar", data, len);
    free(data);
    /* a name longer than ustar's 100 bytes: the writer adds a pax header */
    {
        dr_sink *out = NULL;
        dr_archive_writer *w = NULL;
        char name[160];
        memset(name, 'n', sizeof name - 1);
        name[sizeof name - 1] = 0;
        check(dr_buf_sink_new(1 << 20, &out));
        check(dr_archive_writer_new(out, DR_COMPRESS_NONE, 0, &w));
        check(dr_archive_entry_begin(w, name, 5, 1764633600));
        check(dr_archive_entry_write(w, "hello", 5));
        check(dr_archive_entry_end(w));
        check(dr_archive_writer_finish(w));
        dr_archive_writer_free(w);
        dr_buf_sink_take(out, &data, &len);
        dr_sink_free(out);
        put("archive", "pax-long-name.tar", data, len);
        free(data);
    }
    container(DR_COMPRESS_ZSTD, &ev, &data, &len);
    put("archive", "segment.tar.zst", data, len);
    encrypted(k, "empty", "", 0);
    encrypted(k, "container", data, len);
    free(data);
    char *big = calloc(1, DR_CRYPT_CHUNK + 100);
    if (!big)
        return 1;
    encrypted(k, "two-chunks", big, DR_CRYPT_CHUNK + 100);
    free(big);
    dr_keyring_free(k);
    dr_buf db = {0};
    check(dr_boltfile_empty(&db));
    put("boltfile", "empty.db", db.data, db.len);
    dr_buf_free(&db);
    dr_buf_free(&ev);
    return 0;
}
