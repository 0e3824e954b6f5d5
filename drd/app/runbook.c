/*
 * The runbook runner: drd failover --planned / --emergency, drd failback, drd runbook resume.
 *
 * A run lives in <state_dir>/runs/<id>/:
 *   run           the context fixed at start and the figures found on the way (key value lines)
 *   state         the step machine (policies/runbook.c), rewritten atomically after every change
 *   runbook.yaml  the runbook as it was when the run started (a resume runs the same steps)
 *   audit.log     one JSON line per event (who, when, step, attempt, result, output), appended
 *                 and fsynced before the step goes on
 *   divergent.tsv failback: what the old primary wrote after the promoted revision
 *   divergent.jsonl   the same events with keys and values (base64)
 * <state_dir>/runs/active names the run in progress (or failed: resumable) and is removed when it
 * is done or aborted; a second run is refused while it exists. One runner at a time holds
 * <state_dir>/runs/lock (flock).
 *
 * A run (each step's own states: policies/policies.h, "the step machine"):
 *
 *   start --(roles from the newest epoch; run dir, active)--> step 1 .. step n --> done
 *                   each step: running --(ok)--> next; --(error, retries left)--> waiting
 *                   --(retry_delay)--> running; --(no retry left)--> failed (resume: again)
 *   kill -9 anywhere: the state file says which step was running; resume runs it again, so every
 *   step is written to be repeatable (a fence already up, an epoch this run already wrote, a
 *   drained replication are "ok" at once; hooks are told the attempt number).
 *
 * Must never: promote a side that a newer epoch names as demoted, lift a fence before the epoch
 * names the new primary, drop what the old primary wrote after the promotion without listing it,
 * or print a secret (hooks get names and figures, never keys).
 */
#include "drd/app/runbook.h"
#include "drd/app/cmd.h"
#include "drd/app/rpo.h"
#include "drd/core/core.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/epoch/epoch.h"
#include "drd/lib/http/http.h"
#include "drd/lib/yaml/yaml.h"
#include "restore/restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const op_names[] = {"planned", "emergency", "failback"};

/* The run's context: fixed at start, then the figures steps find. Saved as "key value" lines. */
typedef struct ctx {
    char id[96], who[160], runbook[80];
    int op;
    int64_t started_ms;
    char old_name[64], new_name[64]; /* old and new primary */
    int64_t base_epoch, new_epoch;
    int64_t promoted_rev, promoted_ms; /* the new primary's revision when promoted */
    int64_t old_rev;                   /* the old primary's revision when fenced and drained */
    int64_t rpo_revs, rpo_ms, rto_ms;  /* -1: not known (yet) */
    /* emergency: the loss window the replication recorded (drd/app/rpo.h; 0: not known) */
    int64_t applied_rev, applied_ms;     /* R, T: the standby's newest applied revision, when */
    int64_t caught_up_rev, caught_up_ms; /* T0: every write acknowledged before it is kept */
    int64_t heard_ms;                    /* T1: the old primary last answered */
    int64_t divergent;                   /* failback: events listed */
} ctx;

typedef struct runner {
    drd_config *cfg;
    const dr_conf *c;
    dr_runbook *rb;
    dr_run run;
    ctx x;
    char dir[1200];
    int dry_run;
    int old_i, new_i; /* cluster indexes */
    size_t step;      /* the step running */
    int64_t step_deadline_ms;
} runner;

/* ---- files ---- */

/* Copies src into dst, cut to cap - 1 bytes. */
static void set(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void runs_dir(const drd_config *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/runs", cfg->c->state_dir);
}

static int ctx_save(const runner *r)
{
    char path[1300];
    dr_buf b = {0};
    const ctx *x = &r->x;
    snprintf(path, sizeof path, "%s/run", r->dir);
    int rc = dr_buf_printf(
        &b,
        "id %s\nop %s\nrunbook %s\nwho %s\nstarted_ms %" PRId64
        "\nold_primary %s\nnew_primary %s\nbase_epoch %" PRId64 "\nnew_epoch %" PRId64
        "\npromoted_rev %" PRId64 "\npromoted_ms %" PRId64 "\nold_rev %" PRId64
        "\nrpo_revs %" PRId64 "\nrpo_ms %" PRId64 "\nrto_ms %" PRId64 "\ndivergent %" PRId64
        "\napplied_rev %" PRId64 "\napplied_ms %" PRId64 "\ncaught_up_rev %" PRId64
        "\ncaught_up_ms %" PRId64 "\nheard_ms %" PRId64 "\n",
        x->id, op_names[x->op], x->runbook, x->who, x->started_ms, x->old_name, x->new_name,
        x->base_epoch, x->new_epoch, x->promoted_rev, x->promoted_ms, x->old_rev, x->rpo_revs,
        x->rpo_ms, x->rto_ms, x->divergent, x->applied_rev, x->applied_ms, x->caught_up_rev,
        x->caught_up_ms, x->heard_ms);
    if (rc == 0)
        rc = dr_fs_write_atomic(path, b.data, b.len, 0600);
    dr_buf_free(&b);
    return rc;
}

static int ctx_load(const char *dir, ctx *x)
{
    char path[1300], *text = NULL, *save = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/run", dir);
    int rc = dr_fs_read_all(path, 1 << 16, &text, &len);
    if (rc < 0)
        return rc;
    memset(x, 0, sizeof *x);
    x->op = -1;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char k[32], v[200] = "";
        if (sscanf(l, "%31s %199[^\n]", k, v) < 1)
            continue;
        long long n = strtoll(v, NULL, 10);
        static const struct {
            const char *k;
            size_t off;
        } nums[] = {{"started_ms", offsetof(ctx, started_ms)},
                    {"base_epoch", offsetof(ctx, base_epoch)},
                    {"new_epoch", offsetof(ctx, new_epoch)},
                    {"promoted_rev", offsetof(ctx, promoted_rev)},
                    {"promoted_ms", offsetof(ctx, promoted_ms)},
                    {"old_rev", offsetof(ctx, old_rev)},
                    {"rpo_revs", offsetof(ctx, rpo_revs)},
                    {"rpo_ms", offsetof(ctx, rpo_ms)},
                    {"rto_ms", offsetof(ctx, rto_ms)},
                    {"divergent", offsetof(ctx, divergent)},
                    {"applied_rev", offsetof(ctx, applied_rev)},
                    {"applied_ms", offsetof(ctx, applied_ms)},
                    {"caught_up_rev", offsetof(ctx, caught_up_rev)},
                    {"caught_up_ms", offsetof(ctx, caught_up_ms)},
                    {"heard_ms", offsetof(ctx, heard_ms)}};
        for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
            if (!strcmp(k, nums[i].k))
                *(int64_t *)((char *)x + nums[i].off) = n;
        if (!strcmp(k, "id"))
            set(x->id, sizeof x->id, v);
        if (!strcmp(k, "runbook"))
            set(x->runbook, sizeof x->runbook, v);
        if (!strcmp(k, "who"))
            set(x->who, sizeof x->who, v);
        if (!strcmp(k, "old_primary"))
            set(x->old_name, sizeof x->old_name, v);
        if (!strcmp(k, "new_primary"))
            set(x->new_name, sizeof x->new_name, v);
        for (int i = 0; i < 3; i++)
            if (!strcmp(k, "op") && !strcmp(v, op_names[i]))
                x->op = i;
    }
    free(text);
    if (x->op < 0 || !x->id[0])
        return dr_error_set(DR_EPROTO, "'%s' is not a runbook run", path);
    return 0;
}

static int state_save(const runner *r)
{
    char path[1300];
    dr_buf b = {0};
    if (r->dry_run)
        return 0;
    snprintf(path, sizeof path, "%s/state", r->dir);
    int rc = dr_run_format(&r->run, &b);
    if (rc == 0)
        rc = dr_fs_write_atomic(path, b.data, b.len, 0600);
    dr_buf_free(&b);
    if (rc < 0)
        dr_err("run %s: cannot save its state: %s", r->x.id, dr_error_msg());
    return rc;
}

static int state_load(const char *dir, dr_run *run)
{
    char path[1300], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/state", dir);
    int rc = dr_fs_read_all(path, 1 << 20, &text, &len);
    if (rc == 0)
        rc = dr_run_parse(text, len, run);
    free(text);
    return rc;
}

/* One audit line: appended and fsynced, so what happened is on disk before the run goes on. */
static void audit(const runner *r, const char *event, const char *result, const char *output)
{
    char path[1300], ts[40];
    dr_buf b = {0};
    if (r->dry_run)
        return;
    dr_time_iso_ms(dr_wall_ms(), ts, sizeof ts);
    dr_buf_printf(&b, "{\"time\":\"%s\",\"who\":", ts);
    dr_buf_json_str(&b, r->x.who, strlen(r->x.who));
    dr_buf_printf(&b, ",\"run\":\"%s\",\"event\":\"%s\"", r->x.id, event);
    if (r->step < r->rb->n_steps) {
        const dr_step *s = &r->rb->steps[r->step];
        dr_buf_printf(&b, ",\"step\":\"%s\",\"type\":\"%s\",\"attempt\":%d", s->name,
                      dr_step_type_name(s->type), r->run.steps[r->step].attempts);
    }
    if (result) {
        dr_buf_printf(&b, ",\"result\":");
        dr_buf_json_str(&b, result, strlen(result));
    }
    if (output) {
        dr_buf_printf(&b, ",\"output\":");
        dr_buf_json_str(&b, output, strlen(output));
    }
    dr_buf_printf(&b, "}\n");
    snprintf(path, sizeof path, "%s/audit.log", r->dir);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len || fsync(fd) != 0)
        dr_err("run %s: cannot append to %s: %s", r->x.id, path, strerror(errno));
    if (fd >= 0)
        close(fd);
    dr_buf_free(&b);
}

