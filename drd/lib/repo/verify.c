/*
 * Reading objects back completely: verify (every check that needs no etcd), the plain etcd
 * snapshot file of a full snapshot, and the events of a segment for a replay.
 * Must never hand out a file before every check passed (the file appears at the end), and never
 * call a replay callback with events of a segment that was not verified first by the caller.
 */
#include "drd/lib/repo/repo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads the current entry (at most max bytes) into memory. */
static int read_entry(dr_archive_reader *ar, uint64_t size, size_t max, char **out)
{
    if (size > max)
        return dr_error_set(DR_EPROTO, "entry of %" PRIu64 " bytes is too large", size);
    char *buf = malloc(size + 1);
    if (!buf)
        return dr_error_set(DR_ENOMEM, "out of memory");
    size_t got = 0;
    int rc = dr_source_read_full(dr_archive_entry_source(ar), buf, size, &got);
    if (rc == 0 && got != size)
        rc = dr_error_set(DR_EPROTO, "entry truncated");
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[size] = 0;
    *out = buf;
    return 0;
}

/* The inner (authenticated) manifest must say what the outer one says. */
static int check_inner(const dr_manifest *outer, const char *text, size_t len)
{
    dr_manifest in;
    int rc = dr_manifest_from_json(text, len, &in);
    if (rc < 0)
        return dr_error_wrap(DR_ECHECKSUM, "%s: inner manifest", outer->id);
    return dr_manifest_compare_inner(outer, &in);
}

typedef struct plain_check {
    dr_sha256 *h;
    uint64_t bytes;
} plain_check;

static int plain_done(const dr_manifest *m, plain_check *p)
{
    uint8_t d[32];
    char hex[65];
    int rc = dr_sha256_final(p->h, d);
    if (rc < 0)
        return rc;
    dr_hex(d, 32, hex);
    if (p->bytes != m->plain_bytes || strcmp(hex, m->plain_sha256) != 0)
        return dr_error_set(DR_ECHECKSUM,
                            "%s: content has %" PRIu64
                            " bytes with sha256 %s, manifest says %" PRIu64 " bytes with %s",
                            m->id, p->bytes, hex, m->plain_bytes, m->plain_sha256);
    return 0;
}

/* Full snapshot: "etcd.db" then "manifest.json"; the db goes to out (may be NULL). */
static int read_full(dr_repo_reader *rd, const dr_manifest *m, dr_sink *out, int check_plain)
{
    dr_archive_reader *ar = dr_repo_reader_archive(rd);
    char name[256], *inner = NULL;
    uint64_t size = 0;
    plain_check p = {0};
    char *buf = NULL;
    int rc = dr_archive_next(ar, name, sizeof name, &size);
    if (rc < 0)
        goto out;
    if (strcmp(name, "etcd.db") != 0) {
        rc = dr_error_set(DR_EPROTO, "%s: first entry is '%s', expected etcd.db", m->id, name);
        goto out;
    }
    if (size != m->plain_bytes) { /* checked before a byte is written: no disk filled */
        rc = dr_error_set(DR_ECHECKSUM,
                          "%s: etcd.db entry has %" PRIu64 " bytes, manifest says %" PRIu64, m->id,
                          size, m->plain_bytes);
        goto out;
    }
    if ((rc = dr_sha256_new(&p.h)) < 0)
        goto out;
    enum { CHUNK = 256 * 1024 };
    if (!(buf = malloc(CHUNK))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        size_t n = 0;
        if ((rc = dr_archive_read(ar, buf, CHUNK, &n)) < 0)
            goto out;
        if (!n)
            break;
        p.bytes += n;
        if (p.bytes > m->plain_bytes) { /* more than the entry said: never write past it */
            rc = dr_error_set(DR_ECHECKSUM, "%s: content exceeds the manifest's %" PRIu64 " bytes",
                              m->id, m->plain_bytes);
            goto out;
        }
        if ((check_plain && (rc = dr_sha256_update(p.h, buf, n)) < 0) ||
            (out && (rc = dr_sink_write(out, buf, n)) < 0))
            goto out;
    }
    if (check_plain && (rc = plain_done(m, &p)) < 0)
        goto out;
    if (!check_plain && p.bytes != m->plain_bytes) {
        rc = dr_error_set(DR_ECHECKSUM, "%s: content has %" PRIu64 " bytes, manifest says %" PRIu64,
                          m->id, p.bytes, m->plain_bytes);
        goto out;
    }
    if ((rc = dr_archive_next(ar, name, sizeof name, &size)) < 0 ||
        strcmp(name, "manifest.json") != 0) {
        if (rc >= 0)
            rc = dr_error_set(DR_EPROTO, "%s: unexpected entry '%s'", m->id, name);
        goto out;
    }
    if ((rc = read_entry(ar, size, 1 << 20, &inner)) < 0)
        goto out;
    if ((rc = check_inner(m, inner, size)) < 0)
        goto out;
    rc = dr_repo_reader_finish(rd);
out:
    free(buf);
    free(inner);
    dr_sha256_free(p.h);
    return rc;
}

