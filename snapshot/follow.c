/*
 * drd snapshot follow: revision segments for point-in-time restore.
 *
 * State machine:
 *   START    --sync catalog--> newest stored revision C (none: SAVE)
 *   SAVE     full snapshot, C = its revision --> WATCH
 *   WATCH    watch from C+1 --events--> OPEN (a segment writer, first revision C+1)
 *            --compacted--> SAVE (the history we need is gone; a new base is taken)
 *   OPEN     events appended, grouped by revision; every complete watch response ends a
 *            revision boundary; cut when the period or the size limit is reached
 *            --cut--> commit segment [C+1, last], C = last --> WATCH (same stream)
 *   stop     commit the open segment, release the lock, return 0
 * A crash loses only the open segment (never visible: the upload is unfinished); the next run
 * starts again at C+1 from the store's newest object.
 *
 * etcd sends all events of one revision in one watch response (its fragments are joined by
 * drd/lib/etcd before we see them), so the end of a response is a revision boundary and a cut
 * there never splits a revision.
 * Must never commit a segment whose first revision is not C+1, nor one with a gap inside.
 */
#include "snapshot/snapshot.h"
#include "drd/lib/epoch/epoch.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_ENTRY_MAX (1u << 20) /* events buffered per tar entry */
#define LEASES_SEEN_MAX 4096

typedef struct seg {
    dr_repo_writer *w;
    dr_archive_writer *ar;
    int64_t first, last; /* revisions */
    int64_t opened_ms;
    uint64_t bytes;
    int64_t events, leases;
    int entries;
    dr_buf chunk;     /* events not yet written as an entry */
    dr_sha256 *plain; /* over all event bytes */
    int64_t seen[LEASES_SEEN_MAX];
    size_t n_seen;
} seg;

static void seg_free(seg *s)
{
    dr_repo_writer_free(s->w);
    dr_buf_free(&s->chunk);
    dr_sha256_free(s->plain);
    memset(s, 0, sizeof *s);
}

static int seg_open(dr_repo *repo, const dr_snapshot_follow_opts *o, int64_t first, seg *s)
{
    memset(s, 0, sizeof *s);
    int rc = dr_repo_writer_new(repo, "follow", o->compression, &s->w);
    if (rc == 0)
        rc = dr_sha256_new(&s->plain);
    if (rc < 0) {
        seg_free(s);
        return rc;
    }
    s->ar = dr_repo_writer_archive(s->w);
    s->first = first;
    s->last = first - 1;
    s->opened_ms = dr_mono_ms();
    return 0;
}

static int seg_flush_chunk(seg *s)
{
    if (!s->chunk.len)
        return 0;
    char name[32];
    snprintf(name, sizeof name, "events-%06d.bin", ++s->entries);
    int rc = dr_archive_entry_begin(s->ar, name, s->chunk.len, dr_wall_ms() / 1000);
    if (rc == 0)
        rc = dr_archive_entry_write(s->ar, s->chunk.data, s->chunk.len);
    if (rc == 0)
        rc = dr_archive_entry_end(s->ar);
    if (rc == 0)
        rc = dr_sha256_update(s->plain, s->chunk.data, s->chunk.len);
    s->bytes += s->chunk.len;
    s->chunk.len = 0;
    return rc;
}

static int seg_commit(dr_etcd *etcd, seg *s, dr_manifest *m)
{
    int rc = seg_flush_chunk(s);
    if (rc < 0)
        return rc;
    memset(m, 0, sizeof *m);
    m->kind = DR_KIND_INCR;
    m->rev_start = s->first;
    m->rev_end = s->last;
    m->created_ms = dr_wall_ms();
    dr_repo_make_id(DR_KIND_INCR, s->first, s->last, m->created_ms, m->id);
    uint8_t d[32];
    if ((rc = dr_sha256_final(s->plain, d)) < 0)
        return rc;
    dr_hex(d, 32, m->plain_sha256);
    m->plain_bytes = s->bytes;
    m->events = s->events;
    m->leases = s->leases;
    m->key_count = -1;
    dr_etcd_status st;
    if (dr_etcd_status_get(etcd, &st) == 0) {
        m->cluster_id = st.header.cluster_id;
        m->member_id = st.header.member_id;
        snprintf(m->etcd_version, sizeof m->etcd_version, "%s", st.version);
    }
    dr_error_clear();
    snprintf(m->etcd_endpoint, sizeof m->etcd_endpoint, "%s", dr_etcd_endpoint(etcd));
    if ((rc = dr_repo_writer_seal(s->w, m, m->created_ms / 1000)) < 0)
        return rc;
    if ((rc = dr_repo_writer_commit(s->w, m)) < 0)
        return rc;
    dr_info("segment %s: revisions %" PRId64 "-%" PRId64 ", %" PRId64 " events, %" PRIu64 " bytes",
            m->id, m->rev_start, m->rev_end, m->events, m->plain_bytes);
    return 0;
}

