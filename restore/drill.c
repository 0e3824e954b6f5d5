/*
 * Restore drills: prove that a backup restores, and measure how long it takes (RTO).
 *
 *   t0 --> verify objects --> get etcd.db --> snapshot restore (scratch dir) --> throw-away etcd
 *      --> [replay segments] --> first successful read (RTO = now - t0)
 *      --> checks: revision, key count, keys per resource and HashKV (full snapshot) against the
 *          manifest; the restored keys per resource are reported next to the snapshot's either way
 *      --> catalog row + report; the scratch dir and the etcd are removed either way
 * Must never touch any etcd but the throw-away one it started (on a private unix socket), and
 * never report a pass when a check could not run.
 */
#include "drd/lib/catalog/catalog.h"
#include "drd/lib/etcd/etcd.h"
#include "drd/lib/etcdtool/etcdtool.h"
#include "drd/lib/json/json.h"
#include "drd/lib/kube/kube.h"
#include "policies/policies.h"
#include "restore_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct check {
    const char *name;
    int ok;
    char detail[256];
} check;

/* "pods: restored 1202, snapshot 1203" for the first bucket (by name) that differs. */
static void first_difference(const dr_key_counts *got, const dr_key_counts *want, char *out,
                             size_t cap)
{
    size_t i = 0, k = 0;
    while (i < got->n || k < want->n) {
        int c = i == got->n ? 1 : k == want->n ? -1 : strcmp(got->v[i].name, want->v[k].name);
        const char *name = c <= 0 ? got->v[i].name : want->v[k].name;
        int64_t a = c <= 0 ? got->v[i].n : 0, b = c >= 0 ? want->v[k].n : 0;
        if (a != b) {
            snprintf(out, cap, "%s: restored %" PRId64 ", snapshot %" PRId64, name, a, b);
            return;
        }
        i += c <= 0;
        k += c >= 0;
    }
    snprintf(out, cap, "other keys: restored %" PRId64 ", snapshot %" PRId64, got->other,
             want->other);
}

typedef struct enc_line {
    char *out;
    size_t cap, o;
} enc_line;

static int enc_line_cb(void *ctx, const char *key, int64_t n)
{
    enc_line *l = ctx;
    if (l->o < l->cap) {
        int w =
            snprintf(l->out + l->o, l->cap - l->o, "%s%s (%" PRId64 ")", l->o ? ", " : "", key, n);
        l->o = w < 0 ? l->cap : l->o + (size_t)w;
    }
    return 0;
}

int dr_drill_enc_line(const char *report, char *out, size_t cap)
{
    dr_json *j = NULL;
    int64_t values = 0, other = 0;
    enc_line l = {.out = out, .cap = cap};
    if (cap)
        out[0] = 0;
    int rc = dr_json_parse(report, strlen(report), &j);
    if (rc == 0)
        rc = dr_json_i64(j, "encryption_keys.values", &values);
    if (rc == 0)
        rc = dr_json_i64(j, "encryption_keys.other", &other);
    if (rc == 0)
        rc = dr_json_each_i64(j, "encryption_keys.keys", enc_line_cb, &l);
    dr_json_free(j);
    if (rc < 0)
        return rc;
    if (other && l.o < cap)
        enc_line_cb(&l, "values of further keys", other);
    if (l.o < cap)
        snprintf(out + l.o, cap - l.o, "%s%" PRId64 " values read", l.o ? "; " : "none; ", values);
    else if (cap > 4)
        memcpy(out + cap - 4, "...", 4);
    return 0;
}

static void json_checks(dr_buf *b, const check *c, int n)
{
    dr_buf_printf(b, "\"checks\": [");
    for (int i = 0; i < n; i++) {
        dr_buf_printf(b, "%s{\"name\": \"%s\", \"ok\": %s, \"detail\": ", i ? ", " : "", c[i].name,
                      c[i].ok ? "true" : "false");
        dr_buf_json_str(b, c[i].detail, strlen(c[i].detail));
        dr_buf_printf(b, "}");
    }
    dr_buf_printf(b, "]");
}

