/*
 * Restore: plan, check everything, restore the snapshot next to the target, replay segments
 * through a throw-away etcd, rename into place. See restore.h.
 *
 *   plan --> verify segments --> restore the base into <data dir>.restoring-<pid> (the snapshot
 *        checked as it is written: dr_etcdtool_restore_from) --> [throw-away etcd: replay]
 *        --> rename to <data dir>
 * A crash at any step leaves the target name absent (or as it was: empty), never half restored.
 */
#include "restore/restore.h"
#include "drd/lib/apply/apply.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/etcd/etcd.h"
#include "drd/lib/etcdtool/etcdtool.h"
#include "restore_int.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- plan ---- */

typedef struct collect {
    dr_manifest *v;
    size_t n, cap;
} collect;

static int collect_all(void *ctx, const dr_manifest *m)
{
    collect *c = ctx;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        dr_manifest *v = realloc(c->v, nc * sizeof *v);
        if (!v)
            return dr_error_set(DR_ENOMEM, "out of memory");
        c->v = v;
        c->cap = nc;
    }
    c->v[c->n++] = *m;
    return 0;
}

int dr_restore_plan_make(dr_repo *repo, const char *snapshot, int64_t revision, int64_t time_ms,
                         dr_restore_plan *p)
{
    int rc;
    collect all = {0};
    memset(p, 0, sizeof *p);
    if ((rc = dr_repo_sync(repo, NULL)) < 0)
        return rc;
    if (snapshot) {
        if ((rc = dr_repo_manifest(repo, snapshot, &p->base)) < 0 ||
            (rc = dr_repo_trust(repo, &p->base)) < 0)
            return rc;
        if (p->base.kind != DR_KIND_FULL)
            return dr_error_set(DR_EUSAGE, "%s is a segment: name a full snapshot, or --revision",
                                p->base.id);
        p->target = p->base.rev_end;
        return 0;
    }
    if ((rc = dr_repo_each(repo, collect_all, &all)) < 0)
        goto out;
    /* the newest full snapshot at or before the point (entries are ordered by revision) */
    int have = 0;
    for (size_t i = 0; i < all.n; i++) {
        const dr_manifest *m = &all.v[i];
        if (m->kind != DR_KIND_FULL)
            continue;
        if ((revision > 0 && m->rev_end <= revision) || (time_ms > 0 && m->created_ms <= time_ms)) {
            p->base = *m;
            have = 1;
        }
    }
    if (!have) {
        rc = revision > 0
                 ? dr_error_set(DR_ENOTFOUND,
                                "no full snapshot at or before revision %" PRId64 " in store '%s'",
                                revision, dr_store_url(dr_repo_store(repo)))
                 : dr_error_set(DR_ENOTFOUND,
                                "no full snapshot taken at or before the given time in "
                                "store '%s'",
                                dr_store_url(dr_repo_store(repo)));
        goto out;
    }
    int64_t need = p->base.rev_end + 1;
    int64_t goal = revision > 0 ? revision : INT64_MAX;
    for (size_t i = 0; i < all.n && need <= goal; i++) {
        const dr_manifest *m = &all.v[i];
        if (m->kind != DR_KIND_INCR || m->rev_end < need)
            continue;
        if (time_ms > 0 && m->created_ms > time_ms)
            break;
        if (m->rev_start > need)
            break; /* a gap: reported below */
        dr_manifest *v = realloc(p->segs, (p->n_segs + 1) * sizeof *v);
        if (!v) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            goto out;
        }
        p->segs = v;
        p->segs[p->n_segs++] = *m;
        need = m->rev_end + 1;
    }
    if (revision > 0) {
        if (need <= revision) {
            rc = dr_error_set(DR_ENOTFOUND,
                              "revisions %" PRId64 "-%" PRId64 " are in no segment: cannot "
                              "restore to revision %" PRId64 " (from snapshot %s)",
                              need, revision, revision, p->base.id);
            goto out;
        }
        p->target = revision;
    } else {
        p->target = need - 1;
    }
out:
    free(all.v);
    if (rc < 0)
        dr_restore_plan_free(p);
    return rc;
}

void dr_restore_plan_free(dr_restore_plan *p)
{
    free(p->segs);
    p->segs = NULL;
    p->n_segs = 0;
}

/* ---- replay ---- */

typedef struct rop {
    int del;
    size_t key_off, key_len, val_off, val_len;
    int64_t lease;
} rop;

typedef struct replay {
    dr_etcd *e;
    dr_apply *ap;
    int64_t from; /* first revision to apply */
    int64_t upto;
    int64_t last_log_ms;
    dr_buf data; /* the current revision's keys and values */
    rop *rops;
    dr_apply_op *ops;
    size_t n, cap;
} replay;

