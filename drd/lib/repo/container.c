/*
 * Containers: the filter chains that write and read a repository object.
 *   write: archive (tar, zstd) -> encrypt -> hash+count -> store upload -> manifest -> catalog
 *   read:  store download -> hash+count -> decrypt -> archive
 * Memory is bounded by the filters' buffers. Must never make an object visible before its data
 * is complete, and never report a read as good before the whole stored object was hashed and
 * (when encrypted) its final chunk authenticated.
 */
#include "drd/lib/catalog/catalog.h"
#include "drd/lib/repo/repo.h"
#include "repo_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dr_repo_writer {
    dr_repo *r;
    dr_sink *upload; /* store */
    dr_sink *tap;    /* hash of the stored bytes */
    dr_sink *enc;    /* NULL without encryption */
    dr_archive_writer *ar;
    dr_compress c;
    char data[160];
    int committed;
};

int dr_repo_writer_new(dr_repo *r, const char *job, dr_compress c, dr_repo_writer **out)
{
    int rc = 0;
    dr_repo_writer *w = calloc(1, sizeof *w);
    if (!w)
        return dr_error_set(DR_ENOMEM, "out of memory");
    w->r = r;
    w->c = c;
    uint8_t rnd[6];
    char hex[13];
    if ((rc = dr_random_bytes(rnd, sizeof rnd)) < 0)
        goto out;
    dr_hex(rnd, sizeof rnd, hex);
    snprintf(w->data, sizeof w->data, REPO_DATA "%s-%013lld-%s.drd", job, (long long)dr_wall_ms(),
             hex);
    if ((rc = dr_store_put(r->store, w->data, &w->upload)) < 0)
        goto out;
    if ((rc = dr_hash_sink_new(w->upload, &w->tap)) < 0)
        goto out;
    dr_sink *head = w->tap;
    if (!r->no_encryption) {
        if (!r->keys) {
            rc = dr_error_set(DR_EUSAGE, "writing needs a --key-file (or --no-encryption)");
            goto out;
        }
        if ((rc = dr_encrypt_sink_new(w->tap, r->keys, &w->enc)) < 0)
            goto out;
        head = w->enc;
    }
    rc = dr_archive_writer_new(head, c, 0, &w->ar);
out:
    if (rc < 0)
        dr_repo_writer_free(w);
    else
        *out = w;
    return rc;
}

dr_archive_writer *dr_repo_writer_archive(dr_repo_writer *w)
{
    return w->ar;
}

/* The fields the writer decides, known before the content is: the sealed inner manifest holds
 * them too, so that a reader can hold the outer manifest to every one of them. */
static void writer_fields(dr_repo_writer *w, dr_manifest *m)
{
    m->format = DR_REPO_FORMAT;
    snprintf(m->data, sizeof m->data, "%s", w->data);
    snprintf(m->compression, sizeof m->compression, "%s",
             w->c == DR_COMPRESS_ZSTD ? "zstd" : "none");
    if (w->enc) {
        snprintf(m->encryption, sizeof m->encryption, "aes-256-gcm");
        snprintf(m->key_id, sizeof m->key_id, "%s", dr_keyring_current(w->r->keys));
    } else {
        snprintf(m->encryption, sizeof m->encryption, "none");
        m->key_id[0] = 0;
    }
    if (!m->drd_version[0])
        snprintf(m->drd_version, sizeof m->drd_version, "%s", DRD_VERSION);
}

int dr_repo_writer_seal(dr_repo_writer *w, dr_manifest *m, int64_t mtime)
{
    writer_fields(w, m);
    dr_buf b = {0};
    int rc = dr_manifest_to_json(m, &b);
    if (rc == 0)
        rc = dr_archive_entry_begin(w->ar, "manifest.json", b.len, mtime);
    if (rc == 0)
        rc = dr_archive_entry_write(w->ar, b.data, b.len);
    if (rc == 0)
        rc = dr_archive_entry_end(w->ar);
    dr_buf_free(&b);
    return rc;
}