/* The live reason of the running step ("draining: standby at 120 of 150"), for drd status. */
DR_PRINTF(2, 3)
static void reason(runner *r, const char *fmt, ...)
{
    va_list ap;
    dr_run_step *s = &r->run.steps[r->step];
    va_start(ap, fmt);
    vsnprintf(s->result, sizeof s->result, fmt, ap);
    va_end(ap);
    if (r->dry_run)
        printf("  ... %s\n", s->result);
    else
        state_save(r);
}

/* ---- the sites ---- */

static const dr_etcd_opts *cl(const runner *r, int i)
{
    return &r->c->clusters[i].etcd;
}

static int open_site(const runner *r, int i, int64_t timeout_ms, dr_etcd **e)
{
    dr_etcd_opts o = *cl(r, i);
    if (timeout_ms)
        o.timeout_ms = timeout_ms;
    int rc = dr_etcd_open(e, &o);
    if (rc < 0)
        rc = dr_error_wrap(rc, "cluster %s", r->c->clusters[i].name);
    return rc;
}

static int cluster_index(const dr_conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_clusters; i++)
        if (!strcmp(c->clusters[i].name, name))
            return (int)i;
    return -1;
}

void drd_failover_repl_opts(const drd_config *cfg, int a, int b, dr_repl_opts *o)
{
    const dr_conf *c = cfg->c;
    const dr_conf_job *j = &c->jobs[c->failover.replicate_i];
    drd_job_repl_opts(cfg, j, o);
    o->source = c->clusters[a].etcd;
    o->target = c->clusters[b].etcd;
    if (a != j->source_i && o->dest_prefix) {
        static const char *one[1];
        one[0] = o->dest_prefix;
        o->dest_prefix = o->prefixes[0];
        o->prefixes = one;
        o->n_excludes = 0; /* excludes name source keys; the other side has none of them */
    }
}

static void repl_opts(const runner *r, int a, int b, dr_repl_opts *o)
{
    drd_failover_repl_opts(r->cfg, a, b, o);
}

int drd_failover_roles(const drd_config *cfg, int *primary_i, int64_t *epoch, int64_t seen[2])
{
    const dr_conf *c = cfg->c;
    dr_epoch newest = {0};
    int rc = 0;
    *primary_i = -1;
    *epoch = 0;
    seen[0] = seen[1] = -1;
    if (!c->has_failover)
        return 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        dr_etcd_opts o = c->clusters[k ? c->failover.standby_i : c->failover.primary_i].etcd;
        dr_etcd *e = NULL;
        dr_epoch ep;
        o.timeout_ms = 3000;
        if (dr_etcd_open(&e, &o) < 0) {
            dr_error_clear();
            continue;
        }
        rc = dr_epoch_read_etcd(e, &ep, NULL);
        dr_etcd_close(e);
        if (rc == 0) {
            seen[k] = ep.epoch;
            dr_epoch_newest(&newest, &ep, &newest);
        }
    }
    if (rc < 0)
        return rc;
    *epoch = newest.epoch;
    *primary_i = newest.epoch ? cluster_index(c, newest.primary) : c->failover.primary_i;
    if (*primary_i != c->failover.primary_i && *primary_i != c->failover.standby_i)
        return dr_error_set(DR_ESTALE,
                            "epoch %" PRId64 " names '%s' the primary: not a cluster "
                            "of the failover section",
                            newest.epoch, newest.primary);
    return 0;
}

int drd_failover_primary(const drd_config *cfg, int *primary_i)
{
    int64_t epoch, seen[2];
    return drd_failover_roles(cfg, primary_i, &epoch, seen);
}

/* Store i and its keyring (NULL without key_file); no catalog: epochs need none. */
static int open_store(const runner *r, size_t i, dr_store **st, dr_keyring **k)
{
    const dr_repo_opts *ro = &r->c->stores[i].repo;
    int rc = dr_store_open(ro->store_url, &ro->store, st);
    if (rc == 0 && ro->key_file)
        rc = dr_keyring_load(ro->key_file, k);
    return rc;
}

/* Every store's record and the reachable clusters' records: the newest. */
static int newest_epoch(const runner *r, int64_t timeout_ms, dr_epoch *newest, char *seen,
                        size_t cap)
{
    int rc = 0;
    size_t len = 0;
    memset(newest, 0, sizeof *newest);
    seen[0] = 0;
    for (size_t i = 0; i < r->c->n_clusters && rc == 0; i++) {
        if ((int)i != r->c->failover.primary_i && (int)i != r->c->failover.standby_i)
            continue;
        dr_etcd *e = NULL;
        dr_epoch ep;
        if (open_site(r, (int)i, timeout_ms, &e) < 0) {
            dr_error_clear();
            continue; /* unreachable: the others decide */
        }
        rc = dr_epoch_read_etcd(e, &ep, NULL);
        dr_etcd_close(e);
        if (rc == 0) {
            dr_epoch_newest(newest, &ep, newest);
            int w = snprintf(seen + len, cap - len, "%s%s: epoch %" PRId64, len ? ", " : "",
                             r->c->clusters[i].name, ep.epoch);
            len += w > 0 && (size_t)w < cap - len ? (size_t)w : 0;
        }
    }
    for (size_t i = 0; i < r->c->n_stores && rc == 0; i++) {
        dr_store *st = NULL;
        dr_keyring *k = NULL;
        dr_epoch ep;
        if ((rc = open_store(r, i, &st, &k)) == 0)
            rc = dr_epoch_read_store(st, k, &ep);
        dr_store_close(st);
        dr_keyring_free(k);
        if (rc < 0) {
            rc = dr_error_wrap(rc, "store %s", r->c->stores[i].name);
            break;
        }
        dr_epoch_newest(newest, &ep, newest);
        int w = snprintf(seen + len, cap - len, "%sstore %s: epoch %" PRId64, len ? ", " : "",
                         r->c->stores[i].name, ep.epoch);
        len += w > 0 && (size_t)w < cap - len ? (size_t)w : 0;
    }
    return rc;
}

/* ---- the loss window (emergency) ---- */

/* Emergency: what the replicate job recorded while it ran (drd/app/rpo.h) into the run: R and
 * T, T0, T1, and RPO seconds <= T1 - T0 (docs/runbooks.md, "What an emergency failover loses").
 * Not known (rpo_ms -1) without a record of this direction; why goes into why. */
static void loss_window(runner *r, char *why, size_t cap)
{
    const dr_conf_job *j = &r->c->jobs[r->c->failover.replicate_i];
    char path[1300];
    drd_rpo_marks m;
    ctx *x = &r->x;
    x->applied_rev = x->applied_ms = x->caught_up_rev = x->caught_up_ms = x->heard_ms = 0;
    x->rpo_ms = -1;
    why[0] = 0;
    drd_rpo_path(r->cfg, j->name, path, sizeof path);
    if (drd_rpo_read(path, &m) < 0) {
        snprintf(why, cap, "%.300s (drd run's replicate job %s keeps it)", dr_error_msg(), j->name);
        dr_error_clear();
        return;
    }
    if (strcmp(m.source, x->old_name) || strcmp(m.target, x->new_name)) {
        snprintf(why, cap, "%.150s records replication %s -> %s, not %s -> %s", path, m.source,
                 m.target, x->old_name, x->new_name);
        return;
    }
    x->applied_rev = m.applied_rev;
    x->applied_ms = m.applied_ms;
    x->caught_up_rev = m.caught_up_rev;
    x->caught_up_ms = m.caught_up_ms;
    x->heard_ms = m.heard_ms;
    if (m.caught_up_ms > 0 && m.heard_ms > 0)
        x->rpo_ms = m.heard_ms > m.caught_up_ms ? m.heard_ms - m.caught_up_ms : 0;
    else
        snprintf(why, cap, "%.300s: the standby was never seen caught up with %s", path,
                 x->old_name);
}

/* The loss window in words: "at most 0.734s: west applied revision ..." (known windows only),
 * appended to b. */
static void loss_text(const ctx *x, dr_buf *b)
{
    char t[40], t0[40], t1[40];
    dr_time_iso_ms(x->applied_ms, t, sizeof t);
    dr_time_iso_ms(x->caught_up_ms, t0, sizeof t0);
    dr_time_iso_ms(x->heard_ms, t1, sizeof t1);
    dr_buf_printf(b, "at most %.3fs: %s applied revision %" PRId64 " at %s",
                  (double)x->rpo_ms / 1000.0, x->new_name, x->applied_rev, t);
    if (x->promoted_rev > x->applied_rev) /* applied after the recorder's last look */
        dr_buf_printf(b, " (promoted at %" PRId64 ")", x->promoted_rev);
    dr_buf_printf(b, " and holds every write %s acknowledged before %s; %s last answered at %s",
                  x->old_name, t0, x->old_name, t1);
}

/* ,"loss_window":{...} or null: T, R, T0, T1 (seconds since the epoch) */
static void loss_json(const ctx *x, dr_buf *b)
{
    if (x->op != DRD_OP_EMERGENCY || x->rpo_ms < 0) {
        dr_buf_printf(b, ",\"loss_window\":null");
        return;
    }
    dr_buf_printf(b,
                  ",\"loss_window\":{\"applied_revision\":%" PRId64
                  ",\"applied_time\":%.3f,\"caught_up_revision\":%" PRId64
                  ",\"caught_up_time\":%.3f,\"primary_last_heard\":%.3f}",
                  x->applied_rev, (double)x->applied_ms / 1000.0, x->caught_up_rev,
                  (double)x->caught_up_ms / 1000.0, (double)x->heard_ms / 1000.0);
}

/* ---- steps ---- */

