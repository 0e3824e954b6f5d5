/*
 * drd snapshot save: one full snapshot, streamed.
 *
 *   Status (lower bound of the revision, cluster, version)
 *   Maintenance.Snapshot (sha256 of the plain file, checked against etcd's trailer)
 *                        --> bolt scan (exact revision)
 *                        --> tar entry "etcd.db" --> zstd --> encrypt --> store
 *   HashKV + key count (and per resource) at the revision --> tar entry "manifest.json" --> commit
 *   (manifest object)
 *
 * Must never publish a snapshot whose revision is not known exactly, and never hold more than
 * the filters' buffers in memory.
 */
#include "bolt.h"
#include "drd/lib/kube/kube.h"
#include "snapshot/snapshot.h"
#include "drd/lib/epoch/epoch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct save_ctx {
    dr_archive_writer *ar;
    dr_sink *async; /* the etcd.db entry, written by its own thread: zstd, AES, upload */
    dr_bolt_scan *scan;
    dr_repo_lock *lock;
    dr_progress *progress;
    uint64_t bytes;
    int entry_open;
    int64_t mtime;
} save_ctx;

static int on_size(void *ctx, uint64_t total)
{
    save_ctx *s = ctx;
    dr_progress_set_total(s->progress, total);
    int rc = dr_archive_entry_begin(s->ar, "etcd.db", total, s->mtime);
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

int dr_snapshot_save(dr_repo *repo, dr_etcd *etcd, const dr_snapshot_save_opts *o, dr_manifest *m)
{
    int rc = 0;
    save_ctx s = {0};
    dr_key_counts kc = {0};
    dr_repo_writer *w = NULL;
    dr_etcd_status st;
    memset(m, 0, sizeof *m);
    int64_t t0 = dr_mono_ms();
    if ((rc = dr_epoch_check_snapshot(repo, etcd)) < 0) /* a demoted side writes nothing */
        goto out;
    if ((rc = dr_repo_lock_take(repo, "save", &s.lock)) < 0)
        goto out;
    /* holding the lock, whatever an earlier save left unfinished is garbage */
    int cleaned = 0;
    if ((rc = dr_repo_cleanup(repo, "save", 0, &cleaned)) < 0)
        goto out;
    if ((rc = dr_etcd_status_get(etcd, &st)) < 0)
        goto out;
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
    if ((rc = dr_etcd_snapshot_sized(etcd, on_size, on_data, &s, &size, digest, NULL)) < 0)
        goto out;
    dr_progress_phase(s.progress, "finishing the upload");
    if ((rc = dr_sink_finish(s.async)) < 0 || (rc = dr_archive_entry_end(s.ar)) < 0)
        goto out;
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
    /* HashKV and key count at the snapshot's revision: what a restore and a drill check */
    int64_t compact = 0;
    rc = dr_etcd_hashkv(etcd, rev, &m->hashkv, &compact, NULL);
    if (rc == 0) {
        m->has_hashkv = 1;
        m->compact_revision = compact;
        rc = dr_etcd_count_all(etcd, rev, &m->key_count);
    }
    /* and per Kubernetes resource, for drills to hold the restored data to ("1,203 pods") */
    int64_t tk = dr_mono_ms();
    if (rc == 0 && (rc = dr_kube_count(etcd, rev, &kc)) == 0) {
        dr_debug("keys per resource: %zu resources, %" PRId64 " other keys, %" PRId64 " ms", kc.n,
                 kc.other, dr_mono_ms() - tk);
        if (dr_key_counts_total(&kc) != m->key_count)
            rc = dr_error_set(DR_EPROTO,
                              "etcd counted %" PRId64 " keys at revision %" PRId64
                              " in all and %" PRId64 " per resource",
                              m->key_count, rev, dr_key_counts_total(&kc));
        else
            rc = dr_manifest_set_key_counts(m, &kc);
    }
    if (rc == DR_ECOMPACTED) {
        /* compacted past the revision while we streamed: the snapshot is still whole */
        dr_warn("etcd compacted past revision %" PRId64 " during the snapshot: no HashKV or key "
                "count in the manifest",
                rev);
        dr_error_clear();
        m->has_hashkv = 0;
        m->key_count = -1;
        m->has_key_counts = 0;
        rc = 0;
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
    if ((rc = dr_repo_writer_commit(w, m)) < 0)
        goto out;
    dr_info("snapshot %s: revision %" PRId64 ", %" PRIu64 " bytes -> %" PRIu64 " stored, %.1f s",
            m->id, rev, m->plain_bytes, m->stored_bytes, (double)(dr_mono_ms() - t0) / 1000.0);
out:
    m->key_counts = NULL; /* lent to the manifest's writer: kc goes now */
    dr_key_counts_free(&kc);
    dr_sink_free(s.async); /* stops its thread before the archive goes */
    dr_repo_writer_free(w);
    dr_bolt_scan_free(s.scan);
    dr_repo_lock_release(s.lock);
    return rc;
}