/* A pass-through source that hashes what it reads (the segment's plain event bytes). */
typedef struct tee_source {
    dr_source base;
    dr_source *in;
    plain_check *p;
    uint64_t max;
} tee_source;

static int tee_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    tee_source *t = (tee_source *)base;
    int rc = dr_source_read(t->in, buf, cap, n);
    if (rc == 0 && *n) {
        t->p->bytes += *n;
        if (t->p->bytes > t->max) /* a decompression bomb stops at the manifest's size */
            return dr_error_set(DR_ECHECKSUM,
                                "segment events exceed the manifest's %" PRIu64 " bytes", t->max);
        rc = dr_sha256_update(t->p->h, buf, *n);
    }
    return rc;
}

static void tee_free(dr_source *base)
{
    (void)base;
}

static const dr_source_ops tee_ops = {tee_read, tee_free};

static int read_incr(dr_repo_reader *rd, const dr_manifest *m, int64_t upto, dr_repo_event_cb cb,
                     void *ctx)
{
    dr_archive_reader *ar = dr_repo_reader_archive(rd);
    dr_source *ev = NULL;
    dr_seg_reader *sr = NULL;
    plain_check p = {0};
    char *inner = NULL;
    int rc;
    if ((rc = dr_sha256_new(&p.h)) < 0 || (rc = dr_repo_events_source_new(ar, &ev)) < 0)
        goto out;
    tee_source tee = {{&tee_ops}, ev, &p, m->plain_bytes};
    if ((rc = dr_seg_reader_new(&tee.base, &sr)) < 0)
        goto out;
    int64_t expect = m->rev_start, rev = 0, events = 0;
    uint32_t count = 0;
    while ((rc = dr_seg_next_rev(sr, &rev, &count)) == 0) {
        if (rev != expect) {
            rc = dr_error_set(DR_ECHECKSUM, "%s: revision %" PRId64 " follows %" PRId64, m->id, rev,
                              expect - 1);
            goto out;
        }
        expect++;
        for (uint32_t i = 0; i < count; i++) {
            dr_seg_event e;
            if ((rc = dr_seg_next_event(sr, &e)) < 0)
                goto out;
            if (cb && (upto <= 0 || rev <= upto) && (rc = cb(ctx, rev, i, count, &e)) != 0)
                goto out;
            if (e.type != 'L')
                events++;
        }
    }
    if (rc != DR_ENOTFOUND)
        goto out;
    dr_error_clear();
    if (expect - 1 != m->rev_end || events != m->events) {
        rc = dr_error_set(DR_ECHECKSUM,
                          "%s: holds revisions %" PRId64 "-%" PRId64 " with %" PRId64
                          " events, manifest says %" PRId64 "-%" PRId64 " with %" PRId64,
                          m->id, m->rev_start, expect - 1, events, m->rev_start, m->rev_end,
                          m->events);
        goto out;
    }
    if ((rc = plain_done(m, &p)) < 0)
        goto out;
    uint64_t size = 0;
    const char *stop = dr_repo_events_stop(ev, &size);
    if (strcmp(stop, "manifest.json") != 0) {
        rc = dr_error_set(DR_EPROTO, "%s: no manifest.json after the events", m->id);
        goto out;
    }
    if ((rc = read_entry(ar, size, 1 << 20, &inner)) < 0 || (rc = check_inner(m, inner, size)) < 0)
        goto out;
    rc = dr_repo_reader_finish(rd);
out:
    free(inner);
    dr_seg_reader_free(sr);
    dr_source_free(ev);
    dr_sha256_free(p.h);
    return rc;
}