int dr_drill_run(dr_repo *repo, const dr_restore_plan *p, dr_progress *progress,
                 dr_key_counts *keys, char **report)
{
    dr_key_counts got = {0}, want = {0};
    dr_k8s_enc_counts *enc = calloc(1, sizeof *enc);
    int counted = 0, recorded = 0, enc_counted = 0;
    int rc = 0, nc = 0, all_ok = 1;
    check c[8];
    memset(c, 0, sizeof c);
    char scratch[4096] = "", data[4200], log[4200];
    dr_etcd_proc *proc = NULL;
    dr_etcd *e = NULL;
    int64_t started = dr_wall_ms(), t0 = dr_mono_ms(), rto = -1, replayed = 0;
    char failure[1024] = "";
    if (!enc) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = dr_fs_mkdtemp("drill", scratch, sizeof scratch)) < 0)
        goto out;
    snprintf(data, sizeof data, "%s/data", scratch);
    snprintf(log, sizeof log, "%s/etcd.log", scratch);
    dr_restore_opts quiet = {0};
    restore_progress_begin(repo, p, progress, 1);
    if ((rc = restore_verify_plan(repo, p, &quiet, 0)) < 0)
        goto out;
    dr_progress_phase(progress, "restoring snapshot");
    if ((rc = restore_base(repo, p, data, "drill", "drill=http://127.0.0.1:2380",
                           "http://127.0.0.1:2380")) < 0)
        goto out;
    dr_progress_phase(progress, "starting etcd");
    if ((rc = dr_etcdtool_start(data, "drill", log, 120000, &proc)) < 0)
        goto out;
    dr_progress_phase(progress, "replaying segments");
    if (p->n_segs && (rc = dr_restore_replay(repo, p, dr_etcdtool_url(proc), &replayed)) < 0)
        goto out;
    dr_progress_phase(progress, "checking the restored etcd");
    dr_etcd_opts eo = {.endpoints = dr_etcdtool_url(proc), .timeout_ms = 30000};
    if ((rc = dr_etcd_open(&e, &eo)) < 0)
        goto out;
    int64_t n = 0;
    if ((rc = dr_etcd_count_all(e, 0, &n)) < 0) /* the first successful read */
        goto out;
    rto = dr_mono_ms() - t0;
    dr_etcd_status st;
    if ((rc = dr_etcd_status_get(e, &st)) < 0)
        goto out;
    c[nc].name = "revision";
    c[nc].ok = st.header.revision == p->target;
    snprintf(c[nc].detail, sizeof c[nc].detail, "restored %" PRId64 ", expected %" PRId64,
             st.header.revision, p->target);
    nc++;
    if (!p->n_segs && p->base.key_count >= 0) {
        c[nc].name = "key_count";
        c[nc].ok = n == p->base.key_count;
        snprintf(c[nc].detail, sizeof c[nc].detail, "restored %" PRId64 ", manifest %" PRId64, n,
                 p->base.key_count);
        nc++;
    }
    if (!p->n_segs && p->base.has_hashkv) {
        uint32_t h = 0;
        int64_t compact = 0;
        c[nc].name = "hashkv";
        if ((rc = dr_etcd_hashkv(e, p->target, &h, &compact, NULL)) < 0)
            goto out;
        c[nc].ok = h == p->base.hashkv;
        snprintf(c[nc].detail, sizeof c[nc].detail, "restored %" PRIu32 ", manifest %" PRIu32, h,
                 p->base.hashkv);
        nc++;
    }
    /* keys per resource: restored at the point, recorded with the snapshot (at its revision:
     * compared only when the point is the snapshot's) */
    dr_progress_phase(progress, "counting keys per resource");
    if ((rc = dr_kube_count(e, p->target, &got)) < 0)
        goto out;
    counted = 1;
    if (p->base.has_key_counts) {
        if ((rc = dr_repo_key_counts(repo, &p->base, &want)) < 0)
            goto out;
        recorded = 1;
    }
    dr_progress_phase(progress, "counting encryption keys");
    if ((rc = dr_enc_keys_scan(e, NULL, 0, p->target, enc, NULL)) < 0)
        goto out;
    enc_counted = 1;
    if (!p->n_segs && recorded) {
        c[nc].name = "key_counts";
        c[nc].ok = dr_key_counts_equal(&got, &want);
        if (c[nc].ok)
            snprintf(c[nc].detail, sizeof c[nc].detail,
                     "%zu resources and %" PRId64 " other keys as recorded", got.n, got.other);
        else
            first_difference(&got, &want, c[nc].detail, sizeof c[nc].detail);
        nc++;
    }
    if (p->n_segs) {
        c[nc].name = "replay";
        c[nc].ok = replayed == p->target - p->base.rev_end;
        snprintf(c[nc].detail, sizeof c[nc].detail,
                 "%" PRId64 " revisions replayed from %zu segment(s)", replayed, p->n_segs);
        nc++;
    }
    for (int i = 0; i < nc; i++)
        if (!c[i].ok) {
            all_ok = 0;
            snprintf(failure, sizeof failure, "%s check failed: %s", c[i].name, c[i].detail);
            break;
        }