static void body_json(const runner *r, dr_buf *b)
{
    const dr_step *s = &r->rb->steps[r->step];
    dr_buf_printf(b, "{\"run\":\"%s\",\"runbook\":", r->x.id);
    dr_buf_json_str(b, r->x.runbook, strlen(r->x.runbook));
    dr_buf_printf(b, ",\"operation\":\"%s\",\"step\":", op_names[r->x.op]);
    dr_buf_json_str(b, s->name, strlen(s->name));
    dr_buf_printf(
        b,
        ",\"attempt\":%d,\"old_primary\":\"%s\",\"new_primary\":\"%s\",\"epoch\":%" PRId64
        ",\"promoted_revision\":%" PRId64 ",\"rpo_revisions\":%" PRId64 ",\"rpo_seconds\":%.3f",
        r->run.steps[r->step].attempts, r->x.old_name, r->x.new_name, r->x.new_epoch,
        r->x.promoted_rev, r->x.rpo_revs, r->x.rpo_ms < 0 ? -1.0 : (double)r->x.rpo_ms / 1000.0);
    loss_json(&r->x, b);
    dr_buf_printf(b, ",\"dry_run\":%s}", r->dry_run ? "true" : "false");
}

/* ---- encryption keys ---- */

/* Which API server encryption keys the new primary's data needs (a paged read of every value),
 * against the keys its EncryptionConfiguration offers (failover.encryption_config): a key in use
 * that it lacks refuses the promotion, those objects would be unreadable (the comparison the
 * daemon's keys job makes too, drd/app/daemon_keys.c). */
static int check_keys(runner *r, char *res, size_t cap)
{
    drd_enc_keys *k = calloc(1, sizeof *k);
    int rc = k ? drd_enc_keys_check(r->cfg, r->new_i, k) : dr_error_set(DR_ENOMEM, "out of memory");
    if (rc == 0) {
        char line[600];
        dr_k8s_enc_counts_line(&k->c, line, sizeof line);
        snprintf(res, cap, "encryption keys in use on %s (%" PRId64 " values read): %s%s",
                 r->x.new_name, k->c.values, line,
                 !k->c.n       ? ""
                 : k->compared ? "; all offered by its EncryptionConfiguration"
                               : "; not compared (failover.encryption_config is not set)");
    }
    free(k);
    return rc;
}

static int step_check(runner *r, const dr_step *s, char *res, size_t cap)
{
    unsigned checks = s->checks ? s->checks
                                : DR_CHECK_REACHABLE | DR_CHECK_EPOCH | DR_CHECK_KEYS |
                                      (r->x.op == DRD_OP_PLANNED ? DR_CHECK_LAG : 0);
    int rc = 0;
    dr_etcd *e = NULL;
    size_t len = 0;
    res[0] = 0;
#define SAY(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(res + len, cap - len, __VA_ARGS__);                                      \
        len += w_ > 0 && (size_t)w_ < cap - len ? (size_t)w_ : 0;                                  \
    } while (0)
    if (checks & DR_CHECK_REACHABLE) {
        if ((rc = open_site(r, r->new_i, 5000, &e)) < 0)
            return dr_error_wrap(rc, "the standby does not answer");
        dr_etcd_close(e);
        e = NULL;
        if (r->x.op == DRD_OP_PLANNED) {
            if ((rc = open_site(r, r->old_i, 5000, &e)) < 0)
                return dr_error_wrap(rc, "a planned switchover needs both sides; the primary "
                                         "does not answer (an emergency failover does not)");
            dr_etcd_close(e);
            SAY("both sides answer");
        } else if (r->x.op == DRD_OP_EMERGENCY) {
            /* the primary must fail every probe for unreachable_for */
            int64_t need = r->c->failover.unreachable_ms, t0 = dr_mono_ms(), n = 0;
            for (;;) {
                int64_t down = dr_mono_ms() - t0;
                if (open_site(r, r->old_i, 2000, &e) == 0) {
                    dr_etcd_close(e);
                    return dr_error_set(DR_EUSAGE,
                                        "the primary %s answers: refusing an emergency failover "
                                        "(use drd failover --planned)",
                                        r->x.old_name);
                }
                dr_error_clear();
                n++;
                if (down >= need)
                    break;
                if (r->dry_run) {
                    SAY("the primary %s does not answer now (a real run waits until it has not "
                        "answered for %.0fs); ",
                        r->x.old_name, (double)need / 1000.0);
                    break;
                }
                reason(r,
                       "waiting: the primary %s has not answered for %.0fs of %.0fs (%" PRId64
                       " probes)",
                       r->x.old_name, (double)down / 1000.0, (double)need / 1000.0, n);
                if (drd_stop)
                    return dr_error_set(DR_EINTR, "interrupted");
                dr_sleep_ms(1000);
            }
            if (!r->dry_run)
                SAY("the primary %s did not answer %" PRId64 " probes over %.0fs; the standby "
                    "answers",
                    r->x.old_name, n, (double)(dr_mono_ms() - t0) / 1000.0);
        } else {
            SAY("the new primary answers");
        }
    }
    if (checks & DR_CHECK_EPOCH) {
        dr_epoch newest;
        char seen[512];
        if ((rc = newest_epoch(r, 3000, &newest, seen, sizeof seen)) < 0)
            return rc;
        if (newest.epoch != r->x.base_epoch) {
            char d[256];
            dr_epoch_describe(&newest, d, sizeof d);
            return dr_error_set(DR_ESTALE,
                                "the epoch moved since this run started: %s, this run started "
                                "at epoch %" PRId64 " (%s)",
                                d, r->x.base_epoch, seen);
        }
        SAY("%sepoch %" PRId64 " names %s the primary (%s)", len ? "; " : "", newest.epoch,
            r->x.old_name, seen);
    }
    if (checks & DR_CHECK_LAG) {
        dr_repl_opts o;
        dr_repl_status st;
        int64_t bound = s->max_lag >= 0 ? s->max_lag : 1000;
        repl_opts(r, r->old_i, r->new_i, &o);
        if ((rc = dr_repl_status_get(&o, &st)) < 0)
            return rc;
        if (strcmp(st.state, "in-sync") && strcmp(st.state, "lagging"))
            return dr_error_set(DR_ENOTSEEDED, "the standby %s is %s: it cannot take over",
                                r->x.new_name, st.state);
        if (st.lag_revisions > bound)
            return dr_error_set(DR_ETIMEOUT,
                                "the standby %s lags %" PRId64 " revisions (bound %" PRId64
                                "): is replication running?",
                                r->x.new_name, st.lag_revisions, bound);
        SAY("%sstandby lags %" PRId64 " revisions (bound %" PRId64 ")", len ? "; " : "",
            st.lag_revisions, bound);
    }
    if (checks & DR_CHECK_KEYS) {
        char keys[768];
        if ((rc = check_keys(r, keys, sizeof keys)) < 0)
            return rc;
        SAY("%s%s", len ? "; " : "", keys);
    }
#undef SAY
    return 0;
}

static int step_fence(runner *r, const dr_step *s, char *res, size_t cap)
{
    int i = s->side == DR_SIDE_OLD_PRIMARY ? r->old_i : r->new_i;
    const char *name = r->c->clusters[i].name;
    dr_etcd *e = NULL;
    dr_etcd_status st;
    int fenced = 0;
    char desc[512];
    int rc = open_site(r, i, 0, &e);
    if (rc == 0)
        rc = drd_fence_state(e, &fenced, desc, sizeof desc);
    if (rc == 0 && !fenced && !r->dry_run)
        rc = dr_etcd_alarm_activate(e, 0, DR_ALARM_CORRUPT);
    if (rc == 0)
        rc = dr_etcd_status_get(e, &st);
    if (rc == 0) {
        if (s->side == DR_SIDE_OLD_PRIMARY)
            r->x.old_rev = st.header.revision;
        snprintf(res, cap, "%s %s at revision %" PRId64 "%s", r->dry_run ? "would fence" : "fenced",
                 name, st.header.revision, fenced ? " (it already was)" : "");
    }
    dr_etcd_close(e);
    return rc;
}

typedef struct repl_job {
    dr_repl_opts o;
    dr_repl_stats st;
    volatile sig_atomic_t stop;
    int rc, done;
    char err[1024];
    pthread_mutex_t mu;
} repl_job;

static void *repl_thread(void *arg)
{
    repl_job *j = arg;
    int rc = dr_repl_run(&j->o, &j->st);
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    snprintf(j->err, sizeof j->err, "%s", rc < 0 ? dr_error_msg() : "");
    j->done = 1;
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Replication from a to b until caught up, within the step's deadline, the reason updated. */
static int replicate_until_caught_up(runner *r, int a, int b, int64_t handover, const char *what)
{
    repl_job *j = calloc(1, sizeof *j);
    pthread_t t;
    int rc = 0;
    if (!j)
        return dr_error_set(DR_ENOMEM, "out of memory");
    pthread_mutex_init(&j->mu, NULL);
    repl_opts(r, a, b, &j->o);
    j->o.until_caught_up = 1;
    j->o.epoch_handover = handover;
    j->o.stop = &j->stop;
    if (pthread_create(&t, NULL, repl_thread, j) != 0) {
        free(j);
        return dr_error_set(DR_ENOMEM, "cannot start a thread");
    }
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int done = j->done;
        pthread_mutex_unlock(&j->mu);
        if (done)
            break;
        if (dr_wall_ms() > r->step_deadline_ms || drd_stop) {
            j->stop = 1;
            pthread_join(t, NULL);
            rc = dr_error_set(drd_stop ? DR_EINTR : DR_ETIMEOUT,
                              "%s: not caught up %s: %s at %" PRId64 " of %" PRId64, what,
                              drd_stop ? "when interrupted" : "within the step's timeout",
                              r->c->clusters[b].name, (int64_t)j->st.applied_revision,
                              (int64_t)j->st.source_revision);
            free(j);
            return rc;
        }
        reason(r, "waiting: %s: %s at revision %" PRId64 " of %" PRId64 " (%s)", what,
               r->c->clusters[b].name, (int64_t)j->st.applied_revision,
               (int64_t)j->st.source_revision, dr_repl_state_name(j->st.state));
        dr_sleep_ms(500);
    }
    pthread_join(t, NULL);
    rc = j->rc;
    if (rc < 0)
        dr_error_set(rc, "%s: %s", what, j->err);
    free(j);
    return rc;
}

