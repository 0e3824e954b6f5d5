/*
 * drd snapshot save: one full snapshot, streamed.
 *
 *   Status (lower bound of the revision, cluster, version)
 *   Maintenance.Snapshot (sha256 of the plain file, checked against etcd's trailer)
 *                        --> bolt scan (exact revision)
 *                        --> tar entry "etcd.db" --> zstd --> encrypt --> store
 *      meanwhile, on a thread from the first byte on: HashKV at etcd's current revision R, key
 *      count (and per resource) at R
 *   HashKV + key counts at the snapshot's revision (those at R when the snapshot holds R under
 *   the same compaction, else asked again) --> tar entry "manifest.json" --> commit (manifest)
 *
 * Must never publish a snapshot whose revision is not known exactly, and never hold more than
 * the filters' buffers in memory.
 */
#include "bolt.h"
#include "drd/lib/kube/kube.h"
#include "snapshot/snapshot.h"
#include "drd/lib/epoch/epoch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HashKV and key counts at etcd's current revision, asked on a thread of their own when the
 * snapshot's first byte arrives and answered while it streams (they were serial after the
 * stream, about 15 % of a save's wall time) */
typedef struct early_checks {
    dr_etcd *etcd;
    int64_t rev; /* the revision HashKV hashed */
    int rc;      /* 0: rev, hashkv, compact, keys and kc are set */
    uint32_t hashkv;
    int64_t compact;
    int64_t keys;
    dr_key_counts kc;
    char msg[512]; /* the thread's error message, when rc < 0 */
    pthread_t th;
    int started;
} early_checks;

static void *early_run(void *arg)
{
    early_checks *c = arg;
    dr_etcd_header hdr = {0};
    /* at the current revision: the one the snapshot holds unless a write lands in between */
    int rc = dr_etcd_hashkv(c->etcd, 0, &c->hashkv, &c->compact, &hdr);
    c->rev = hdr.revision;
    if (rc == 0 && c->rev <= c->compact) /* etcd refuses HashKV at the compact revision */
        rc = dr_error_set(DR_ECOMPACTED, "compacted at the revision");
    if (rc == 0)
        rc = dr_etcd_count_all(c->etcd, c->rev, &c->keys);
    if (rc == 0)
        rc = dr_kube_count(c->etcd, c->rev, &c->kc);
    if (rc < 0)
        snprintf(c->msg, sizeof c->msg, "%s", dr_error_msg()); /* thread-local */
    c->rc = rc;
    return NULL;
}

static int early_start(early_checks *c, dr_etcd *etcd)
{
    if (c->started)
        return 0;
    c->etcd = etcd;
    c->rc = DR_EGENERIC;
    int err = pthread_create(&c->th, NULL, early_run, c);
    if (err)
        return dr_error_set(DR_EGENERIC, "cannot start a thread: %s", strerror(err));
    c->started = 1;
    return 0;
}

/* Waits for the thread; its failure is not the save's (c->rc says whether its answers can be
 * used). Bounded: each of its calls has the request timeout. */
static void early_join(early_checks *c)
{
    if (c->started)
        pthread_join(c->th, NULL);
    c->started = 0;
}

typedef struct save_ctx {
    dr_archive_writer *ar;
    dr_sink *async; /* the etcd.db entry, written by its own thread: zstd, AES, upload */
    dr_bolt_scan *scan;
    dr_repo_lock *lock;
    dr_progress *progress;
    dr_etcd *etcd;
    early_checks early; /* started with the stream's first byte */
    uint64_t bytes;
    int entry_open;
    int64_t mtime;
    int64_t t0;       /* dr_mono_us() at the start */
    char phases[256]; /* "name ms, ..." for the debug log: where the wall time went */
    size_t phases_len;
} save_ctx;

/* Notes how long the save had run when a phase ended (one debug line at the end). */
static void phase(save_ctx *s, const char *name)
{
    if (s->phases_len >= sizeof s->phases)
        return;
    int n = snprintf(s->phases + s->phases_len, sizeof s->phases - s->phases_len, "%s%s %.1f",
                     s->phases_len ? ", " : "", name, (double)(dr_mono_us() - s->t0) / 1000.0);
    if (n > 0)
        s->phases_len += (size_t)n;
}

static int on_size(void *ctx, uint64_t total)
{
    save_ctx *s = ctx;
    phase(s, "first-byte");
    dr_progress_set_total(s->progress, total);
    /* etcd has opened the snapshot's read transaction: a HashKV now is at the same revision
     * unless a write lands within about a round trip */
    int rc = early_start(&s->early, s->etcd);
    if (rc == 0)
        rc = dr_archive_entry_begin(s->ar, "etcd.db", total, s->mtime);
    if (rc == 0)
        s->entry_open = 1;
    return rc;
}

static int on_data(void *ctx, const void *data, size_t len)
{
    save_ctx *s = ctx;
    int rc;
    if ((rc = dr_bolt_scan_feed(s->scan, data, len)) < 0 ||
        (rc = dr_sink_write(s->async, data, len)) < 0)
        return rc;
    s->bytes += len;
    dr_progress_add(s->progress, len);
    return dr_repo_lock_refresh(s->lock);
}