int dr_repo_writer_commit(dr_repo_writer *w, dr_manifest *m)
{
    int rc = dr_archive_writer_finish(w->ar); /* finishes enc -> tap -> upload */
    if (rc < 0)
        return rc;
    uint8_t digest[32];
    dr_hash_sink_result(w->tap, digest, &m->stored_bytes);
    dr_hex(digest, 32, m->stored_sha256);
    writer_fields(w, m);
    dr_buf b = {0};
    char name[256];
    snprintf(name, sizeof name, REPO_MANIFESTS "%s.json", m->id);
    rc = dr_manifest_seal_json(m, w->r->keys, &b);
    if (rc == 0)
        rc = dr_store_put_buf(w->r->store, name, b.data, b.len);
    if (rc < 0) {
        dr_buf_free(&b);
        return dr_error_wrap(rc, "cannot write manifest %s", name);
    }
    w->committed = 1;
    /* the snapshot exists now; a catalog failure only delays its listing until the next sync */
    dr_manifest parsed;
    if (dr_manifest_from_json(b.data, b.len, &parsed) < 0 ||
        repo_catalog_put(w->r, &parsed, b.data) < 0) {
        dr_warn("catalog: %s (the next command re-syncs it from the store)", dr_error_msg());
        dr_error_clear();
    }
    dr_buf_free(&b);
    return 0;
}

void dr_repo_writer_free(dr_repo_writer *w)
{
    if (!w)
        return;
    dr_archive_writer_free(w->ar);
    dr_sink_free(w->enc);
    dr_sink_free(w->tap);
    dr_sink_free(w->upload); /* unfinished: the upload is abandoned */
    free(w);
}

/* ---- reading ---- */

typedef struct hash_source {
    dr_source base;
    dr_source *in;
    dr_sha256 *h;
    uint64_t bytes;
    dr_progress *progress;
} hash_source;

static int hash_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    hash_source *s = (hash_source *)base;
    int rc = dr_source_read(s->in, buf, cap, n);
    if (rc == 0 && *n) {
        s->bytes += *n;
        dr_progress_add(s->progress, *n);
        rc = dr_sha256_update(s->h, buf, *n);
    }
    return rc;
}

static void hash_free(dr_source *base)
{
    hash_source *s = (hash_source *)base;
    dr_sha256_free(s->h);
    free(s);
}

static const dr_source_ops hash_ops = {hash_read, hash_free};

struct dr_repo_reader {
    dr_manifest m;
    dr_source *download;
    hash_source *hash;
    dr_source *dec; /* NULL when not encrypted */
    dr_archive_reader *ar;
};