static int step_wait_replication(runner *r, char *res, size_t cap)
{
    dr_repl_opts o;
    dr_repl_status st;
    repl_opts(r, r->old_i, r->new_i, &o);
    if (r->dry_run) {
        int rc = dr_repl_status_get(&o, &st);
        if (rc == 0)
            snprintf(res, cap, "would drain: the standby %s lags %" PRId64 " revisions now",
                     r->x.new_name, st.lag_revisions);
        return rc;
    }
    int rc = replicate_until_caught_up(r, r->old_i, r->new_i, 0, "draining");
    if (rc == 0)
        rc = dr_repl_status_get(&o, &st);
    if (rc < 0)
        return rc;
    if (st.lag_revisions != 0 || st.source_revision != r->x.old_rev)
        return dr_error_set(DR_EGENERIC,
                            "drained to %" PRId64 " but the fenced primary is at %" PRId64
                            " (was %" PRId64 " when fenced)",
                            st.applied_revision, st.source_revision, r->x.old_rev);
    snprintf(res, cap, "the standby %s holds every revision of the fenced primary %s (%" PRId64 ")",
             r->x.new_name, r->x.old_name, st.source_revision);
    return 0;
}

/* The standby's applied revision: its own revision (exact) or its cursor (filtered). */
static int applied_revision(runner *r, dr_etcd *e, int64_t *rev)
{
    const dr_conf_job *j = &r->c->jobs[r->c->failover.replicate_i];
    dr_etcd_status st;
    int rc = dr_etcd_status_get(e, &st);
    if (rc < 0 || j->mode == 0) {
        *rev = st.header.revision;
        return rc;
    }
    char key[256];
    snprintf(key, sizeof key, "/drd/replicate/%s/revision", j->name);
    dr_etcd_range_req q = {.key = key, .key_len = strlen(key)};
    dr_etcd_range_res res;
    if ((rc = dr_etcd_range(e, &q, &res)) < 0)
        return rc;
    char v[32] = "0";
    if (res.n_kvs)
        snprintf(v, sizeof v, "%.*s", (int)(res.kvs[0].value_len < 31 ? res.kvs[0].value_len : 31),
                 (const char *)res.kvs[0].value);
    *rev = strtoll(v, NULL, 10);
    dr_etcd_range_res_free(&res);
    return 0;
}

static int step_promote(runner *r, char *res, size_t cap)
{
    dr_epoch newest, own, rec;
    char seen[512], d[256], why[512] = "";
    dr_etcd *e = NULL;
    dr_etcd_status st;
    int64_t mod = 0;
    int rc = newest_epoch(r, 3000, &newest, seen, sizeof seen);
    if (rc < 0)
        return rc;
    if ((rc = open_site(r, r->new_i, 0, &e)) < 0)
        return rc;
    if ((rc = dr_epoch_read_etcd(e, &own, &mod)) < 0 || (rc = dr_etcd_status_get(e, &st)) < 0)
        goto out;
    if (own.epoch == r->x.new_epoch && !strcmp(own.run, r->x.id)) {
        /* this run promoted it before a crash: the rest (stores) is repeated below */
        rec = own;
    } else {
        if (newest.epoch != r->x.base_epoch) {
            dr_epoch_describe(&newest, d, sizeof d);
            rc = dr_error_set(DR_ESTALE,
                              "refusing to promote %s: %s was raised since this run started at "
                              "epoch %" PRId64 " (%s)",
                              r->x.new_name, d, r->x.base_epoch, seen);
            goto out;
        }
        memset(&rec, 0, sizeof rec);
        rec.epoch = r->x.new_epoch;
        snprintf(rec.primary, sizeof rec.primary, "%s", r->x.new_name);
        rec.cluster_id = st.header.cluster_id;
        if ((rc = applied_revision(r, e, &rec.revision)) < 0)
            goto out;
        rec.time_ms = dr_wall_ms();
        snprintf(rec.run, sizeof rec.run, "%s", r->x.id);
        if (r->dry_run) {
            dr_epoch_describe(&rec, d, sizeof d);
            snprintf(res, cap, "would raise %s at revision %" PRId64 " on %s and in every store", d,
                     rec.revision, r->x.new_name);
            goto out;
        }
        if ((rc = dr_epoch_write_etcd(e, &rec, mod, NULL)) < 0)
            goto out;
    }
    for (size_t i = 0; i < r->c->n_stores && rc == 0; i++) {
        dr_store *so = NULL;
        dr_keyring *k = NULL;
        if ((rc = open_store(r, i, &so, &k)) == 0)
            rc = dr_epoch_write_store(so, k, &rec);
        dr_store_close(so);
        dr_keyring_free(k);
        if (rc < 0)
            rc = dr_error_wrap(rc, "store %s", r->c->stores[i].name);
    }
    if (rc < 0)
        goto out;
    r->x.promoted_rev = rec.revision;
    r->x.promoted_ms = rec.time_ms;
    r->x.rto_ms = rec.time_ms - r->x.started_ms;
    if (r->x.op == DRD_OP_PLANNED) {
        r->x.rpo_revs = r->x.old_rev > rec.revision ? r->x.old_rev - rec.revision : 0;
        r->x.rpo_ms = 0;
    } else if (r->x.op == DRD_OP_EMERGENCY) {
        r->x.rpo_revs = -1; /* known once the old primary can be read (record, failback) */
        loss_window(r, why, sizeof why);
    }
    dr_epoch_describe(&rec, d, sizeof d);
    snprintf(res, cap, "%s is the primary: %s, promoted at revision %" PRId64, r->x.new_name, d,
             rec.revision);
    if (why[0]) {
        size_t l = strlen(res);
        snprintf(res + l, cap - l, "; RPO in seconds unknown: %s", why);
    }
out:
    dr_etcd_close(e);
    return rc;
}

/* Runs argv with the context in the environment and the JSON body on stdin; its output (stdout
 * and stderr, at most 16 KiB) into out. Killed (its process group) at the step's deadline. */