/* Every failure names the object once. */
static int name_it(int rc, const dr_manifest *m)
{
    if (rc < 0 && !strstr(dr_error_msg(), m->id))
        dr_error_wrap(rc, "%s", m->id);
    return rc;
}

int dr_repo_verify(dr_repo *repo, const dr_manifest *m)
{
    dr_repo_reader *rd = NULL;
    int rc = dr_repo_reader_new(repo, m, &rd);
    if (rc == 0)
        rc = m->kind == DR_KIND_FULL ? read_full(rd, m, NULL, 1) : read_incr(rd, m, 0, NULL, NULL);
    dr_repo_reader_free(rd);
    return name_it(rc, m);
}

/* A filter that hashes what passes and, on finish, lets next finish only when the content's
 * size and sha256 are the manifest's (so the file never appears with other content). */
typedef struct check_sink {
    dr_sink base;
    dr_sink *next;
    const dr_manifest *m;
    plain_check p;
} check_sink;

static int check_write(dr_sink *base, const void *data, size_t len)
{
    check_sink *s = (check_sink *)base;
    s->p.bytes += len;
    int rc = dr_sha256_update(s->p.h, data, len);
    return rc < 0 ? rc : dr_sink_write(s->next, data, len);
}

static int check_finish(dr_sink *base)
{
    check_sink *s = (check_sink *)base;
    int rc = plain_done(s->m, &s->p);
    return rc < 0 ? rc : dr_sink_finish(s->next);
}

static void check_free(dr_sink *base)
{
    check_sink *s = (check_sink *)base;
    dr_sha256_free(s->p.h);
    free(s);
}

static const dr_sink_ops check_ops = {check_write, check_finish, check_free};

static int check_sink_new(dr_sink *next, const dr_manifest *m, dr_sink **out)
{
    check_sink *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &check_ops;
    s->next = next;
    s->m = m;
    int rc = dr_sha256_new(&s->p.h);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

int dr_repo_get_db(dr_repo *repo, const dr_manifest *m, const char *path, int flags)
{
    if (m->kind != DR_KIND_FULL)
        return dr_error_set(DR_EUSAGE, "%s is a segment, not a full snapshot", m->id);
    int scratch = (flags & DR_GETDB_SCRATCH) != 0;
    dr_repo_reader *rd = NULL;
    dr_sink *file = NULL, *head = NULL, *check = NULL, *out = NULL;
    int rc = dr_fs_sink_new(path, 0600, scratch ? DR_FS_SCRATCH : 0, &file);
    dr_sink *top = file;
    if (rc == 0 && (flags & DR_GETDB_DB_ONLY)) {
        /* etcd's trailer follows a database of whole pages: size % 512 == 32 (etcdctl's test) */
        uint64_t keep = m->plain_bytes % 512 == 32 ? m->plain_bytes - 32 : m->plain_bytes;
        if ((rc = dr_head_sink_new(file, keep, &head)) == 0 &&
            (rc = check_sink_new(head, m, &check)) == 0)
            top = check;
    }
    /* decrypting and decompressing on one core, hashing and writing on the other; 1 MiB halves
     * (two buffers) as snapshot save uses: 4 MiB ones were 6 MiB more of a drill's peak in the
     * daemon (bench/daemon-soak) */
    if (rc == 0)
        rc = dr_async_sink_new(top, 1u << 20, &out);
    if (rc == 0)
        rc = dr_repo_reader_new(repo, m, &rd);
    if (rc == 0)
        rc = read_full(rd, m, out, !scratch && !check);
    if (rc == 0)
        rc = dr_sink_finish(out); /* finishes the file: only now does path appear */
    dr_repo_reader_free(rd);
    dr_sink_free(out);
    dr_sink_free(check);
    dr_sink_free(head);
    dr_sink_free(file);
    return name_it(rc, m);
}

int dr_repo_read_events(dr_repo *repo, const dr_manifest *m, int64_t upto, dr_repo_event_cb cb,
                        void *ctx)
{
    if (m->kind != DR_KIND_INCR)
        return dr_error_set(DR_EUSAGE, "%s is a full snapshot, not a segment", m->id);
    dr_repo_reader *rd = NULL;
    int rc = dr_repo_reader_new(repo, m, &rd);
    if (rc == 0)
        rc = read_incr(rd, m, upto, cb, ctx);
    dr_repo_reader_free(rd);
    return rc < 0 ? name_it(rc, m) : rc;
}
