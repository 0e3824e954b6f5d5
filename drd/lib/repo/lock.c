/*
 * Job locks: one writer per job ("save", "follow") and store.
 *
 * Two layers. A local flock on "<catalog>.<job>.lock" stops a second run on the same host at
 * once. A lock object in the store, locks/<job>-<start ms>-<nonce>.json holding its expiry,
 * stops runs on other hosts (CronJob pods): take = drop expired locks, refuse when another live
 * one exists, write ours, list again and back off when an older live lock appeared meanwhile
 * (create-then-check: of two racing runs the one that started first wins, the other refuses).
 * The holder rewrites its object every refresh (TTL / 4, 30 s); a killed holder's lock expires
 * after the TTL (LOCK_TTL_MS, 2 min), so it does not block the next CronJob for long.
 *
 * When another lock object counts as live (scan_lock). The body's expires_ms is the writer's
 * word, and anyone who can write to the store can plant a lock that says year 2100; the store's
 * own modification time (S3 LastModified, the file's mtime) is set by the server when the object
 * is written, and a live holder rewrites its object every refresh. So a lock is live only while
 *     now < min(expires_ms, mtime + TTL + skew)           skew = TTL / 4 (30 s)
 * and it is removed as expired once that passes. A live holder's mtime is never more than one
 * refresh old, so this takes nothing from it while the reader's clock is less than
 * TTL - refresh + skew (2 min) ahead of the store's; a planted or stale lock blocks for at most
 * TTL + skew after it was written. Not locks, removed at once: a body that is not JSON with an
 * expires_ms (drd writes whole objects, so this is not a holder caught mid-write), and a name
 * whose start time (ms) is not a number or lies more than skew in the future. A store that gives
 * no mtime (0) leaves expires_ms alone in charge.
 * DRD_TEST_LOCK_TTL_MS replaces the TTL (refresh and skew follow): a test knob, so that tests
 * need not wait minutes; never set it in production.
 *
 * Must never block forever, and never let two live holders both believe they hold the lock.
 */
#include "drd/lib/json/json.h"
#include "drd/lib/repo/repo.h"
#include "repo_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#define LOCK_TTL_MS 120000

struct dr_repo_lock {
    dr_repo *r;
    int fd;
    char name[256];
    char prefix[64];
    int64_t ttl_ms; /* refresh and skew: a quarter of it */
    int64_t refreshed_ms;
    int held_in_store;
};

static int64_t lock_ttl_ms(void)
{
    const char *t = getenv("DRD_TEST_LOCK_TTL_MS");
    char *end;
    long long v = t ? strtoll(t, &end, 10) : 0;
    if (!t || *end || v < 400 || v > LOCK_TTL_MS)
        return LOCK_TTL_MS;
    dr_warn("DRD_TEST_LOCK_TTL_MS: lock TTL %lld ms (a test knob)", v);
    return v;
}

static int lock_body(dr_buf *b, int64_t ttl_ms)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    int rc = dr_buf_printf(b, "{\"host\": ");
    rc |= dr_buf_json_str(b, host, strlen(host));
    rc |= dr_buf_printf(b, ", \"pid\": %ld, \"expires_ms\": %lld}\n", (long)getpid(),
                        (long long)(dr_wall_ms() + ttl_ms));
    return rc ? dr_error_set(DR_ENOMEM, "out of memory") : 0;
}

void repo_lock_parse(const char *text, size_t len, repo_lock_info *out)
{
    dr_json *j = NULL;
    memset(out, 0, sizeof *out);
    snprintf(out->host, sizeof out->host, "?");
    if (dr_json_parse(text, len, &j) == 0) {
        out->has_expires = dr_json_i64(j, "expires_ms", &out->expires_ms) == 0;
        dr_json_i64(j, "pid", &out->pid);
        if (dr_json_str(j, "host"))
            snprintf(out->host, sizeof out->host, "%s", dr_json_str(j, "host"));
    }
    dr_json_free(j);
    dr_error_clear();
}

typedef struct scan_ctx {
    dr_repo_lock *l;
    int64_t now;
    char holder[300]; /* the oldest other live lock */
    char holder_name[256];
} scan_ctx;

/* The wall time (ms) until which the lock object o counts as live, 0 when it is not a lock (see
 * the rule at the top); has_exp/exp from its body. */
static int64_t live_until(const scan_ctx *s, const dr_store_obj *o, int has_exp, int64_t exp)
{
    int64_t ttl = s->l->ttl_ms, skew = ttl / 4;
    const char *p = o->name + strlen(s->l->prefix);
    char *end;
    long long start = strtoll(p, &end, 10);
    if (!has_exp || end != p + 13 || *end != '-' || start > s->now + skew)
        return 0;
    if (o->mtime_ms > 0 && o->mtime_ms + ttl + skew < exp)
        return o->mtime_ms + ttl + skew;
    return exp;
}