/* m's key count per resource from kc, which must add up to m's key count at rev. */
static int set_key_counts(dr_manifest *m, const dr_key_counts *kc, int64_t rev)
{
    if (dr_key_counts_total(kc) != m->key_count)
        return dr_error_set(DR_EPROTO,
                            "etcd counted %" PRId64 " keys at revision %" PRId64
                            " in all and %" PRId64 " per resource",
                            m->key_count, rev, dr_key_counts_total(kc));
    return dr_manifest_set_key_counts(m, kc);
}

/* HashKV and the key counts at rev into m (kc: the per-resource counts, lent to m); compact:
 * the snapshot's compaction state (-1: never compacted). A hash at another compact revision does
 * not describe the snapshot (a restored etcd hashes from the snapshot's compact revision): like a
 * compaction past rev, it leaves the manifest without them (the snapshot itself is still whole). */
static int hash_and_count(dr_etcd *etcd, int64_t rev, int64_t compact, dr_manifest *m,
                          dr_key_counts *kc)
{
    int64_t cr = 0;
    int rc = dr_etcd_hashkv(etcd, rev, &m->hashkv, &cr, NULL);
    if (rc == 0 && cr != compact)
        rc = dr_error_set(DR_ECOMPACTED,
                          "etcd is compacted at revision %" PRId64 ", the snapshot at %" PRId64, cr,
                          compact);
    if (rc == 0) {
        m->has_hashkv = 1;
        m->compact_revision = cr;
        rc = dr_etcd_count_all(etcd, rev, &m->key_count);
    }
    /* and per Kubernetes resource, for drills to hold the restored data to ("1,203 pods") */
    int64_t tk = dr_mono_ms();
    if (rc == 0 && (rc = dr_kube_count(etcd, rev, kc)) == 0) {
        dr_debug("keys per resource: %zu resources, %" PRId64 " other keys, %" PRId64 " ms", kc->n,
                 kc->other, dr_mono_ms() - tk);
        rc = set_key_counts(m, kc, rev);
    }
    if (rc == DR_ECOMPACTED) {
        /* compacted while we streamed: the snapshot is still whole */
        dr_warn("etcd compacted during the snapshot of revision %" PRId64 " (%s): no HashKV or "
                "key count in the manifest",
                rev, dr_error_msg());
        dr_error_clear();
        m->has_hashkv = 0;
        m->key_count = -1;
        m->has_key_counts = 0;
        rc = 0;
    }
    return rc;
}