static int lease_ensure(dr_etcd *e, int64_t id, int64_t ttl)
{
    int64_t left = 0, granted = 0;
    int rc = dr_etcd_lease_ttl(e, id, &left, &granted, NULL);
    if (rc == 0)
        return 0; /* in the snapshot already */
    if (rc != DR_ENOTFOUND)
        return rc;
    dr_error_clear();
    return dr_etcd_lease_grant(e, id, ttl > 0 ? ttl : 1, NULL);
}

/* The applier's DR_EDIVERGED: the snapshot and the segments do not line up. */
static int replay_rc(int rc)
{
    if (rc == DR_EDIVERGED) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        return dr_error_set(DR_EDIVERGED,
                            "replaying the segments: %s (the restored snapshot and the segments "
                            "do not line up)",
                            msg);
    }
    return rc;
}

static int on_event(void *ctx, int64_t rev, uint32_t i, uint32_t count, const dr_seg_event *ev)
{
    replay *r = ctx;
    int rc = 0;
    if (rev < r->from)
        return 0; /* before the base snapshot: already in it */
    if (i == 0) {
        r->data.len = 0;
        r->n = 0;
    }
    if (ev->type == 'L') {
        rc = lease_ensure(r->e, ev->lease, ev->ttl);
    } else {
        if (r->n == r->cap) {
            size_t nc = r->cap ? 2 * r->cap : 64;
            rop *v = realloc(r->rops, nc * sizeof *v);
            dr_apply_op *w = v ? realloc(r->ops, nc * sizeof *w) : NULL;
            if (v)
                r->rops = v;
            if (!v || !w)
                return dr_error_set(DR_ENOMEM, "out of memory");
            r->ops = w;
            r->cap = nc;
        }
        rop *o = &r->rops[r->n++];
        o->del = ev->type != 'P';
        o->key_off = r->data.len;
        o->key_len = ev->key_len;
        o->val_len = o->del ? 0 : ev->value_len;
        o->lease = ev->lease;
        if ((rc = dr_buf_append(&r->data, ev->key, ev->key_len)) == 0) {
            o->val_off = r->data.len;
            if (o->val_len)
                rc = dr_buf_append(&r->data, ev->value, ev->value_len);
        }
    }
    if (rc < 0 || i + 1 < count || r->n == 0)
        return rc;
    /* the revision is complete: it must become exactly this revision on the target */
    const uint8_t *base = (const uint8_t *)r->data.data;
    for (size_t k = 0; k < r->n; k++) {
        const rop *o = &r->rops[k];
        r->ops[k] = (dr_apply_op){.del = o->del,
                                  .key = base + o->key_off,
                                  .key_len = o->key_len,
                                  .value = base + o->val_off,
                                  .value_len = o->val_len,
                                  .lease = o->lease};
    }
    while ((rc = dr_apply_admit(r->ap, rev, r->ops, r->n, dr_mono_ms())) == 0)
        if ((rc = dr_apply_step(r->ap, 100)) < 0)
            return replay_rc(rc);
    if (rc < 0)
        return rc;
    if ((rc = dr_apply_step(r->ap, 0)) < 0)
        return replay_rc(rc);
    if (dr_mono_ms() - r->last_log_ms > 2000) {
        dr_info("replayed up to revision %" PRId64 " of %" PRId64, dr_apply_confirmed(r->ap),
                r->upto);
        r->last_log_ms = dr_mono_ms();
    }
    return 0;
}

int dr_restore_replay(dr_repo *repo, const dr_restore_plan *p, const char *url, int64_t *replayed)
{
    replay r = {.from = p->base.rev_end + 1, .upto = p->target, .last_log_ms = dr_mono_ms()};
    dr_etcd_opts eo = {.endpoints = url, .timeout_ms = 30000};
    int rc = dr_etcd_open(&r.e, &eo);
    dr_etcd_status st;
    if (rc == 0 && (rc = dr_etcd_status_get(r.e, &st)) == 0 &&
        st.header.revision != p->base.rev_end)
        rc = dr_error_set(DR_EDIVERGED,
                          "the restored snapshot %s is at revision %" PRId64 ", its manifest "
                          "says %" PRId64,
                          p->base.id, st.header.revision, p->base.rev_end);
    /* several chained requests in flight (drd/lib/apply): etcd applies concurrent transactions
     * in no particular order, and each request applies whichever revision is next */
    if (rc == 0)
        rc = dr_apply_new(r.e, p->base.rev_end, DR_ETCDTOOL_MAX_TXN_OPS, 8, &r.ap);
    for (size_t i = 0; rc == 0 && i < p->n_segs; i++)
        rc = dr_repo_read_events(repo, &p->segs[i], p->target, on_event, &r);
    if (rc == 0)
        rc = replay_rc(dr_apply_drain(r.ap));
    if (rc == 0 && (rc = dr_etcd_status_get(r.e, &st)) == 0 && st.header.revision != p->target)
        rc = dr_error_set(DR_EDIVERGED,
                          "after the replay etcd is at revision %" PRId64 ", not %" PRId64,
                          st.header.revision, p->target);
    if (replayed)
        *replayed = r.ap ? dr_apply_confirmed(r.ap) - p->base.rev_end : 0;
    dr_apply_free(r.ap);
    dr_buf_free(&r.data);
    free(r.rops);
    free(r.ops);
    dr_etcd_close(r.e);
    return rc;
}