static int scan_lock(void *ctx, const dr_store_obj *o)
{
    scan_ctx *s = ctx;
    if (!strcmp(o->name, s->l->name))
        return 0;
    char *text = NULL;
    size_t len = 0;
    int rc = dr_store_get_buf(s->l->r->store, o->name, 4096, &text, &len);
    if (rc == DR_ENOTFOUND) {
        dr_error_clear();
        return 0;
    }
    if (rc < 0)
        return rc;
    repo_lock_info li;
    repo_lock_parse(text, len, &li);
    int64_t exp = li.expires_ms, pid = li.pid;
    const char *host = li.host;
    int64_t until = live_until(s, o, li.has_expires, exp);
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    /* a holder on this host that is gone (kill -9) needs no expiry to be known dead */
    int dead = !strcmp(host, me) && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    if (until <= s->now || dead) {
        dr_info("removing %s lock %s", until ? "expired" : "invalid", o->name);
        dr_store_delete(s->l->r->store, o->name);
        dr_error_clear();
    } else if (!s->holder[0] || strcmp(o->name, s->holder_name) < 0) {
        snprintf(s->holder, sizeof s->holder, "host %s pid %lld, until %llds from now", host,
                 (long long)pid, (long long)((until - s->now) / 1000));
        snprintf(s->holder_name, sizeof s->holder_name, "%s", o->name);
    }
    free(text);
    return 0;
}

static int put_lock(dr_repo_lock *l)
{
    dr_buf b = {0};
    int rc = lock_body(&b, l->ttl_ms);
    if (rc == 0) {
        dr_store_delete(l->r->store, l->name); /* objects are immutable: replace */
        rc = dr_store_put_buf(l->r->store, l->name, b.data, b.len);
    }
    dr_buf_free(&b);
    if (rc == 0)
        l->refreshed_ms = dr_mono_ms();
    return rc;
}

int dr_repo_lock_take(dr_repo *r, const char *job, dr_repo_lock **out)
{
    int rc = 0;
    dr_repo_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dr_error_set(DR_ENOMEM, "out of memory");
    l->r = r;
    l->fd = -1;
    l->ttl_ms = lock_ttl_ms();
    char path[4200];
    snprintf(path, sizeof path, "%s.%s.lock", r->catalog_path, job);
    l->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (l->fd < 0) {
        rc = dr_error_set(DR_EIO, "cannot open lock file '%s': %s", path, strerror(errno));
        goto out;
    }
    if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "?";
        ssize_t n = pread(l->fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        rc =
            dr_error_set(DR_EBUSY, "another drd %s for store '%s' is running on this host (pid %s)",
                         job, dr_store_url(r->store), pid);
        goto out;
    }
    char pid[32];
    int pn = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(l->fd, 0) == 0 && pwrite(l->fd, pid, (size_t)pn, 0) < 0)
        dr_warn("cannot write lock file %s", path);
    uint8_t rnd[4];
    char hex[9];
    if ((rc = dr_random_bytes(rnd, sizeof rnd)) < 0)
        goto out;
    dr_hex(rnd, sizeof rnd, hex);
    snprintf(l->prefix, sizeof l->prefix, REPO_LOCKS "%s-", job);
    snprintf(l->name, sizeof l->name, "%s%013lld-%s.json", l->prefix, (long long)dr_wall_ms(), hex);
    scan_ctx s = {.l = l, .now = dr_wall_ms()};
    if ((rc = dr_store_list(r->store, l->prefix, scan_lock, &s)) < 0)
        goto out;
    if (s.holder[0]) {
        rc = dr_error_set(DR_EBUSY, "another drd %s holds the lock of store '%s' (%s)", job,
                          dr_store_url(r->store), s.holder);
        goto out;
    }
    if ((rc = put_lock(l)) < 0)
        goto out;
    l->held_in_store = 1;
    scan_ctx s2 = {.l = l, .now = dr_wall_ms()};
    if ((rc = dr_store_list(r->store, l->prefix, scan_lock, &s2)) < 0)
        goto out;
    if (s2.holder[0] && strcmp(s2.holder_name, l->name) < 0) {
        rc = dr_error_set(DR_EBUSY, "another drd %s took the lock of store '%s' first (%s)", job,
                          dr_store_url(r->store), s2.holder);
        goto out;
    }
out:
    if (rc < 0)
        dr_repo_lock_release(l);
    else
        *out = l;
    return rc;
}

int dr_repo_lock_refresh(dr_repo_lock *l)
{
    if (!l || dr_mono_ms() - l->refreshed_ms < l->ttl_ms / 4)
        return 0;
    return put_lock(l);
}

void dr_repo_lock_release(dr_repo_lock *l)
{
    if (!l)
        return;
    if (l->held_in_store) {
        int code = dr_error_code();
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        if (dr_store_delete(l->r->store, l->name) < 0)
            dr_warn("cannot remove lock %s: %s (it expires by itself)", l->name, dr_error_msg());
        if (code)
            dr_error_set(code, "%s", msg); /* keep the caller's error */
        else
            dr_error_clear();
    }
    if (l->fd >= 0)
        close(l->fd); /* releases the flock */
    free(l);
}