static int lease_seen(seg *s, int64_t id)
{
    for (size_t i = 0; i < s->n_seen; i++)
        if (s->seen[i] == id)
            return 1;
    if (s->n_seen < LEASES_SEEN_MAX)
        s->seen[s->n_seen++] = id;
    return 0;
}

typedef struct follower {
    dr_repo *repo;
    dr_etcd *etcd;
    const dr_snapshot_follow_opts *o;
    dr_repo_lock *lock;
    int64_t cursor; /* every revision <= cursor is in the store */
    seg s;
    int open;
    dr_buf rev; /* events of the revision being assembled */
    uint32_t rev_count;
    int64_t rev_no;
} follower;

static int finish_revision(follower *f)
{
    if (!f->rev_no)
        return 0;
    int rc = dr_seg_encode_rev(&f->s.chunk, f->rev_no, f->rev_count);
    if (rc == 0)
        rc = dr_buf_append(&f->s.chunk, f->rev.data, f->rev.len);
    f->s.last = f->rev_no;
    f->rev.len = 0;
    f->rev_count = 0;
    f->rev_no = 0;
    if (rc == 0 && f->s.chunk.len >= EVENTS_ENTRY_MAX)
        rc = seg_flush_chunk(&f->s);
    return rc;
}

static int add_event(follower *f, const dr_etcd_event *ev)
{
    int rc = 0;
    int64_t rev = ev->kv.mod_revision;
    if (!f->open) {
        if ((rc = seg_open(f->repo, f->o, f->cursor + 1, &f->s)) < 0)
            return rc;
        f->open = 1;
    }
    if (rev != f->rev_no) {
        if ((rc = finish_revision(f)) < 0)
            return rc;
        if (rev != f->s.last + 1)
            return dr_error_set(
                DR_EPROTO, "watch jumped from revision %" PRId64 " to %" PRId64 " (events missing)",
                f->s.last, rev);
        f->rev_no = rev;
    }
    if (ev->type == DR_EV_PUT && ev->kv.lease && !lease_seen(&f->s, ev->kv.lease)) {
        int64_t ttl = 0, granted = 0;
        rc = dr_etcd_lease_ttl(f->etcd, ev->kv.lease, &ttl, &granted, NULL);
        if (rc == DR_ENOTFOUND) /* gone already: its keys' deletes follow */
            granted = 0, rc = 0;
        if (rc < 0)
            return rc;
        dr_error_clear();
        dr_seg_event l = {.type = 'L', .lease = ev->kv.lease, .ttl = granted};
        if ((rc = dr_seg_encode_event(&f->rev, &l)) < 0)
            return rc;
        f->rev_count++;
        f->s.leases++;
    }
    dr_seg_event e = {.type = ev->type == DR_EV_PUT ? 'P' : 'D',
                      .key = ev->kv.key,
                      .key_len = ev->kv.key_len,
                      .value = ev->kv.value,
                      .value_len = ev->kv.value_len,
                      .create_revision = ev->kv.create_revision,
                      .mod_revision = ev->kv.mod_revision,
                      .version = ev->kv.version,
                      .lease = ev->kv.lease};
    if ((rc = dr_seg_encode_event(&f->rev, &e)) < 0)
        return rc;
    f->rev_count++;
    f->s.events++;
    return 0;
}