/* ---- run ---- */

void restore_say(const dr_restore_opts *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (o->print)
        o->print(o->ctx, line);
}

void restore_progress_begin(dr_repo *repo, const dr_restore_plan *p, dr_progress *progress,
                            int replaying)
{
    uint64_t total = p->base.stored_bytes;
    for (size_t i = 0; i < p->n_segs; i++)
        total += p->segs[i].stored_bytes * (replaying ? 2 : 1);
    dr_progress_begin(progress, p->n_segs ? "checking segments" : "restoring snapshot", total);
    dr_repo_set_progress(repo, progress);
}

void restore_progress_done(dr_repo *repo)
{
    dr_repo_set_progress(repo, NULL);
}

int restore_verify_plan(dr_repo *repo, const dr_restore_plan *p, const dr_restore_opts *o,
                        int with_base)
{
    int rc;
    /* the base snapshot is checked by dr_repo_get_db as it is written out (the file appears only
     * after every check): reading it twice would double the restore time */
    if (with_base) {
        if ((rc = dr_repo_verify(repo, &p->base)) < 0)
            return rc;
        restore_say(o,
                    "checked %s: revision %" PRId64 ", %" PRIu64
                    " bytes, sha256 and every chunk verified",
                    p->base.id, p->base.rev_end, p->base.plain_bytes);
    }
    for (size_t i = 0; i < p->n_segs; i++) {
        if ((rc = dr_repo_verify(repo, &p->segs[i])) < 0)
            return rc;
        restore_say(o, "checked %s: revisions %" PRId64 "-%" PRId64 ", %" PRId64 " events",
                    p->segs[i].id, p->segs[i].rev_start, p->segs[i].rev_end, p->segs[i].events);
    }
    return 0;
}

typedef struct base_ctx {
    dr_repo *repo;
    const dr_manifest *m;
} base_ctx;

static int write_base(void *ctx, const char *path, int db_only)
{
    base_ctx *b = ctx;
    return dr_repo_get_db(b->repo, b->m, path, db_only ? DR_GETDB_DB_ONLY : DR_GETDB_SCRATCH);
}

int restore_base(dr_repo *repo, const dr_restore_plan *p, const char *data_dir, const char *name,
                 const char *initial_cluster, const char *peer_urls)
{
    base_ctx b = {repo, &p->base};
    return dr_etcdtool_restore_from(data_dir, name, initial_cluster, peer_urls, write_base, &b);
}

/* dr_etcdtool_db_fn for each member of a multi-member restore: the point's database, restored
 * and replayed once in a scratch member; for a restore tool (not db_only) with etcd's sha256
 * trailer appended, as `etcdctl snapshot save` would have written it. */
static int write_member_db(void *ctx, const char *path, int db_only)
{
    const char *db = ctx;
    dr_source *in = NULL;
    dr_sink *out = NULL;
    dr_sha256 *h = NULL;
    char buf[65536];
    size_t n = 0;
    uint8_t d[32];
    int rc = dr_fs_source_new(db, 0, &in);
    if (rc == 0)
        rc = dr_fs_sink_new(path, 0600, db_only ? 0 : DR_FS_SCRATCH, &out);
    if (rc == 0)
        rc = dr_sha256_new(&h);
    while (rc == 0 && (rc = dr_source_read(in, buf, sizeof buf, &n)) == 0 && n)
        if ((rc = dr_sink_write(out, buf, n)) == 0 && !db_only)
            rc = dr_sha256_update(h, buf, n);
    if (rc == 0 && !db_only && (rc = dr_sha256_final(h, d)) == 0)
        rc = dr_sink_write(out, d, sizeof d);
    if (rc == 0)
        rc = dr_sink_finish(out);
    dr_sha256_free(h);
    dr_sink_free(out);
    dr_source_free(in);
    return rc;
}