static int step_hook_exec(runner *r, const dr_step *s, char *res, size_t cap, dr_buf *out)
{
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, rc = 0, status = 0;
    dr_buf body = {0};
    body_json(r, &body);
    if (r->dry_run) {
        snprintf(res, cap, "would run %s (%zu arguments) with the run's context", s->command.v[0],
                 s->command.n - 1);
        dr_buf_free(&body);
        return 0;
    }
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(outp, O_CLOEXEC) != 0) {
        rc = dr_error_set(DR_EIO, "hook: pipe: %s", strerror(errno));
        goto out;
    }
    char env[11][200];
    snprintf(env[0], sizeof env[0], "DRD_RUN=%s", r->x.id);
    snprintf(env[1], sizeof env[1], "DRD_RUNBOOK=%s", r->x.runbook);
    snprintf(env[2], sizeof env[2], "DRD_STEP=%s", s->name);
    snprintf(env[3], sizeof env[3], "DRD_OPERATION=%s", op_names[r->x.op]);
    snprintf(env[4], sizeof env[4], "DRD_ATTEMPT=%d", r->run.steps[r->step].attempts);
    snprintf(env[5], sizeof env[5], "DRD_OLD_PRIMARY=%s", r->x.old_name);
    snprintf(env[6], sizeof env[6], "DRD_NEW_PRIMARY=%s", r->x.new_name);
    snprintf(env[7], sizeof env[7], "DRD_EPOCH=%" PRId64, r->x.new_epoch);
    snprintf(env[8], sizeof env[8], "DRD_PROMOTED_REVISION=%" PRId64, r->x.promoted_rev);
    snprintf(env[9], sizeof env[9], "DRD_RPO_REVISIONS=%" PRId64, r->x.rpo_revs);
    snprintf(env[10], sizeof env[10], "DRD_RPO_SECONDS=%.3f",
             r->x.rpo_ms < 0 ? -1.0 : (double)r->x.rpo_ms / 1000.0);
    pid_t pid = fork();
    if (pid < 0) {
        rc = dr_error_set(DR_EIO, "hook: fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(in[0], 0);
        dup2(outp[1], 1);
        dup2(outp[1], 2);
        for (int i = 0; i < 11; i++)
            putenv(env[i]);
        execvp(s->command.v[0], (char *const *)s->command.v);
        fprintf(stderr, "cannot run %s: %s\n", s->command.v[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    close(in[0]);
    close(outp[1]);
    in[0] = outp[1] = -1;
    signal(SIGPIPE, SIG_IGN);
    if (write(in[1], body.data, body.len) < 0) { /* a hook that ignores stdin is fine */
    }
    close(in[1]);
    in[1] = -1;
    int killed = 0;
    for (;;) {
        struct pollfd p = {.fd = outp[0], .events = POLLIN};
        int64_t left = r->step_deadline_ms - dr_wall_ms();
        if (left <= 0 || drd_stop) {
            kill(-pid, SIGKILL);
            killed = 1;
            break;
        }
        int n = poll(&p, 1, (int)(left < 500 ? left : 500));
        if (n > 0) {
            char buf[4096];
            ssize_t got = read(outp[0], buf, sizeof buf);
            if (got <= 0)
                break;
            if (out->len < 16384)
                dr_buf_append(out, buf, (size_t)got);
        }
    }
    waitpid(pid, &status, 0);
    while (out->len && (out->data[out->len - 1] == '\n'))
        out->data[--out->len] = 0;
    if (killed)
        rc = dr_error_set(DR_ETIMEOUT, "hook %s: killed after the step's timeout of %.0fs",
                          s->command.v[0], (double)s->timeout_ms / 1000.0);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        rc = dr_error_set(DR_EGENERIC, "hook %s failed (%s %d): %s", s->command.v[0],
                          WIFEXITED(status) ? "exit status" : "signal",
                          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                          out->len ? out->data : "(no output)");
    else
        snprintf(res, cap, "hook %s: ok%s%.300s", s->command.v[0], out->len ? ": " : "",
                 out->len ? out->data : "");
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    dr_buf_free(&body);
    return rc;
}

/* POST the JSON body to http://host:port/path; 2xx is success. */
static int step_hook_http(runner *r, const dr_step *s, char *res, size_t cap, dr_buf *out)
{
    char host[256], port[16] = "80";
    const char *p = s->url + 7, *slash = strchr(p, '/'), *colon;
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    const char *path = slash ? slash : "/";
    dr_buf body = {0}, req = {0};
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int fd = -1, rc = 0, code = 0;
    if (hl >= sizeof host)
        return dr_error_set(DR_EUSAGE, "hook url: host too long");
    memcpy(host, p, hl);
    host[hl] = 0;
    if ((colon = strrchr(host, ':')) && !strchr(colon, ']')) {
        snprintf(port, sizeof port, "%s", colon + 1);
        host[colon - host] = 0;
    }
    if (r->dry_run) {
        snprintf(res, cap, "would POST the run's context to %s", s->url);
        return 0;
    }
    body_json(r, &body);
    dr_buf_printf(&req,
                  "POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\n\r\n%s",
                  path, host, body.len, body.data);
    int64_t left = r->step_deadline_ms - dr_wall_ms();
    struct timeval tv = {.tv_sec = left > 1000 ? left / 1000 : 1};
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
        rc = dr_error_set(DR_EUNAVAILABLE, "hook %s: cannot resolve %s", s->url, host);
        goto out;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        write(fd, req.data, req.len) != (ssize_t)req.len) {
        rc = dr_error_set(DR_EUNAVAILABLE, "hook %s: %s", s->url, strerror(errno));
        goto out;
    }
    char buf[4096];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0 && out->len < 16384)
        dr_buf_append(out, buf, (size_t)got);
    if (!out->data || sscanf(out->data, "HTTP/%*s %d", &code) != 1) {
        rc = dr_error_set(DR_EPROTO, "hook %s: no HTTP answer%s%s", s->url, got < 0 ? ": " : "",
                          got < 0 ? strerror(errno) : "");
        goto out;
    }
    const char *b = strstr(out->data, "\r\n\r\n");
    b = b ? b + 4 : "";
    if (code < 200 || code > 299)
        rc = dr_error_set(DR_EGENERIC, "hook %s answered %d: %.300s", s->url, code, b);
    else
        snprintf(res, cap, "hook %s answered %d", s->url, code);
out:
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    dr_buf_free(&body);
    dr_buf_free(&req);
    return rc;
}

/* Planned: lift the old primary's fence (the epoch names the new primary now), give it its
 * epoch record (filtered mode: each side keeps its own) and replicate back until caught up:
 * exact mode starts at the very revision it was fenced at, with no reseed. The continuous
 * reverse replication is the daemon's replicate job, which reads its direction from the epoch.
 * Failback: the old primary must first be made a standby (exact: reseeded): the step waits,
 * saying so, until it is. */
static int step_start_replication(runner *r, char *res, size_t cap)
{
    const dr_conf_job *j = &r->c->jobs[r->c->failover.replicate_i];
    dr_etcd *e = NULL;
    dr_epoch rec, own;
    int64_t mod = 0;
    int rc = 0, fenced = 0;
    char desc[512];
    if (r->dry_run) {
        snprintf(res, cap, "would lift the fence of %s and replicate %s -> %s (%s mode)",
                 r->x.old_name, r->x.new_name, r->x.old_name, j->mode ? "filtered" : "exact");
        return 0;
    }
    if ((rc = open_site(r, r->new_i, 0, &e)) < 0)
        return rc;
    rc = dr_epoch_read_etcd(e, &rec, NULL);
    dr_etcd_close(e);
    e = NULL;
    if (rc < 0)
        return rc;
    if (rec.epoch != r->x.new_epoch || strcmp(rec.primary, r->x.new_name))
        return dr_error_set(
            DR_ESTALE, "%s does not hold this run's epoch %" PRId64 ": not lifting the fence of %s",
            r->x.new_name, r->x.new_epoch, r->x.old_name);
    if ((rc = open_site(r, r->old_i, 0, &e)) < 0)
        return rc;
    if (r->x.op == DRD_OP_FAILBACK && j->mode == 0) {
        /* exact: the old primary must hold nothing the new one lacks; etcd cannot rewind, so
         * one that wrote after the promotion is reseeded from the new primary (by the operator:
         * drd does not run the etcd servers). Waits for that, saying how. */
        dr_etcd_close(e);
        e = NULL;
        for (;;) {
            dr_etcd_status ns, os;
            dr_epoch oe;
            dr_etcd *n = NULL;
            rc = open_site(r, r->new_i, 5000, &n);
            if (rc == 0)
                rc = dr_etcd_status_get(n, &ns);
            dr_etcd_close(n);
            if (rc == 0 && (rc = open_site(r, r->old_i, 5000, &e)) == 0 &&
                (rc = dr_etcd_status_get(e, &os)) == 0)
                rc = dr_epoch_read_etcd(e, &oe, NULL);
            if (rc == 0 && (os.header.revision == r->x.promoted_rev ||
                            (oe.epoch == rec.epoch && os.header.revision <= ns.header.revision)))
                break; /* nothing after the promotion, or reseeded from the new primary */
            if (rc == 0)
                reason(r,
                       "waiting: reseed %s from %s: it holds revisions up to %" PRId64
                       " and %s was promoted at %" PRId64 " (its writes after that are listed in "
                       "%s/divergent.tsv). Stop %s's etcd, move its data dir away, run drd "
                       "replicate seed --source <%s's endpoints> --data-dir <new dir> --name "
                       "<member> --initial-cluster <...> --initial-advertise-peer-urls <...>, "
                       "start etcd on the new dir; this step goes on by itself",
                       r->x.old_name, r->x.new_name, os.header.revision, r->x.new_name,
                       r->x.promoted_rev, r->dir, r->x.old_name, r->x.new_name);
            else
                reason(r, "waiting: reseed %s from %s (now: %s)", r->x.old_name, r->x.new_name,
                       dr_error_msg());
            dr_etcd_close(e);
            e = NULL;
            if (dr_wall_ms() > r->step_deadline_ms || drd_stop) {
                rc = dr_error_set(drd_stop ? DR_EINTR : DR_ENOTSEEDED, "%s",
                                  r->run.steps[r->step].result + strlen("waiting: "));
                goto out;
            }
            dr_sleep_ms(1000);
        }
    }
    if ((rc = drd_fence_state(e, &fenced, desc, sizeof desc)) < 0)
        goto out;
    if (j->mode == 1) {
        /* filtered: the old primary's own record, and a resync from scratch (its cursor, if
         * any, counts revisions of another history) */
        char key[256];
        if (fenced && (rc = dr_etcd_alarm_disarm(e, DR_ALARM_CORRUPT, NULL)) < 0)
            goto out;
        fenced = 0;
        if ((rc = dr_epoch_read_etcd(e, &own, &mod)) < 0)
            goto out;
        if (own.epoch < rec.epoch && (rc = dr_epoch_write_etcd(e, &rec, mod, NULL)) < 0)
            goto out;
        snprintf(key, sizeof key, "/drd/replicate/%s/revision", j->name);
        if ((rc = dr_etcd_delete(e, key, strlen(key), NULL, 0, NULL, NULL)) < 0)
            goto out;
    } else if (fenced && (rc = dr_etcd_alarm_disarm(e, DR_ALARM_CORRUPT, NULL)) < 0) {
        goto out;
    }
    dr_etcd_status before;
    if ((rc = dr_etcd_status_get(e, &before)) < 0)
        goto out;
    dr_etcd_close(e);
    e = NULL;
    if ((rc = replicate_until_caught_up(r, r->new_i, r->old_i, 0, "reverse replication")) < 0)
        return rc;
    snprintf(res, cap,
             "fence of %s lifted; %s -> %s caught up (%s mode; %s was at revision %" PRId64 "%s)",
             r->x.old_name, r->x.new_name, r->x.old_name, j->mode ? "filtered" : "exact",
             r->x.old_name, before.header.revision,
             j->mode                      ? ", resynced"
             : r->x.op == DRD_OP_FAILBACK ? ""
                                          : ", no reseed");
out:
    dr_etcd_close(e);
    return rc;
}

/* Writes what b holds into s when it holds more than 64 KiB, or (all) whatever it holds. */
static int spill(dr_sink *s, dr_buf *b, int all)
{
    if (!all && b->len < (64u << 10))
        return 0;
    int rc = b->len ? dr_sink_write(s, b->data, b->len) : 0;
    b->len = 0;
    return rc;
}

/* One event of the listing: a line of divergent.tsv, and one of divergent.jsonl with the key and
 * value in base64 (what a replay needs: the listing's values are gone from the old primary once
 * it is resynced or reseeded). */
static int list_event(dr_buf *tsv, dr_buf *vals, const dr_etcd_event *ev)
{
    int put = ev->type == DR_EV_PUT;
    int rc = dr_buf_printf(tsv, "%" PRId64 "\t%s\t", ev->kv.mod_revision, put ? "put" : "delete");
    if (rc == 0)
        rc = dr_buf_escape(tsv, ev->kv.key, ev->kv.key_len);
    if (rc == 0)
        rc = dr_buf_printf(tsv, "\t%zu\n", put ? ev->kv.value_len : 0);
    if (rc == 0)
        rc = dr_buf_printf(vals, "{\"revision\":%" PRId64 ",\"event\":\"%s\",\"key\":\"",
                           ev->kv.mod_revision, put ? "put" : "delete");
    if (rc == 0)
        rc = dr_base64_append(vals, ev->kv.key, ev->kv.key_len);
    if (rc == 0 && put && (rc = dr_buf_printf(vals, "\",\"value\":\"")) == 0)
        rc = dr_base64_append(vals, ev->kv.value, ev->kv.value_len);
    if (rc == 0)
        rc = dr_buf_printf(vals, "\"}\n");
    return rc;
}

/* What the old primary holds after the promoted revision, into <run>/divergent.tsv (revision,
 * event, key, value size) and <run>/divergent.jsonl (the same with key and value, base64), both
 * 0600 and streamed (atomic on completion): every event (exact mode: same revision space), or
 * (filtered) every event of a key the replication copies, the promoted revision being the new
 * primary's cursor, a revision of the old primary. revs: the revisions listed, the RPO in
 * revisions. */
static int list_divergent(runner *r, dr_etcd *e, int64_t *n_out, int64_t *revs)
{
    const dr_conf_job *j = &r->c->jobs[r->c->failover.replicate_i];
    char path[1300];
    dr_etcd_status st;
    dr_etcd_watch *w = NULL;
    dr_repl_opts o;
    dr_buf b = {0}, v = {0};
    dr_sink *tsv = NULL, *vals = NULL;
    int64_t n = 0, last = 0;
    int rc = dr_etcd_status_get(e, &st);
    if (rc < 0)
        return rc;
    repl_opts(r, r->old_i, r->new_i, &o);
    *revs = 0;
    snprintf(path, sizeof path, "%s/divergent.tsv", r->dir);
    if ((rc = dr_fs_sink_new(path, 0600, 0, &tsv)) < 0)
        goto out;
    snprintf(path, sizeof path, "%s/divergent.jsonl", r->dir);
    if ((rc = dr_fs_sink_new(path, 0600, 0, &vals)) < 0)
        goto out;
    dr_buf_printf(&b,
                  "# revision\tevent\tkey\tvalue_bytes (what %s wrote after revision %" PRId64
                  ", when %s was promoted%s; keys and values in divergent.jsonl)\n",
                  r->x.old_name, r->x.promoted_rev, r->x.new_name,
                  j->mode ? "; the keys filtered mode replicates" : "");
    if (st.header.revision > r->x.promoted_rev) {
        dr_etcd_watch_opts wo = {.key = "\0",
                                 .key_len = 1,
                                 .range_end = "\0",
                                 .range_end_len = 1,
                                 .start_revision = r->x.promoted_rev + 1};
        if ((rc = dr_etcd_watch_open(e, &wo, &w, NULL)) < 0)
            goto out;
        int64_t seen = r->x.promoted_rev;
        while (seen < st.header.revision) {
            dr_etcd_watch_res wr;
            if ((rc = dr_etcd_watch_next(w, 10000, &wr)) < 0)
                goto out;
            for (size_t i = 0; i < wr.n_events && rc >= 0; i++) {
                const dr_etcd_event *ev = &wr.events[i];
                if (ev->kv.mod_revision > st.header.revision)
                    continue;
                seen = ev->kv.mod_revision;
                if (j->mode && (rc = dr_repl_key_replicated(&o, ev->kv.key, ev->kv.key_len)) <= 0)
                    continue;
                if ((rc = list_event(&b, &v, ev)) < 0)
                    break;
                n++;
                *revs += ev->kv.mod_revision != last;
                last = ev->kv.mod_revision;
            }
            if (wr.header.revision >= st.header.revision && !wr.n_events)
                seen = st.header.revision;
            dr_etcd_watch_res_free(&wr);
            if (rc >= 0 && (rc = spill(tsv, &b, 0)) == 0)
                rc = spill(vals, &v, 0);
            if (rc < 0)
                goto out;
        }
    }
    if ((rc = spill(tsv, &b, 1)) == 0 && (rc = spill(vals, &v, 1)) == 0 &&
        (rc = dr_sink_finish(vals)) == 0)
        rc = dr_sink_finish(tsv);
    *n_out = n;
out:
    dr_etcd_watch_close(w);
    dr_sink_free(tsv);
    dr_sink_free(vals);
    dr_buf_free(&b);
    dr_buf_free(&v);
    return rc;
}

static void last_save(const runner *r);

static int step_record(runner *r, char *res, size_t cap)
{
    int rc = 0;
    if (r->x.op != DRD_OP_PLANNED && !r->dry_run) {
        /* the loss window: what the old primary holds beyond the promoted revision, once it
         * can be read (emergency: perhaps not yet) */
        dr_etcd *e = NULL;
        int64_t n = 0, revs = 0;
        if (open_site(r, r->old_i, 3000, &e) == 0) {
            rc = list_divergent(r, e, &n, &revs);
            if (rc == 0) {
                r->x.divergent = n;
                r->x.rpo_revs = revs;
            }
        } else {
            dr_error_clear();
        }
        dr_etcd_close(e);
        if (rc < 0)
            return rc;
    }
    if (r->dry_run) {
        snprintf(res, cap, "would record RPO and RTO");
        return 0;
    }
    dr_buf rb = {0};
    if (r->x.rpo_revs < 0)
        dr_buf_printf(&rb, "RPO unknown until %s can be read (drd failback lists it)",
                      r->x.old_name);
    else
        dr_buf_printf(&rb, "RPO %" PRId64 " revisions", r->x.rpo_revs);
    if (r->x.op == DRD_OP_EMERGENCY && r->x.rpo_ms >= 0) {
        dr_buf_printf(&rb, "; RPO in seconds ");
        loss_text(&r->x, &rb);
    } else if (r->x.op == DRD_OP_EMERGENCY) {
        dr_buf_printf(&rb, "; RPO in seconds unknown");
    }
    const char *rpo = rb.data ? rb.data : "";
    if (r->x.op == DRD_OP_FAILBACK)
        snprintf(res, cap, "%s lost by the failover to %s (promoted at revision %" PRId64 ")", rpo,
                 r->x.new_name, r->x.promoted_rev);
    else
        snprintf(res, cap, "%s; RTO %.1fs (start to promotion)", rpo, (double)r->x.rto_ms / 1000.0);
    if (r->x.divergent > 0) {
        size_t l = strlen(res);
        snprintf(res + l, cap - l,
                 "; %" PRId64 " events only %s had, listed in %.300s/divergent.tsv", r->x.divergent,
                 r->x.old_name, r->dir);
    }
    dr_buf_free(&rb);
    last_save(r);
    return 0;
}

static void say_reason(void *arg, const char *line)
{
    reason(arg, "%s", line);
}

/* final-volume-sync (runbook_volume.c). The fence is when this run's newest fence of the old
 * primary before this step ended (after the hooks that stop its writers); without one, when this
 * step started. Both are in the run's state, so a resumed run keeps its fence time. */
static int step_volumes(runner *r, char *res, size_t cap)
{
    int64_t fence_ms = r->run.steps[r->step].started_ms;
    for (size_t i = 0; i < r->step; i++)
        if (r->rb->steps[i].type == DR_STEP_FENCE && r->rb->steps[i].side == DR_SIDE_OLD_PRIMARY &&
            r->run.steps[i].status == DR_STEP_OK)
            fence_ms = r->run.steps[i].ended_ms;
    return drd_runbook_volumes(r->cfg, fence_ms, r->step_deadline_ms, r->dry_run, say_reason, r,
                               res, cap);
}

static int step_run(runner *r, const dr_step *s, char *res, size_t cap, dr_buf *out)
{
    switch (s->type) {
    case DR_STEP_CHECK:
        return step_check(r, s, res, cap);
    case DR_STEP_FENCE:
        return step_fence(r, s, res, cap);
    case DR_STEP_WAIT_REPLICATION:
        return step_wait_replication(r, res, cap);
    case DR_STEP_FINAL_VOLUME_SYNC:
        return step_volumes(r, res, cap);
    case DR_STEP_PROMOTE:
        return step_promote(r, res, cap);
    case DR_STEP_HOOK_EXEC:
        return step_hook_exec(r, s, res, cap, out);
    case DR_STEP_HOOK_HTTP:
        return step_hook_http(r, s, res, cap, out);
    case DR_STEP_START_REPLICATION:
        return step_start_replication(r, res, cap);
    case DR_STEP_RECORD:
        return step_record(r, res, cap);
    default:
        return dr_error_set(DR_EUSAGE, "step type %d", (int)s->type);
    }
}

/* ---- the run ---- */

/* <state_dir>/runs/last: the newest finished run's figures, for status. */
static void last_save(const runner *r)
{
    char path[1300];
    runs_dir(r->cfg, path, sizeof path);
    size_t l = strlen(path);
    snprintf(path + l, sizeof path - l, "/last");
    dr_fs_write_atomic(path, r->x.id, strlen(r->x.id), 0600);
}

static int active_path(const drd_config *cfg, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%s/runs/active", cfg->c->state_dir);
}

static int lock_runs(const drd_config *cfg, int *fd)
{
    char path[1300];
    runs_dir(cfg, path, sizeof path);
    int rc = dr_fs_mkdirs(path, 0700);
    if (rc < 0)
        return rc;
    strncat(path, "/lock", sizeof path - strlen(path) - 1);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return dr_error_set(DR_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        close(*fd);
        *fd = -1;
        return dr_error_set(DR_EBUSY, "another drd failover, failback or runbook command is "
                                      "running on this state_dir");
    }
    return 0;
}

static void who_am_i(char *buf, size_t cap)
{
    char host[128] = "?";
    const char *user = getenv("SUDO_USER");
    struct passwd pw, *res = NULL;
    char pbuf[1024];
    if (!user && getpwuid_r(getuid(), &pw, pbuf, sizeof pbuf, &res) == 0 && res)
        user = res->pw_name;
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(buf, cap, "%s@%s (pid %d)", user ? user : "?", host, (int)getpid());
}

static int load_runbook(const char *path, dr_runbook **rb)
{
    dr_yaml_doc *doc = NULL;
    int rc = dr_yaml_load(path, &doc);
    if (rc == 0)
        rc = dr_runbook_from_yaml(doc, rb);
    return rc;
}

/* Steps until the run is done, fails or is interrupted. */
static int drive(runner *r)
{
    int rc = 0;
    for (;;) {
        size_t i = 0;
        int64_t wait = 0;
        int64_t now = dr_wall_ms();
        int n = dr_run_next(&r->run, r->rb, now, &i, &wait);
        if (n == 1)
            break;
        if (n == DR_ETIMEOUT) {
            state_save(r);
            if (drd_stop)
                return dr_error_set(DR_EINTR, "interrupted while waiting to retry");
            dr_sleep_ms(wait < 500 ? wait : 500);
            continue;
        }
        r->step = i;
        const dr_step *s = &r->rb->steps[i];
        dr_run_step *rs = &r->run.steps[i];
        r->step_deadline_ms = now + s->timeout_ms;
        snprintf(rs->result, sizeof rs->result, "running");
        state_save(r);
        audit(r, "start", NULL, NULL);
        printf("%s step %zu/%zu %s (%s)%s\n", r->dry_run ? "plan:" : "run:", i + 1, r->rb->n_steps,
               s->name, dr_step_type_name(s->type), rs->attempts > 1 ? " again" : "");
        fflush(stdout);
        char res[512] = "";
        dr_buf out = {0};
        dr_error_clear();
        rc = step_run(r, s, res, sizeof res, &out);
        if (rc < 0)
            snprintf(res, sizeof res, "%s", dr_error_msg());
        if (!r->dry_run)
            ctx_save(r);
        dr_run_step_done(&r->run, r->rb, rc, res, dr_wall_ms());
        state_save(r);
        audit(r,
              rc == 0                         ? "ok"
              : rs->status == DR_STEP_WAITING ? "retry"
                                              : "failed",
              res, out.len ? out.data : NULL);
        dr_buf_free(&out);
        printf("  %s: %s\n",
               rc == 0                         ? "ok"
               : rs->status == DR_STEP_WAITING ? "RETRY"
                                               : "FAILED",
               res);
        fflush(stdout);
        if (r->dry_run && rc < 0)
            return dr_error_set(rc, "%s", res);
        if (r->run.status == DR_RUN_FAILED)
            return dr_error_set(rc, "run %s failed at step %s: %s", r->x.id, s->name, res);
        if (drd_stop)
            return dr_error_set(DR_EINTR, "interrupted; drd runbook resume %s continues", r->x.id);
    }
    if (!r->dry_run) {
        char active[1300];
        active_path(r->cfg, active, sizeof active);
        unlink(active);
        audit(r, "done", NULL, NULL);
    }
    printf("run %s: %s\n", r->x.id, r->dry_run ? "dry run: nothing was changed" : "done");
    return 0;
}

static void runner_free(runner *r)
{
    dr_runbook_free(r->rb);
}

int drd_runbook_start(drd_config *cfg, drd_op op, int dry_run)
{
    runner r;
    const dr_conf *c = cfg->c;
    const dr_conf_failover *f = &c->failover;
    int rc = 0, lock = -1;
    char path[1300], seen[512], active[1300];
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.c = c;
    r.dry_run = dry_run;
    drd_signals_install();
    if (!c->has_failover)
        return dr_error_set(DR_EUSAGE,
                            "%s: no failover section (failover: primary, standby, "
                            "replicate, planned, emergency, failback)",
                            c->file);
    const char *file = op == DRD_OP_PLANNED     ? f->planned
                       : op == DRD_OP_EMERGENCY ? f->emergency
                                                : f->failback;
    if (!file)
        return dr_error_set(DR_EUSAGE, "%s: failover.%s names no runbook file", c->file,
                            op_names[op]);
    if ((rc = load_runbook(file, &r.rb)) < 0)
        return rc;
    if (!dry_run && (rc = lock_runs(cfg, &lock)) < 0)
        goto out;
    active_path(cfg, active, sizeof active);
    if (!dry_run && access(active, F_OK) == 0) {
        char *id = NULL;
        size_t n = 0;
        dr_fs_read_all(active, 200, &id, &n);
        rc = dr_error_set(DR_EBUSY,
                          "run %s is not finished: drd runbook resume %s continues it, drd "
                          "runbook abort %s gives it up",
                          id ? id : "?", id ? id : "?", id ? id : "?");
        free(id);
        goto out;
    }
    /* roles: who the newest epoch names primary */
    dr_epoch newest;
    if ((rc = newest_epoch(&r, 3000, &newest, seen, sizeof seen)) < 0)
        goto out;
    const char *cur = newest.epoch ? newest.primary : c->clusters[f->primary_i].name;
    r.old_i = cluster_index(c, cur);
    if (r.old_i != f->primary_i && r.old_i != f->standby_i) {
        rc = dr_error_set(DR_ESTALE,
                          "epoch %" PRId64 " names '%s' the primary, which is neither "
                          "failover.primary nor failover.standby",
                          newest.epoch, cur);
        goto out;
    }
    r.new_i = r.old_i == f->primary_i ? f->standby_i : f->primary_i;
    if (op == DRD_OP_FAILBACK) {
        /* failback: after an emergency failover, the newest epoch names the survivor (the new
         * primary); the old primary is the one it replaced, and it is demoted here */
        int t = r.old_i;
        r.old_i = r.new_i;
        r.new_i = t;
        if (!newest.epoch) {
            rc = dr_error_set(DR_EUSAGE, "nothing to fail back: no failover has been recorded "
                                         "(epoch 0)");
            goto out;
        }
    }
    ctx *x = &r.x;
    x->op = op;
    x->started_ms = dr_wall_ms();
    x->base_epoch = newest.epoch;
    x->new_epoch = op == DRD_OP_FAILBACK ? newest.epoch : newest.epoch + 1;
    x->promoted_rev = op == DRD_OP_FAILBACK ? newest.revision : 0;
    x->rpo_revs = x->rpo_ms = -1;
    snprintf(x->old_name, sizeof x->old_name, "%s", c->clusters[r.old_i].name);
    snprintf(x->new_name, sizeof x->new_name, "%s", c->clusters[r.new_i].name);
    snprintf(x->runbook, sizeof x->runbook, "%s", r.rb->name);
    who_am_i(x->who, sizeof x->who);
    time_t t = (time_t)(x->started_ms / 1000);
    struct tm tm;
    char ts[32];
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", &tm);
    snprintf(x->id, sizeof x->id, "%s-%s", ts, op_names[op]);
    printf("%s %s: %s is the primary now (%s); %s %s\n", dry_run ? "dry run of" : "run",
           dry_run ? r.rb->name : x->id, x->old_name, seen,
           op == DRD_OP_FAILBACK ? "demoting it back to standby of" : "promoting", x->new_name);
    if ((rc = dr_run_init(&r.run, r.rb)) < 0)
        goto out;
    if (!dry_run) {
        runs_dir(cfg, path, sizeof path);
        snprintf(r.dir, sizeof r.dir, "%.1000s/%.150s", path, x->id);
        for (int k = 2; mkdir(r.dir, 0700) != 0; k++) {
            if (errno != EEXIST || k > 99) {
                rc = dr_error_set(DR_EIO, "cannot create '%s': %s", r.dir, strerror(errno));
                goto out;
            }
            snprintf(x->id, sizeof x->id, "%s-%s-%d", ts, op_names[op], k);
            snprintf(r.dir, sizeof r.dir, "%.1000s/%.150s", path, x->id);
        }
        char *text = NULL, cp[1300];
        size_t n = 0;
        snprintf(cp, sizeof cp, "%s/runbook.yaml", r.dir);
        if ((rc = dr_fs_read_all(file, 1 << 20, &text, &n)) == 0)
            rc = dr_fs_write_atomic(cp, text, n, 0600);
        free(text);
        if (rc < 0 || (rc = ctx_save(&r)) < 0 || (rc = state_save(&r)) < 0 ||
            (rc = dr_fs_write_atomic(active, x->id, strlen(x->id), 0600)) < 0)
            goto out;
        audit(&r, "begin", file, NULL);
    }
    rc = drive(&r);
out:
    if (lock >= 0)
        close(lock);
    runner_free(&r);
    return rc;
}

static int open_run(drd_config *cfg, const char *id, runner *r)
{
    char path[1300], rb[1300];
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->c = cfg->c;
    if (!id[0] || strchr(id, '/') || id[0] == '.')
        return dr_error_set(DR_EUSAGE, "'%s' is not a run id (drd runbook list)", id);
    runs_dir(cfg, path, sizeof path);
    snprintf(r->dir, sizeof r->dir, "%.1000s/%.150s", path, id);
    int rc = ctx_load(r->dir, &r->x);
    if (rc == DR_ENOTFOUND)
        return dr_error_set(DR_ENOTFOUND, "no run '%s' in %s (drd runbook list)", id, path);
    snprintf(rb, sizeof rb, "%s/runbook.yaml", r->dir);
    if (rc == 0)
        rc = load_runbook(rb, &r->rb);
    if (rc == 0)
        rc = state_load(r->dir, &r->run);
    if (rc == 0 && r->run.n_steps != r->rb->n_steps)
        rc = dr_error_set(DR_EPROTO, "run %s: its state and runbook disagree", id);
    r->old_i = cluster_index(cfg->c, r->x.old_name);
    r->new_i = cluster_index(cfg->c, r->x.new_name);
    if (rc == 0 && (r->old_i < 0 || r->new_i < 0 || !cfg->c->has_failover))
        rc = dr_error_set(DR_EUSAGE, "run %s: the config no longer has clusters %s and %s", id,
                          r->x.old_name, r->x.new_name);
    return rc;
}

int drd_runbook_resume(drd_config *cfg, const char *id)
{
    runner r;
    int lock = -1;
    drd_signals_install();
    int rc = lock_runs(cfg, &lock);
    if (rc == 0)
        rc = open_run(cfg, id, &r);
    if (rc == 0) {
        if (r.run.status == DR_RUN_ABORTED || r.run.status == DR_RUN_DONE) {
            rc = dr_error_set(DR_EUSAGE, "run %s is %s: nothing to resume", id,
                              dr_run_status_name(r.run.status));
        } else {
            dr_run_retry(&r.run);
            r.step = r.run.cur;
            audit(&r, "resume", NULL, NULL);
            printf("resuming run %s at step %zu/%zu\n", id, r.run.cur + 1, r.run.n_steps);
            rc = drive(&r);
        }
    }
    runner_free(&r);
    if (lock >= 0)
        close(lock);
    return rc;
}

int drd_runbook_abort(drd_config *cfg, const char *id)
{
    runner r;
    int lock = -1;
    char active[1300], *cur = NULL;
    size_t n = 0;
    int rc = lock_runs(cfg, &lock);
    if (rc == 0)
        rc = open_run(cfg, id, &r);
    if (rc == 0 && r.run.status == DR_RUN_DONE)
        rc = dr_error_set(DR_EUSAGE, "run %s is done: nothing to abort", id);
    if (rc == 0) {
        r.run.status = DR_RUN_ABORTED;
        r.step = r.run.n_steps;
        if ((rc = state_save(&r)) == 0) {
            audit(&r, "abort", "aborted by the operator", NULL);
            active_path(cfg, active, sizeof active);
            if (dr_fs_read_all(active, 200, &cur, &n) == 0 && !strcmp(cur, id))
                unlink(active);
            dr_error_clear();
            printf("run %s aborted; what it did stays done (see drd runbook show %s)\n", id, id);
        }
    }
    free(cur);
    runner_free(&r);
    if (lock >= 0)
        close(lock);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The run ids in state_dir, oldest first; caller frees each and the array. */
static int run_ids(const drd_config *cfg, char ***ids, size_t *n)
{
    char path[1300];
    runs_dir(cfg, path, sizeof path);
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        char p[1400];
        snprintf(p, sizeof p, "%.1100s/%.255s", path, de->d_name);
        if (de->d_name[0] == '.' || stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        char **v = realloc(*ids, (*n + 1) * sizeof *v);
        if (!v)
            break;
        *ids = v;
        v[(*n)++] = strdup(de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*ids, *n, sizeof **ids, cmp_str);
    return 0;
}

static void summary(const runner *r, dr_buf *b)
{
    size_t cur = r->run.cur < r->run.n_steps ? r->run.cur : r->run.n_steps - 1;
    const dr_run_step *s = &r->run.steps[cur];
    dr_buf_printf(b, "%s  %s  %s -> %s, epoch %" PRId64 ", %s", r->x.id,
                  dr_run_status_name(r->run.status), r->x.old_name, r->x.new_name, r->x.new_epoch,
                  r->x.runbook);
    if (r->run.status == DR_RUN_ACTIVE || r->run.status == DR_RUN_FAILED)
        dr_buf_printf(b, ", step %zu/%zu %s (%s): %s", cur + 1, r->run.n_steps,
                      r->rb->steps[cur].name, dr_step_status_name(s->status), s->result);
    if (r->run.status == DR_RUN_DONE) {
        if (r->x.rpo_revs >= 0)
            dr_buf_printf(b, ", RPO %" PRId64 " revisions", r->x.rpo_revs);
        else
            dr_buf_printf(b, ", RPO unknown");
        if (r->x.op == DRD_OP_EMERGENCY && r->x.rpo_ms >= 0)
            dr_buf_printf(b, ", at most %.3fs", (double)r->x.rpo_ms / 1000.0);
        if (r->x.op != DRD_OP_FAILBACK)
            dr_buf_printf(b, ", RTO %.1fs", (double)r->x.rto_ms / 1000.0);
    }
}

int drd_runbook_list(drd_config *cfg)
{
    char **ids = NULL;
    size_t n = 0;
    run_ids(cfg, &ids, &n);
    if (!n)
        printf("no runbook runs in %s/runs\n", cfg->c->state_dir);
    for (size_t i = 0; i < n; i++) {
        runner r;
        dr_buf b = {0};
        if (open_run(cfg, ids[i], &r) == 0) {
            summary(&r, &b);
            printf("%s\n", b.data);
        } else {
            printf("%s  unreadable: %s\n", ids[i], dr_error_msg());
        }
        dr_buf_free(&b);
        runner_free(&r);
        free(ids[i]);
    }
    free(ids);
    dr_error_clear();
    return 0;
}

int drd_runbook_show(drd_config *cfg, const char *id)
{
    runner r;
    dr_buf b = {0};
    int rc = open_run(cfg, id, &r);
    if (rc == 0) {
        summary(&r, &b);
        printf("%s\nstarted by %s\n", b.data, r.x.who);
        if (r.x.op == DRD_OP_EMERGENCY && r.x.rpo_ms >= 0) {
            char t0[40];
            dr_buf w = {0};
            loss_text(&r.x, &w);
            dr_time_iso_ms(r.x.caught_up_ms, t0, sizeof t0);
            printf("loss window: writes %s acknowledged after %s may be lost; RPO in seconds %s\n",
                   r.x.old_name, t0, w.data ? w.data : "");
            dr_buf_free(&w);
        }
        printf("\n");
        for (size_t i = 0; i < r.run.n_steps; i++) {
            const dr_run_step *s = &r.run.steps[i];
            printf("%2zu. %-26s %-18s %-8s attempts %d%s%s\n", i + 1, r.rb->steps[i].name,
                   dr_step_type_name(r.rb->steps[i].type), dr_step_status_name(s->status),
                   s->attempts, s->result[0] ? "\n    " : "", s->result);
        }
        printf("\naudit trail: %s/audit.log\n", r.dir);
    }
    dr_buf_free(&b);
    runner_free(&r);
    return rc;
}

/* The newest run: the active one, else the last finished one. 1 and *r (runner_free), or 0. */
static int newest_run(const drd_config *cfg, runner *r)
{
    char path[1300], *id = NULL;
    size_t n = 0;
    int have = 0;
    memset(r, 0, sizeof *r);
    for (int k = 0; k < 2 && !have; k++) {
        snprintf(path, sizeof path, "%s/runs/%s", cfg->c->state_dir, k ? "last" : "active");
        free(id);
        id = NULL;
        if (dr_fs_read_all(path, 200, &id, &n) < 0)
            continue;
        if (open_run((drd_config *)cfg, id, r) == 0) {
            have = 1;
        } else {
            runner_free(r);
            memset(r, 0, sizeof *r);
        }
    }
    free(id);
    dr_error_clear();
    return have;
}

int drd_runbook_figures_get(const drd_config *cfg, drd_runbook_figures *f)
{
    runner r;
    memset(f, 0, sizeof *f);
    if (!newest_run(cfg, &r))
        return dr_error_set(DR_ENOTFOUND, "no runbook run in %s/runs", cfg->c->state_dir);
    set(f->id, sizeof f->id, r.x.id);
    set(f->old_primary, sizeof f->old_primary, r.x.old_name);
    set(f->new_primary, sizeof f->new_primary, r.x.new_name);
    f->operation = op_names[r.x.op];
    f->status = dr_run_status_name(r.run.status);
    f->epoch = r.x.new_epoch;
    f->rpo_revs = r.x.rpo_revs;
    f->rpo_ms = r.x.rpo_ms;
    f->rto_ms = r.x.promoted_ms > 0 ? r.x.rto_ms : -1; /* measured by the promote step */
    f->started_ms = r.x.started_ms;
    for (size_t i = 0; r.run.status != DR_RUN_ACTIVE && i < r.run.n_steps; i++)
        if (r.run.steps[i].ended_ms > f->finished_ms)
            f->finished_ms = r.run.steps[i].ended_ms;
    runner_free(&r);
    return 0;
}

void drd_runbook_status(const drd_config *cfg, dr_buf *b, int json)
{
    runner r;
    dr_buf s = {0};
    if (!newest_run(cfg, &r)) {
        dr_buf_printf(b, json ? "null" : "");
        return;
    }
    summary(&r, &s);
    if (json) {
        size_t cur = r.run.cur < r.run.n_steps ? r.run.cur : r.run.n_steps - 1;
        dr_buf_printf(b,
                      "{\"id\":\"%s\",\"operation\":\"%s\",\"status\":\"%s\",\"old_primary\":"
                      "\"%s\",\"new_primary\":\"%s\",\"epoch\":%" PRId64
                      ",\"rpo_revisions\":%" PRId64 ",\"rpo_seconds\":%.3f,\"rto_seconds\":%.3f",
                      r.x.id, op_names[r.x.op], dr_run_status_name(r.run.status), r.x.old_name,
                      r.x.new_name, r.x.new_epoch, r.x.rpo_revs,
                      r.x.rpo_ms < 0 ? -1.0 : (double)r.x.rpo_ms / 1000.0,
                      (double)r.x.rto_ms / 1000.0);
        loss_json(&r.x, b);
        dr_buf_printf(b, ",\"step\":");
        dr_buf_json_str(b, r.rb->steps[cur].name, strlen(r.rb->steps[cur].name));
        dr_buf_printf(b, ",\"reason\":");
        dr_buf_json_str(b, r.run.steps[cur].result, strlen(r.run.steps[cur].result));
        dr_buf_printf(b, "}");
    } else {
        dr_buf_printf(b, "\nlast runbook run: %s\n", s.data);
    }
    dr_buf_free(&s);
    runner_free(&r);
}