/* Commits the open segment (if it holds any revision) and moves the cursor. */
static int cut(follower *f)
{
    int rc = finish_revision(f);
    if (rc < 0 || !f->open)
        return rc;
    if (f->s.last >= f->s.first) {
        dr_manifest m;
        if ((rc = seg_commit(f->etcd, &f->s, &m)) < 0)
            return rc;
        f->cursor = m.rev_end;
    }
    seg_free(&f->s);
    f->open = 0;
    return 0;
}

typedef struct newest_revs {
    int64_t full, incr;
} newest_revs;

static int newest_kinds(void *ctx, const dr_manifest *m)
{
    newest_revs *n = ctx;
    int64_t *c = m->kind == DR_KIND_FULL ? &n->full : &n->incr;
    if (m->rev_end > *c)
        *c = m->rev_end;
    return 0;
}

/* The newest stored revision of each kind (after a sync). */
static int newest_stored(dr_repo *repo, newest_revs *n)
{
    memset(n, 0, sizeof *n);
    return dr_repo_each(repo, newest_kinds, n);
}

/* Where to resume: after the newest segment (a full snapshot taken meanwhile by a CronJob does
 * not end the chain: resuming keeps every revision restorable), else after the newest full. */
static int64_t resume_point(const newest_revs *n)
{
    return n->incr ? n->incr : n->full;
}

static int stopping(const follower *f);
static int base_snapshot(follower *f, const char *why);
static int base_snapshot_take(follower *f, const char *why);

/* The history after the cursor is compacted: continue after a stored full snapshot that is past
 * the compaction, or take a new one. */
static int after_compaction(follower *f, int64_t compact_rev)
{
    newest_revs n;
    int rc = dr_repo_sync(f->repo, NULL);
    if (rc == 0)
        rc = newest_stored(f->repo, &n);
    if (rc < 0)
        return rc;
    int64_t full = n.full;
    if (compact_rev > 0 && full >= compact_rev && full > f->cursor) {
        dr_warn("revisions %" PRId64 "-%" PRId64 " were compacted before they reached a segment; "
                "continuing after the full snapshot at %" PRId64,
                f->cursor + 1, full, full);
        f->cursor = full;
        return 0;
    }
    return base_snapshot(f, "revision history compacted past the store");
}

static void set_in_base(const follower *f, int v)
{
    if (f->o->in_base)
        atomic_store(f->o->in_base, v);
}

static int base_snapshot(follower *f, const char *why)
{
    set_in_base(f, 1);
    int rc = base_snapshot_take(f, why);
    set_in_base(f, 0);
    return rc;
}

static int base_snapshot_take(follower *f, const char *why)
{
    dr_info("taking a full snapshot: %s", why);
    dr_snapshot_save_opts so = {.compression = f->o->compression, .labels = "by=follow"};
    for (;;) {
        dr_manifest m;
        int rc = dr_snapshot_save(f->repo, f->etcd, &so, &m);
        if (rc == 0) {
            f->cursor = m.rev_end;
            return 0;
        }
        if (rc != DR_EBUSY || stopping(f))
            return rc;
        /* a scheduled save is running: its snapshot will do as our base */
        dr_info("%s; waiting for it", dr_error_msg());
        dr_error_clear();
        dr_sleep_ms(5000);
        newest_revs n;
        if ((rc = dr_repo_sync(f->repo, NULL)) < 0 || (rc = newest_stored(f->repo, &n)) < 0)
            return rc;
        if (n.full > f->cursor) {
            f->cursor = n.full;
            return 0;
        }
    }
}

static int stopping(const follower *f)
{
    return f->o->stop && *f->o->stop;
}

static int reached(const follower *f)
{
    return f->o->until_revision > 0 && f->cursor >= f->o->until_revision;
}