/* Every member of o->initial_cluster into o->members_dir/<name>: the point is restored (and its
 * segments replayed) once into a single-member scratch etcd in a private dir, as a drill does;
 * its database then becomes each member's, made by the restore tool for that member (a member
 * of a 3-member cluster alone has no quorum, so the replay cannot run in one of them). The
 * member dirs appear only when all of them are complete. */
static int restore_members(dr_repo *repo, const dr_restore_plan *p, const dr_restore_opts *o,
                           dr_restore_result *res, int64_t t0)
{
    enum { MAX = DR_ETCDTOOL_MEMBERS_MAX };
    char names[MAX][128], peers[MAX][1024], dirs[MAX][4200], partial[MAX][4300];
    char scratch[4096] = "", data[4200], log[4200], db[4300];
    dr_etcd_proc *proc = NULL;
    int n = 0, made = 0, renamed = 0;
    int rc = dr_etcdtool_members(o->initial_cluster, names, peers, MAX, &n);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        if (snprintf(dirs[i], sizeof dirs[i], "%s/%s", o->members_dir, names[i]) >=
            (int)sizeof dirs[i])
            return dr_error_set(DR_EUSAGE, "--members-dir '%s' is too long", o->members_dir);
        if (dr_etcdtool_dir_state(dirs[i]) == 2)
            return dr_error_set(DR_EUSAGE,
                                "data dir '%s' is not empty: refusing to restore over it", dirs[i]);
        restore_say(o, "%s member %s into %s", o->dry_run ? "would restore" : "restoring", names[i],
                    dirs[i]);
    }
    if ((rc = restore_verify_plan(repo, p, o, o->dry_run)) < 0)
        return rc;
    res->verify_ms = dr_mono_ms() - t0;
    if (o->dry_run) {
        restore_say(o, "dry run: nothing was changed; %d members would hold revision %" PRId64, n,
                    p->target);
        res->revision = p->target;
        return 0;
    }
    if (mkdir(o->members_dir, 0700) != 0 && errno != EEXIST)
        return dr_error_set(DR_EIO, "cannot create '%s': %s", o->members_dir, strerror(errno));
    if ((rc = dr_fs_mkdtemp("restore", scratch, sizeof scratch)) < 0)
        return rc;
    snprintf(data, sizeof data, "%s/data", scratch);
    snprintf(log, sizeof log, "%s/etcd.log", scratch);
    snprintf(db, sizeof db, "%s/member/snap/db", data);
    dr_progress_phase(o->progress, "restoring snapshot");
    if ((rc = restore_base(repo, p, data, "drd-restore", "drd-restore=http://127.0.0.1:2380",
                           "http://127.0.0.1:2380")) < 0)
        goto out;
    if (p->n_segs) {
        dr_progress_phase(o->progress, "replaying segments");
        if ((rc = dr_etcdtool_start(data, "drd-restore", log, 60000, &proc)) < 0 ||
            (rc = dr_restore_replay(repo, p, dr_etcdtool_url(proc), &res->replayed)) < 0)
            goto out;
        dr_etcdtool_stop(proc);
        proc = NULL;
        restore_say(o, "replayed %" PRId64 " revisions", res->replayed);
    }
    dr_progress_phase(o->progress, "making the members");
    for (; made < n; made++) {
        if (snprintf(partial[made], sizeof partial[made], "%s.restoring-%ld", dirs[made],
                     (long)getpid()) >= (int)sizeof partial[made]) {
            rc = dr_error_set(DR_EUSAGE, "--members-dir '%s' is too long", o->members_dir);
            goto out;
        }
        if ((rc = dr_etcdtool_restore_from(partial[made], names[made], o->initial_cluster,
                                           peers[made], write_member_db, db)) < 0) {
            made++; /* its partial dir may exist */
            goto out;
        }
    }
    for (; renamed < n; renamed++) {
        if (dr_etcdtool_dir_state(dirs[renamed]) == 1)
            rmdir(dirs[renamed]);
        if (rename(partial[renamed], dirs[renamed]) != 0) {
            rc = dr_error_set(DR_EIO, "cannot rename '%s' to '%s': %s", partial[renamed],
                              dirs[renamed], strerror(errno));
            goto out;
        }
        chmod(dirs[renamed], 0700);
    }
    res->revision = p->target;
    res->total_ms = dr_mono_ms() - t0;
    restore_say(o,
                "restored %d members at revision %" PRId64 " in %.1f s: start each etcd with its "
                "--name, --data-dir %s/<name> and --initial-cluster %s",
                n, p->target, (double)res->total_ms / 1000.0, o->members_dir, o->initial_cluster);