int dr_snapshot_save(dr_repo *repo, dr_etcd *etcd, const dr_snapshot_save_opts *o, dr_manifest *m)
{
    int rc = 0;
    save_ctx s = {.etcd = etcd, .early = {.rc = DR_EGENERIC}};
    dr_key_counts kc = {0};
    dr_repo_writer *w = NULL;
    dr_etcd_status st;
    memset(m, 0, sizeof *m);
    int64_t t0 = dr_mono_ms();
    if ((rc = dr_epoch_check_snapshot(repo, etcd)) < 0) /* a demoted side writes nothing */
        goto out;
    s.t0 = dr_mono_us();
    if ((rc = dr_repo_lock_take(repo, "save", &s.lock)) < 0)
        goto out;
    /* holding the lock, whatever an earlier save left unfinished is garbage */
    int cleaned = 0;
    if ((rc = dr_repo_cleanup(repo, "save", 0, &cleaned)) < 0)
        goto out;
    phase(&s, "lock");
    if ((rc = dr_etcd_status_get(etcd, &st)) < 0)
        goto out;
    phase(&s, "status");
    m->created_ms = dr_wall_ms();
    s.mtime = m->created_ms / 1000;
    if ((rc = dr_bolt_scan_new(st.header.revision, &s.scan)) < 0)
        goto out;
    if ((rc = dr_repo_writer_new(repo, "save", o->compression, &w)) < 0)
        goto out;
    s.ar = dr_repo_writer_archive(w);
    /* two cores: this thread receives the stream, scans the bolt pages and hashes the content;
     * the async sink's thread compresses, encrypts and uploads (the archive is touched by that
     * thread only between on_size's entry header and the drain below) */
    if ((rc = dr_async_sink_new(dr_archive_entry_sink(s.ar), 1u << 20, &s.async)) < 0)
        goto out;
    uint64_t size = 0;
    uint8_t digest[32]; /* of the plain file, from the same pass that checks etcd's trailer */
    s.progress = o->progress;
    dr_progress_begin(s.progress, "streaming snapshot", 0);
    phase(&s, "writer");
    if ((rc = dr_etcd_snapshot_sized(etcd, on_size, on_data, &s, &size, digest, NULL)) < 0)
        goto out;
    phase(&s, "stream");
    dr_progress_phase(s.progress, "finishing the upload");
    if ((rc = dr_sink_finish(s.async)) < 0 || (rc = dr_archive_entry_end(s.ar)) < 0)
        goto out;
    phase(&s, "drain");
    dr_progress_phase(s.progress, "checking revision and keys");
    dr_bolt_result br;
    if ((rc = dr_bolt_scan_result(s.scan, &br)) < 0) {
        dr_error_wrap(rc, "cannot tell the revision of the snapshot");
        goto out;
    }
    int64_t rev = br.revision;
    dr_debug("bolt scan: revision %" PRId64 ", %" PRIu64 " branch pages, %" PRIu64
             " leaf records, peak %zu bytes",
             rev, br.branch_pages, br.leaf_records, br.peak_mem);
    if (rev < st.header.revision) {
        rc = dr_error_set(DR_EPROTO,
                          "snapshot holds revision %" PRId64 ", older than the %" PRId64
                          " etcd reported before it started",
                          rev, st.header.revision);
        goto out;
    }
    dr_hex(digest, 32, m->plain_sha256);
    m->plain_bytes = size;
    m->kind = DR_KIND_FULL;
    m->rev_start = m->rev_end = rev;
    dr_repo_make_id(DR_KIND_FULL, rev, rev, m->created_ms, m->id);
    m->cluster_id = st.header.cluster_id;
    m->member_id = st.header.member_id;
    snprintf(m->etcd_version, sizeof m->etcd_version, "%s", st.version);
    snprintf(m->etcd_endpoint, sizeof m->etcd_endpoint, "%s", dr_etcd_endpoint(etcd));
    snprintf(m->labels, sizeof m->labels, "%s", o->labels ? o->labels : "");
    /* HashKV and key counts at the snapshot's revision: what a restore and a drill check. The
     * ones taken while it streamed describe this snapshot when they are at its revision under the
     * same compaction; otherwise (a write landed in between) ask again, now */
    early_join(&s.early);
    phase(&s, "early-checks");
    int64_t snap_compact = br.compact_revision > br.scheduled_compact_revision
                               ? br.compact_revision
                               : br.scheduled_compact_revision;
    if (snap_compact == 0)
        snap_compact = -1; /* never compacted: what HashKV answers then */
    if (s.early.rc == 0 && rev == s.early.rev && s.early.compact == snap_compact) {
        m->has_hashkv = 1;
        m->hashkv = s.early.hashkv;
        m->compact_revision = s.early.compact;
        m->key_count = s.early.keys;
        kc = s.early.kc; /* now the save's to free */
        memset(&s.early.kc, 0, sizeof s.early.kc);
        rc = set_key_counts(m, &kc, rev);
    } else {
        dr_debug("HashKV during the stream not usable: revision %" PRId64 " (snapshot %" PRId64
                 "), compact revision %" PRId64 " (snapshot %" PRId64 "), rc %d %s",
                 s.early.rev, rev, s.early.compact, snap_compact, s.early.rc, s.early.msg);
        rc = hash_and_count(etcd, rev, snap_compact, m, &kc);
        phase(&s, "hashkv+counts");
    }
    if (rc < 0)
        goto out;
    /* a snapshot of the same revision in the same second is already stored (a save right after
     * another, on an idle cluster): it is this one; ours is dropped unfinished */
    char mname[DR_REPO_ID_MAX + 32];
    uint64_t msize = 0;
    snprintf(mname, sizeof mname, "manifests/%s.json", m->id);
    if (dr_store_head(dr_repo_store(repo), mname, &msize) == 0) {
        /* only when that manifest is one this writer trusts: a planted one must not suppress
         * the backup (it is refused loudly instead, objects are never rewritten) */
        dr_manifest old;
        if ((rc = dr_repo_manifest(repo, m->id, &old)) < 0 ||
            (rc = dr_repo_trust(repo, &old)) < 0) {
            rc = dr_error_wrap(DR_EAUTH,
                               "a manifest %s is already in the store and is not one drd "
                               "wrote under this keyring (planted?)",
                               m->id);
            goto out;
        }
        dr_info("snapshot %s of revision %" PRId64 " is already stored", m->id, rev);
        goto out;
    }
    dr_error_clear();
    dr_progress_phase(s.progress, "committing");
    if ((rc = dr_repo_writer_seal(w, m, s.mtime)) < 0)
        goto out;
    phase(&s, "seal");
    if ((rc = dr_repo_writer_commit(w, m)) < 0)
        goto out;
    phase(&s, "commit");
    dr_debug("snapshot save phases, ms since start: %s", s.phases);
    dr_info("snapshot %s: revision %" PRId64 ", %" PRIu64 " bytes -> %" PRIu64 " stored, %.1f s",
            m->id, rev, m->plain_bytes, m->stored_bytes, (double)(dr_mono_ms() - t0) / 1000.0);
out:
    early_join(&s.early);
    dr_key_counts_free(&s.early.kc);
    m->key_counts = NULL; /* lent to the manifest's writer: kc goes now */
    dr_key_counts_free(&kc);
    dr_sink_free(s.async); /* stops its thread before the archive goes */
    dr_repo_writer_free(w);
    dr_bolt_scan_free(s.scan);
    dr_repo_lock_release(s.lock);
    return rc;
}