int dr_snapshot_follow(dr_repo *repo, dr_etcd *etcd, const dr_snapshot_follow_opts *o)
{
    int rc = 0;
    follower f = {.repo = repo, .etcd = etcd, .o = o};
    set_in_base(&f, 1); /* until it knows its base */
    dr_etcd_watch *w = NULL;
    dr_backoff bo;
    dr_backoff_init(&bo, 200, 10000);
    int64_t period = o->segment_period_ms > 0 ? o->segment_period_ms : 10000;
    uint64_t max_bytes = o->segment_max_bytes ? o->segment_max_bytes : 64u << 20;
    if ((rc = dr_epoch_check_snapshot(repo, etcd)) < 0) /* a demoted side writes nothing */
        goto out;
    if ((rc = dr_repo_lock_take(repo, "follow", &f.lock)) < 0)
        goto out;
    int cleaned = 0; /* what an interrupted follow left (we hold its lock) */
    if ((rc = dr_repo_cleanup(repo, "follow", 0, &cleaned)) < 0)
        goto out;
    newest_revs stored;
    if ((rc = newest_stored(repo, &stored)) < 0)
        goto out;
    f.cursor = resume_point(&stored);
    if (f.cursor == 0 && (rc = base_snapshot(&f, "the store holds none")) < 0)
        goto out;
    set_in_base(&f, 0);
    dr_info("following from revision %" PRId64, f.cursor + 1);
    while (!stopping(&f) && !reached(&f)) {
        if ((rc = dr_repo_lock_refresh(f.lock)) < 0)
            goto out;
        if (!w) {
            uint8_t all = 0;
            dr_etcd_watch_opts wo = {.key = &all,
                                     .key_len = 1,
                                     .range_end = &all,
                                     .range_end_len = 1,
                                     .start_revision = f.cursor + 1,
                                     .progress_notify = 1};
            int64_t compact = 0;
            rc = dr_etcd_watch_open(etcd, &wo, &w, &compact);
            if (rc == DR_ECOMPACTED) {
                w = NULL;
                if ((rc = after_compaction(&f, compact)) < 0)
                    goto out;
                continue;
            }
            if (rc == DR_EUNAVAILABLE || rc == DR_ETIMEOUT) {
                dr_warn("watch: %s; retrying", dr_error_msg());
                dr_sleep_ms(dr_backoff_next(&bo));
                dr_etcd_failover(etcd);
                dr_error_clear();
                continue;
            }
            if (rc < 0)
                goto out;
        }
        int64_t wait = 1000;
        if (f.open) {
            int64_t left = period - (dr_mono_ms() - f.s.opened_ms);
            wait = left < 0 ? 0 : left < wait ? left : wait;
        }
        dr_etcd_watch_res res;
        rc = dr_etcd_watch_next(w, wait, &res);
        if (rc == 0) {
            dr_backoff_reset(&bo);
            for (size_t i = 0; i < res.n_events && rc == 0; i++)
                rc = add_event(&f, &res.events[i]);
            dr_etcd_watch_res_free(&res);
            if (rc < 0)
                goto out;
            if ((rc = finish_revision(&f)) < 0) /* a response ends on a revision boundary */
                goto out;
            if (f.open && o->until_revision > 0 && f.s.last >= o->until_revision &&
                (rc = cut(&f)) < 0)
                goto out;
        } else if (rc == DR_ETIMEOUT) {
            rc = 0;
            dr_error_clear();
        } else if (rc == DR_ECOMPACTED) {
            int64_t compact = res.compact_revision;
            dr_etcd_watch_close(w);
            w = NULL;
            if ((rc = cut(&f)) < 0 || (rc = after_compaction(&f, compact)) < 0)
                goto out;
            continue;
        } else if (rc == DR_EUNAVAILABLE) {
            dr_warn("watch broke: %s; reconnecting", dr_error_msg());
            dr_error_clear();
            dr_etcd_watch_close(w);
            w = NULL;
            if ((rc = cut(&f)) < 0)
                goto out;
            continue;
        } else {
            goto out;
        }
        if (f.open &&
            (dr_mono_ms() - f.s.opened_ms >= period || f.s.bytes + f.s.chunk.len >= max_bytes)) {
            if ((rc = cut(&f)) < 0)
                goto out;
        }
    }
    rc = cut(&f); /* a clean stop commits what is open */
out:
    if (rc < 0 && f.open)
        dr_warn("the open segment from revision %" PRId64 " is not committed; the next run "
                "starts there again",
                f.s.first);
    seg_free(&f.s);
    dr_buf_free(&f.rev);
    dr_etcd_watch_close(w);
    dr_repo_lock_release(f.lock);
    set_in_base(&f, 0);
    return rc;
}