out:
    dr_etcdtool_stop(proc);
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        for (int i = renamed; i < made; i++)
            dr_fs_remove_tree(partial[i]);
        for (int i = 0; i < renamed; i++) /* all or none */
            dr_fs_remove_tree(dirs[i]);
        dr_error_set(rc, "%s", msg);
    }
    if (scratch[0])
        dr_fs_remove_tree(scratch);
    return rc;
}

int dr_restore_run(dr_repo *repo, const dr_restore_plan *p, const dr_restore_opts *o,
                   dr_restore_result *res)
{
    int rc = 0;
    char partial[4200], log[4300] = "";
    dr_etcd_proc *proc = NULL;
    int made_partial = 0;
    int64_t t0 = dr_mono_ms();
    memset(res, 0, sizeof *res);
    if (o->members_dir && !(o->bump_revision > 0 || o->mark_compacted)) {
        restore_say(o, "%s snapshot %s (revision %" PRId64 ")%s",
                    o->dry_run ? "would restore" : "restoring", p->base.id, p->base.rev_end,
                    p->n_segs ? " and replaying its segments" : "");
        restore_progress_begin(repo, p, o->progress, !o->dry_run);
        rc = restore_members(repo, p, o, res, t0);
        restore_progress_done(repo);
        return rc;
    }
    if (dr_etcdtool_dir_state(o->data_dir) == 2)
        return dr_error_set(DR_EUSAGE, "--data-dir '%s' is not empty: refusing to restore over it",
                            o->data_dir);
    if (o->bump_revision > 0 || o->mark_compacted)
        return dr_error_set(DR_EUSAGE,
                            "--bump-revision/--mark-compacted are not supported with etcd %s "
                            "(etcdutl snapshot restore has them from etcd 3.5.x on)",
                            dr_etcdtool_version());
    restore_say(o, "%s snapshot %s (revision %" PRId64 ") into %s",
                o->dry_run ? "would restore" : "restoring", p->base.id, p->base.rev_end,
                o->data_dir);
    if (p->n_segs)
        restore_say(o,
                    "%s %zu segment(s) from revision %" PRId64 " to %" PRId64
                    " through a throw-away etcd on a private unix socket",
                    o->dry_run ? "would replay" : "replaying", p->n_segs, p->base.rev_end + 1,
                    p->target);
    restore_progress_begin(repo, p, o->progress, !o->dry_run);
    if ((rc = restore_verify_plan(repo, p, o, o->dry_run)) < 0)
        goto out;
    res->verify_ms = dr_mono_ms() - t0;
    if (o->dry_run) {
        restore_say(o, "dry run: nothing was changed; %s would hold revision %" PRId64, o->data_dir,
                    p->target);
        res->revision = p->target;
        goto out;
    }
    snprintf(partial, sizeof partial, "%s.restoring-%ld", o->data_dir, (long)getpid());
    snprintf(log, sizeof log, "%s.etcd.log", partial);
    made_partial = 1;
    dr_progress_phase(o->progress, "restoring snapshot");
    if ((rc = restore_base(repo, p, partial, o->name, o->initial_cluster, o->peer_urls)) < 0)
        goto out;
    if (p->n_segs) {
        dr_progress_phase(o->progress, "replaying segments");
        if ((rc = dr_etcdtool_start(partial, o->name, log, 60000, &proc)) < 0)
            goto out;
        if ((rc = dr_restore_replay(repo, p, dr_etcdtool_url(proc), &res->replayed)) < 0)
            goto out;
        dr_etcdtool_stop(proc);
        proc = NULL;
        restore_say(o, "replayed %" PRId64 " revisions", res->replayed);
    }
    /* the target name appears only now, complete */
    if (dr_etcdtool_dir_state(o->data_dir) == 1)
        rmdir(o->data_dir);
    if (rename(partial, o->data_dir) != 0) {
        rc = dr_error_set(DR_EIO, "cannot rename '%s' to '%s': %s", partial, o->data_dir,
                          strerror(errno));
        goto out;
    }
    made_partial = 0;
    chmod(o->data_dir, 0700);
    res->revision = p->target;
    res->total_ms = dr_mono_ms() - t0;
    restore_say(
        o, "restored %s at revision %" PRId64 " in %.1f s: start etcd with --data-dir %s --name %s",
        o->data_dir, p->target, (double)res->total_ms / 1000.0, o->data_dir, o->name);
out:
    restore_progress_done(repo);
    dr_etcdtool_stop(proc);
    if (log[0])
        unlink(log);
    if (made_partial)
        dr_fs_remove_tree(partial);
    return rc;
}