out:
    restore_progress_done(repo);
    if (rc < 0) {
        all_ok = 0;
        snprintf(failure, sizeof failure, "%s", dr_error_msg());
    }
    dr_etcd_close(e);
    dr_etcdtool_stop(proc);
    if (scratch[0])
        dr_fs_remove_tree(scratch);
    int64_t total = dr_mono_ms() - t0;
    dr_buf b = {0};
    dr_buf_printf(&b,
                  "{\"ok\": %s, \"snapshot\": \"%s\", \"revision\": %" PRId64
                  ", \"segments\": %zu, \"replayed\": %" PRId64 ", \"rto_ms\": %" PRId64
                  ", \"total_ms\": %" PRId64 ", \"etcd_version\": \"%s\", \"started_ms\": %" PRId64
                  ", ",
                  all_ok ? "true" : "false", p->base.id, p->target, p->n_segs, replayed, rto, total,
                  dr_etcdtool_version(), started);
    json_checks(&b, c, nc);
    dr_buf_printf(&b, ", \"keys\": ");
    if (counted) {
        dr_buf_printf(&b, "{\"revision\": %" PRId64 ", \"restored\": ", p->target);
        dr_key_counts_json(&got, &b);
        dr_buf_printf(&b, ", \"snapshot_revision\": %" PRId64 ", \"snapshot\": ", p->base.rev_end);
        if (recorded)
            dr_key_counts_json(&want, &b);
        else
            dr_buf_printf(&b, "null");
        dr_buf_printf(&b, "}");
    } else {
        dr_buf_printf(&b, "null");
    }
    dr_buf_printf(&b, ", \"encryption_keys\": ");
    if (enc_counted)
        dr_k8s_enc_counts_json(enc, &b);
    else
        dr_buf_printf(&b, "null");
    dr_buf_printf(&b, ", \"failure\": ");
    dr_buf_json_str(&b, failure, strlen(failure));
    dr_buf_printf(&b, "}");
    dr_catalog_drill d = {.started_ms = started,
                          .snapshot_id = p->base.id,
                          .revision = p->target,
                          .ok = all_ok,
                          .rto_ms = rto,
                          .report = b.data};
    int saved_code = dr_error_code();
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", dr_error_msg());
    if (dr_catalog_drill_add(dr_repo_catalog(repo), &d) < 0)
        dr_warn("cannot record the drill: %s", dr_error_msg());
    if (saved_code)
        dr_error_set(saved_code, "%s", saved);
    *report = b.data;
    if (keys && counted) {
        *keys = got;
        memset(&got, 0, sizeof got);
    }
    dr_key_counts_free(&got);
    dr_key_counts_free(&want);
    free(enc);
    if (rc < 0)
        return rc;
    if (!all_ok)
        return dr_error_set(DR_ECHECKSUM, "drill failed: %s", failure);
    return 0;
}