int dr_repo_reader_new(dr_repo *r, const dr_manifest *m, dr_repo_reader **out)
{
    int rc = 0;
    dr_repo_reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return dr_error_set(DR_ENOMEM, "out of memory");
    rd->m = *m;
    /* the reader decides how to read, not the object: its keyring and --allow-plaintext */
    int encrypted = strcmp(m->encryption, "none") != 0;
    if ((rc = dr_repo_trust(r, m)) < 0)
        goto out;
    rc = dr_store_get(r->store, m->data, 0, 0, &rd->download);
    if (rc == DR_ENOTFOUND)
        rc = dr_error_set(DR_ENOTFOUND, "%s: its data object %s is missing from the store", m->id,
                          m->data);
    if (rc < 0)
        goto out;
    if (!(rd->hash = calloc(1, sizeof *rd->hash))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    rd->hash->base.ops = &hash_ops;
    rd->hash->in = rd->download;
    rd->hash->progress = r->progress;
    if ((rc = dr_sha256_new(&rd->hash->h)) < 0)
        goto out;
    dr_source *head = &rd->hash->base;
    if (encrypted) {
        if ((rc = dr_decrypt_source_new(head, r->keys, &rd->dec)) < 0)
            goto out;
        if (strcmp(dr_decrypt_source_key(rd->dec), m->key_id) != 0) {
            rc = dr_error_set(DR_ECHECKSUM,
                              "%s: the data is encrypted under key '%s' but the manifest says '%s'",
                              m->id, dr_decrypt_source_key(rd->dec), m->key_id);
            goto out;
        }
        head = rd->dec;
    }
    rc = dr_archive_reader_new(head, &rd->ar);
out:
    if (rc < 0) {
        if (!strstr(dr_error_msg(), m->id))
            dr_error_wrap(rc, "%s", m->id);
        dr_repo_reader_free(rd);
    } else {
        *out = rd;
    }
    return rc;
}

dr_archive_reader *dr_repo_reader_archive(dr_repo_reader *rd)
{
    return rd->ar;
}

int dr_repo_reader_finish(dr_repo_reader *rd)
{
    char name[256];
    uint64_t size;
    int rc;
    /* the manifest was the last entry: anything after it is not drd's (and never inflated) */
    if ((rc = dr_archive_next(rd->ar, name, sizeof name, &size)) == 0)
        return dr_error_set(DR_EPROTO, "%s: unexpected entry '%.64s' after the manifest", rd->m.id,
                            name);
    if (rc != DR_ENOTFOUND)
        return rc;
    dr_error_clear();
    /* the tar end padding and, when encrypted, the final chunk's authentication */
    char buf[16384];
    size_t n;
    dr_source *head = rd->dec ? rd->dec : &rd->hash->base;
    do {
        if ((rc = dr_source_read(head, buf, sizeof buf, &n)) < 0)
            return rc;
    } while (n);
    uint8_t digest[32];
    char hex[65];
    if ((rc = dr_sha256_final(rd->hash->h, digest)) < 0)
        return rc;
    dr_hex(digest, 32, hex);
    if (rd->hash->bytes != rd->m.stored_bytes)
        return dr_error_set(DR_ECHECKSUM, "%s: stored object has %llu bytes, manifest says %llu",
                            rd->m.id, (unsigned long long)rd->hash->bytes,
                            (unsigned long long)rd->m.stored_bytes);
    if (strcmp(hex, rd->m.stored_sha256) != 0)
        return dr_error_set(DR_ECHECKSUM,
                            "%s: stored object sha256 %s does not match the "
                            "manifest's %s",
                            rd->m.id, hex, rd->m.stored_sha256);
    return 0;
}

void dr_repo_reader_free(dr_repo_reader *rd)
{
    if (!rd)
        return;
    dr_archive_reader_free(rd->ar);
    dr_source_free(rd->dec);
    if (rd->hash)
        dr_source_free(&rd->hash->base);
    dr_source_free(rd->download);
    free(rd);
}

/* ---- events entries as one stream ---- */

typedef struct events_source {
    dr_source base;
    dr_archive_reader *ar;
    int in_entry;
    int done;
    char stop_name[256];
    uint64_t stop_size;
} events_source;

static int events_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    events_source *s = (events_source *)base;
    *n = 0;
    while (!s->done) {
        if (s->in_entry) {
            int rc = dr_archive_read(s->ar, buf, cap, n);
            if (rc < 0 || *n)
                return rc;
            s->in_entry = 0;
        }
        char name[256];
        uint64_t size = 0;
        int rc = dr_archive_next(s->ar, name, sizeof name, &size);
        if (rc == DR_ENOTFOUND) {
            dr_error_clear();
            s->done = 1;
            break;
        }
        if (rc < 0)
            return rc;
        if (strncmp(name, "events-", 7) != 0) {
            snprintf(s->stop_name, sizeof s->stop_name, "%s", name);
            s->stop_size = size;
            s->done = 1;
            break;
        }
        s->in_entry = 1;
    }
    return 0;
}

static void events_free(dr_source *base)
{
    free(base);
}

static const dr_source_ops events_ops = {events_read, events_free};

int dr_repo_events_source_new(dr_archive_reader *ar, dr_source **out)
{
    events_source *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &events_ops;
    s->ar = ar;
    *out = &s->base;
    return 0;
}

const char *dr_repo_events_stop(dr_source *events, uint64_t *size)
{
    events_source *s = (events_source *)events;
    if (size)
        *size = s->stop_size;
    return s->stop_name;
}
