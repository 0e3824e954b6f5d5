/*
 * Volume replication: the destination's copy store (volume.h has the layout), status and
 * metrics, and promote.
 * A copy is published in this order: syncfs (current/'s data on disk), hard-link tree into
 * copies/.tmp-<time>, syncfs, rename to copies/<time>, fsync copies/, new `latest` symlink renamed
 * over the old, fsync, remove `syncing`. With --no-sync the two syncfs are skipped (the data is
 * then as durable as rsync leaves it: a crash of drd loses nothing, a power loss may). A crash
 * anywhere leaves `latest` on a complete copy (or absent before the first). Must never change a
 * file inside copies/ once published, or promote anything but `latest`.
 */
#include "replicate/volume/volume.h"
#include "replicate/volume/vol_int.h"

#include "drd/lib/json/json.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- tree copy: hard links (publish) or real copies (promote) ---- */

typedef struct tree_copy {
    int link; /* files as hard links to the source's (publish) */
    int dstroot;
    vol_inomap map; /* promote: inodes with more than one link -> first path */
    char path[VOL_PATH_MAX + 1];
} tree_copy;

static int meta_from_stat(int fd, const struct stat *st)
{
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    if (geteuid() == 0 && fchown(fd, st->st_uid, st->st_gid) != 0)
        return dr_error_set(DR_EIO, "chown: %s", strerror(errno));
    if (fchmod(fd, st->st_mode & 07777) != 0 || futimens(fd, ts) != 0)
        return dr_error_set(DR_EIO, "set metadata: %s", strerror(errno));
    return 0;
}

static int copy_entry(tree_copy *tc, int src, int dst, const char *nm, const struct stat *st);

static int copy_dir(tree_copy *tc, int src, int dst)
{
    int sfd = dup(src);
    DIR *d = sfd >= 0 ? fdopendir(sfd) : NULL;
    if (d)
        rewinddir(d); /* a dup shares the offset of a directory read before */
    int rc = 0;
    if (!d) {
        if (sfd >= 0)
            close(sfd);
        return dr_error_set(DR_EIO, "read '%s': %s", tc->path, strerror(errno));
    }
    struct dirent *de;
    size_t plen = strlen(tc->path);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(src, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = dr_error_set(DR_EIO, "stat '%s': %s", de->d_name, strerror(errno));
            break;
        }
        if (plen + 1 + strlen(de->d_name) > VOL_PATH_MAX) {
            rc = dr_error_set(DR_EIO, "path too long under '%s'", tc->path);
            break;
        }
        snprintf(tc->path + plen, sizeof tc->path - plen, "%s%s", plen ? "/" : "", de->d_name);
        rc = copy_entry(tc, src, dst, de->d_name, &st);
        tc->path[plen] = 0;
    }
    closedir(d);
    return rc;
}

static int copy_entry(tree_copy *tc, int src, int dst, const char *nm, const struct stat *st)
{
    int rc = 0;
    if (S_ISDIR(st->st_mode)) {
        if (mkdirat(dst, nm, 0700) != 0)
            return dr_error_set(DR_EIO, "mkdir '%s': %s", tc->path, strerror(errno));
        int s2 = openat(src, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int d2 = openat(dst, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s2 < 0 || d2 < 0)
            rc = dr_error_set(DR_EIO, "open '%s': %s", tc->path, strerror(errno));
        if (rc == 0)
            rc = copy_dir(tc, s2, d2);
        if (rc == 0)
            rc = meta_from_stat(d2, st);
        if (s2 >= 0)
            close(s2);
        if (d2 >= 0)
            close(d2);
        return rc;
    }
    if (S_ISLNK(st->st_mode)) {
        char target[VOL_PATH_MAX + 1];
        ssize_t n = readlinkat(src, nm, target, sizeof target - 1);
        if (n < 0)
            return dr_error_set(DR_EIO, "readlink '%s': %s", tc->path, strerror(errno));
        target[n] = 0;
        struct timespec ts[2] = {st->st_atim, st->st_mtim};
        if (symlinkat(target, dst, nm) != 0 ||
            (geteuid() == 0 && fchownat(dst, nm, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW)) ||
            utimensat(dst, nm, ts, AT_SYMLINK_NOFOLLOW) != 0)
            return dr_error_set(DR_EIO, "symlink '%s': %s", tc->path, strerror(errno));
        return 0;
    }
    if (!S_ISREG(st->st_mode) || !strncmp(nm, ".drd-tmp.", 9))
        return 0;
    if (tc->link) {
        if (linkat(src, nm, dst, nm, 0) != 0)
            return dr_error_set(DR_EIO, "link '%s': %s", tc->path, strerror(errno));
        return 0;
    }
    if (st->st_nlink > 1) {
        const char *first = vol_inomap_seen(&tc->map, st->st_dev, st->st_ino, tc->path, &rc);
        if (rc < 0)
            return rc;
        if (first) {
            if (linkat(tc->dstroot, first, dst, nm, 0) != 0)
                return dr_error_set(DR_EIO, "link '%s': %s", tc->path, strerror(errno));
            return 0;
        }
    }
    int in = openat(src, nm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int out = openat(dst, nm, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (in < 0 || out < 0)
        rc = dr_error_set(DR_EIO, "copy '%s': %s", tc->path, strerror(errno));
    if (rc == 0)
        rc = vol_copy_data(in, out, (uint64_t)st->st_size);
    if (rc == 0)
        rc = meta_from_stat(out, st);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

static void tree_copy_free(tree_copy *tc)
{
    vol_inomap_free(&tc->map);
}

/* ---- publish ---- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in copies/ (complete copies only unless tmp), sorted oldest first. */
static int list_copies(int copiesfd, int tmp, char ***out, size_t *n)
{
    int fd = dup(copiesfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d)
        rewinddir(d); /* a dup shares the offset of a directory read before */
    char **v = NULL;
    size_t k = 0, cap = 0;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return dr_error_set(DR_EIO, "read copies: %s", strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if ((de->d_name[0] == '.') != (tmp != 0))
            continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(v, cap * sizeof *p);
            if (!p)
                break;
            v = p;
        }
        if (!(v[k] = strdup(de->d_name)))
            break;
        k++;
    }
    closedir(d);
    if (k)
        qsort(v, k, sizeof *v, cmp_name);
    *out = v;
    *n = k;
    return 0;
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void vol_clean_copies(int namefd)
{
    int cfd = openat(namefd, "copies", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    char **v = NULL;
    size_t n = 0;
    if (cfd < 0)
        return;
    if (list_copies(cfd, 1, &v, &n) == 0)
        for (size_t i = 0; i < n; i++)
            vol_remove_at(cfd, v[i]);
    free_names(v, n);
    close(cfd);
}

int vol_publish(int namefd, int curfd, int keep, int sync, char *copy, size_t cap)
{
    tree_copy tc = {.link = 1};
    char tmp[80];
    int rc = 0, cfd = -1, tfd = -1;
    if (mkdirat(namefd, "copies", 0700) != 0 && errno != EEXIST)
        return dr_error_set(DR_EIO, "mkdir copies: %s", strerror(errno));
    if ((cfd = openat(namefd, "copies", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return dr_error_set(DR_EIO, "open copies: %s", strerror(errno));
    int64_t ms = dr_wall_ms();
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char base[40];
    strftime(base, sizeof base, "%Y%m%dT%H%M%S", &tm);
    snprintf(copy, cap, "%s.%03dZ", base, (int)(ms % 1000));
    struct stat st;
    for (int i = 1; fstatat(cfd, copy, &st, AT_SYMLINK_NOFOLLOW) == 0 && i < 1000; i++)
        snprintf(copy, cap, "%s.%03dZ-%d", base, (int)(ms % 1000), i);
    snprintf(tmp, sizeof tmp, ".tmp-%s", copy);
    if (mkdirat(cfd, tmp, 0700) != 0 ||
        (tfd = openat(cfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = dr_error_set(DR_EIO, "create copy: %s", strerror(errno));
        goto out;
    }
    if (sync && syncfs(curfd) != 0) {
        rc = dr_error_set(DR_EIO, "syncfs: %s", strerror(errno));
        goto out;
    }
    if ((rc = copy_dir(&tc, curfd, tfd)) < 0)
        goto out;
    if (fstat(curfd, &st) != 0 || (rc = meta_from_stat(tfd, &st)) < 0 ||
        (sync && syncfs(tfd) != 0)) {
        rc = rc < 0 ? rc : dr_error_set(DR_EIO, "sync copy: %s", strerror(errno));
        goto out;
    }
    if (renameat(cfd, tmp, cfd, copy) != 0 || fsync(cfd) != 0) {
        rc = dr_error_set(DR_EIO, "publish copy: %s", strerror(errno));
        goto out;
    }
    char target[128];
    snprintf(target, sizeof target, "copies/%s", copy);
    unlinkat(namefd, "latest.tmp", 0);
    if (symlinkat(target, namefd, "latest.tmp") != 0 ||
        renameat(namefd, "latest.tmp", namefd, "latest") != 0) {
        rc = dr_error_set(DR_EIO, "update latest: %s", strerror(errno));
        goto out;
    }
    unlinkat(namefd, "syncing", 0);
    fsync(namefd);
    char **v = NULL;
    size_t n = 0;
    /* a promote holds copies/ shared while it reads a copy: prune another time */
    if (flock(cfd, LOCK_EX | LOCK_NB) != 0) {
        dr_warn("a promote is reading a copy: old copies are pruned after the next sync");
    } else if (list_copies(cfd, 0, &v, &n) == 0) {
        for (size_t i = 0; n > (size_t)keep && i < n - (size_t)keep; i++)
            if (strcmp(v[i], copy) != 0 && vol_remove_at(cfd, v[i]) < 0)
                dr_warn("cannot remove old copy %s: %s", v[i], dr_error_msg());
        flock(cfd, LOCK_UN);
    }
    free_names(v, n);
out:
    if (rc < 0 && tfd >= 0)
        vol_remove_at(cfd, tmp);
    if (tfd >= 0)
        close(tfd);
    close(cfd);
    tree_copy_free(&tc);
    return rc;
}

/* ---- status ---- */

static int64_t jget(const dr_json *j, const char *k)
{
    int64_t v = 0;
    if (j)
        dr_json_i64(j, k, &v);
    return v;
}

static void read_status(int namefd, dr_json **out)
{
    *out = NULL;
    int fd = openat(namefd, "status.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n > 0 && dr_json_parse(buf, (size_t)n, out) < 0)
        *out = NULL;
}

void vol_status_write(int namefd, const char *name, const dr_vol_stats *st, int rc)
{
    dr_json *prev = NULL;
    dr_buf b = {0};
    read_status(namefd, &prev);
    int ok = rc == 0;
    const char *latest = prev ? dr_json_str(prev, "latest") : NULL;
    dr_buf_printf(&b, "{\"name\":");
    dr_buf_json_str(&b, name, strlen(name));
    dr_buf_printf(&b, ",\"result\":\"%s\",\"error\":", ok ? "ok" : "failed");
    const char *msg = ok ? "" : dr_error_msg();
    dr_buf_json_str(&b, msg, strlen(msg));
    dr_buf_printf(&b, ",\"last_attempt_ms\":%lld,\"syncs_total\":%lld,\"failures_total\":%lld",
                  (long long)dr_wall_ms(), (long long)jget(prev, "syncs_total") + ok,
                  (long long)jget(prev, "failures_total") + !ok);
    if (ok) {
        dr_buf_printf(&b,
                      ",\"last_sync_ms\":%lld,\"last_sync_started_ms\":%lld,\"duration_ms\":%lld,"
                      "\"bytes_received\":%llu,\"bytes_sent\":%llu,\"literal_bytes\":%llu,"
                      "\"matched_bytes\":%llu,\"files\":%llu,\"files_changed\":%llu,"
                      "\"files_deleted\":%llu,\"latest\":",
                      (long long)dr_wall_ms(), (long long)st->started_ms,
                      (long long)st->duration_ms, (unsigned long long)st->wire_received,
                      (unsigned long long)st->wire_sent, (unsigned long long)st->literal,
                      (unsigned long long)st->matched, (unsigned long long)st->files,
                      (unsigned long long)st->files_changed, (unsigned long long)st->files_deleted);
        dr_buf_json_str(&b, st->copy, strlen(st->copy));
    } else if (prev && latest) {
        static const char *keys[] = {
            "last_sync_ms",  "last_sync_started_ms", "duration_ms",   "bytes_received",
            "bytes_sent",    "literal_bytes",        "matched_bytes", "files",
            "files_changed", "files_deleted"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            dr_buf_printf(&b, ",\"%s\":%lld", keys[i], (long long)jget(prev, keys[i]));
        dr_buf_printf(&b, ",\"latest\":");
        dr_buf_json_str(&b, latest, strlen(latest));
    }
    dr_buf_printf(&b, "}\n");
    dr_json_free(prev);
    if (b.data) {
        char tmp[64];
        vol_tmp_name(tmp, sizeof tmp);
        int fd = openat(namefd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0 &&
            renameat(namefd, tmp, namefd, "status.json") == 0)
            fsync(namefd);
        else
            dr_warn("cannot write the status of volume %s: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlinkat(namefd, tmp, 0);
    }
    dr_buf_free(&b);
}

/* Calls cb for name, or for every volume under root. */
typedef int (*vol_cb)(void *ctx, int namefd, const char *name);

static int each_volume(const char *root, const char *name, vol_cb cb, void *ctx)
{
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0, found = 0;
    if (rfd < 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "--root '%s': %s", root,
                            strerror(errno));
    int dfd = dup(rfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d)
        rewinddir(d); /* a dup shares the offset of a directory read before */
    struct dirent *de;
    while (d && rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || (name && strcmp(name, de->d_name) != 0))
            continue;
        int nfd = openat(rfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (nfd >= 0 && fstatat(nfd, "current", &st, AT_SYMLINK_NOFOLLOW) == 0) {
            found++;
            rc = cb(ctx, nfd, de->d_name);
        }
        if (nfd >= 0)
            close(nfd);
    }
    if (d)
        closedir(d);
    close(rfd);
    if (rc == 0 && name && !found)
        rc = dr_error_set(DR_ENOTFOUND, "no volume '%s' under '%s'", name, root);
    return rc;
}

static int in_sync(int namefd, char *latest, size_t cap)
{
    struct stat st;
    ssize_t n = readlinkat(namefd, "latest", latest, cap - 1);
    latest[n > 0 ? n : 0] = 0;
    return n > 0 && fstatat(namefd, "syncing", &st, AT_SYMLINK_NOFOLLOW) != 0;
}

static int metrics_cb(void *ctx, int namefd, const char *name)
{
    dr_buf *b = ctx;
    dr_json *j = NULL;
    char latest[128];
    read_status(namefd, &j);
    int sync = in_sync(namefd, latest, sizeof latest);
    static const struct {
        const char *metric, *key;
        double scale;
    } m[] = {
        {"drd_volume_last_sync_timestamp_seconds", "last_sync_ms", 1e-3},
        {"drd_volume_last_sync_duration_seconds", "duration_ms", 1e-3},
        {"drd_volume_last_sync_bytes_received", "bytes_received", 1},
        {"drd_volume_last_sync_literal_bytes", "literal_bytes", 1},
        {"drd_volume_last_sync_matched_bytes", "matched_bytes", 1},
        {"drd_volume_last_sync_files_changed", "files_changed", 1},
        {"drd_volume_last_sync_files_deleted", "files_deleted", 1},
        {"drd_volume_syncs_total", "syncs_total", 1},
        {"drd_volume_sync_failures_total", "failures_total", 1},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        dr_buf_printf(b, "%s{name=\"%s\"} %.15g\n", m[i].metric, name,
                      (double)jget(j, m[i].key) * m[i].scale);
    dr_buf_printf(b, "drd_volume_out_of_sync{name=\"%s\"} %d\n", name, !sync);
    dr_json_free(j);
    return 0;
}

int vol_metrics(const char *root, dr_buf *body)
{
    return each_volume(root, NULL, metrics_cb, body);
}

typedef struct status_ctx {
    int json, count;
    dr_buf out;
} status_ctx;

static int status_cb(void *ctx, int namefd, const char *name)
{
    status_ctx *c = ctx;
    dr_json *j = NULL;
    char latest[128];
    read_status(namefd, &j);
    int sync = in_sync(namefd, latest, sizeof latest);
    const char *copy = latest[0] ? latest + (strncmp(latest, "copies/", 7) ? 0 : 7) : "";
    const char *err = j ? dr_json_str(j, "error") : NULL;
    if (c->json) {
        dr_buf_printf(&c->out, "%s{\"name\":", c->count++ ? "," : "");
        dr_buf_json_str(&c->out, name, strlen(name));
        dr_buf_printf(&c->out, ",\"in_sync\":%s,\"latest\":", sync ? "true" : "false");
        dr_buf_json_str(&c->out, copy, strlen(copy));
        static const char *keys[] = {"last_sync_ms",   "last_sync_started_ms", "duration_ms",
                                     "bytes_received", "literal_bytes",        "matched_bytes",
                                     "files",          "files_changed",        "files_deleted",
                                     "syncs_total",    "failures_total",       "last_attempt_ms"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            dr_buf_printf(&c->out, ",\"%s\":%lld", keys[i], (long long)jget(j, keys[i]));
        dr_buf_printf(&c->out, ",\"last_error\":");
        dr_buf_json_str(&c->out, err ? err : "", err ? strlen(err) : 0);
        dr_buf_printf(&c->out, "}");
    } else {
        int64_t last = jget(j, "last_sync_ms");
        char when[40] = "never";
        if (last) {
            time_t sec = (time_t)(last / 1000);
            struct tm tm;
            gmtime_r(&sec, &tm);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        dr_buf_printf(&c->out,
                      "%s: %s, latest copy %s, last sync %s (took %lld ms): received %lld "
                      "bytes, literal %lld, matched %lld; %lld files, %lld changed, %lld deleted; "
                      "%lld syncs, %lld failed\n",
                      name, sync ? "in sync" : "OUT OF SYNC", copy[0] ? copy : "(none)", when,
                      (long long)jget(j, "duration_ms"), (long long)jget(j, "bytes_received"),
                      (long long)jget(j, "literal_bytes"), (long long)jget(j, "matched_bytes"),
                      (long long)jget(j, "files"), (long long)jget(j, "files_changed"),
                      (long long)jget(j, "files_deleted"), (long long)jget(j, "syncs_total"),
                      (long long)jget(j, "failures_total"));
        if (err && err[0])
            dr_buf_printf(&c->out, "  last error: %s\n", err);
    }
    dr_json_free(j);
    return 0;
}

int dr_vol_status(const char *root, const char *name, int json)
{
    status_ctx c = {.json = json};
    if (json)
        dr_buf_printf(&c.out, "[");
    int rc = each_volume(root, name, status_cb, &c);
    if (json)
        dr_buf_printf(&c.out, "]\n");
    if (rc == 0 && c.out.data)
        fwrite(c.out.data, 1, c.out.len, stdout);
    dr_buf_free(&c.out);
    return rc;
}

int dr_vol_latest(const char *root, const char *name, dr_vol_latest_info *out)
{
    char latest[128];
    struct stat st;
    dr_json *j = NULL;
    memset(out, 0, sizeof *out);
    int rc = dr_vol_name_check(name);
    if (rc < 0)
        return rc;
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int nfd = rfd >= 0 ? openat(rfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (nfd < 0) {
        rc = dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "volume '%s' under '%s': %s",
                          name, root, strerror(errno));
        goto out;
    }
    out->syncing = fstatat(nfd, "syncing", &st, AT_SYMLINK_NOFOLLOW) == 0;
    ssize_t n = readlinkat(nfd, "latest", latest, sizeof latest - 1);
    if (n <= 7 || strncmp(latest, "copies/", 7) != 0)
        goto out; /* no complete copy yet */
    latest[n] = 0;
    snprintf(out->copy, sizeof out->copy, "%s", latest + 7);
    /* publish moves `latest` before status.json names the copy: times of another copy are none */
    read_status(nfd, &j);
    const char *named = j ? dr_json_str(j, "latest") : NULL;
    if (named && !strcmp(named, out->copy)) {
        out->started_ms = jget(j, "last_sync_started_ms");
        out->ended_ms = jget(j, "last_sync_ms");
    }
out:
    dr_json_free(j);
    if (nfd >= 0)
        close(nfd);
    if (rfd >= 0)
        close(rfd);
    return rc;
}

/* ---- promote ---- */

int dr_vol_promote(const char *root, const char *name, const char *dir)
{
    tree_copy tc = {0};
    char latest[128];
    int rc = dr_vol_name_check(name), rfd = -1, nfd = -1, cfd = -1, src = -1, dst = -1;
    if (rc < 0)
        return rc;
    if ((rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = dr_error_set(DR_ENOTFOUND, "--root '%s': %s", root, strerror(errno));
        goto out;
    }
    nfd = openat(rfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = nfd >= 0 ? readlinkat(nfd, "latest", latest, sizeof latest - 1) : -1;
    if (n <= 0 || strncmp(latest, "copies/", 7) != 0 || memchr(latest + 7, '/', (size_t)n - 7)) {
        rc = dr_error_set(DR_ENOTFOUND,
                          "volume '%s' under '%s' has no complete copy to promote (no sync has "
                          "finished yet)",
                          name, root);
        goto out;
    }
    latest[n] = 0;
    /* copies/ shared: no publish prunes the copy while it is read (a sync may go on) */
    if ((cfd = openat(nfd, "copies", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
        flock(cfd, LOCK_SH) != 0) {
        rc = dr_error_set(DR_EIO, "copies of '%s': %s", name, strerror(errno));
        goto out;
    }
    if ((src = openat(nfd, latest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc =
            dr_error_set(DR_ENOTFOUND, "latest copy %s of '%s': %s", latest, name, strerror(errno));
        goto out;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = dr_error_set(DR_EIO, "--to '%s': %s", dir, strerror(errno));
        goto out;
    }
    if ((dst = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = dr_error_set(DR_EIO, "--to '%s': %s", dir, strerror(errno));
        goto out;
    }
    int ddup = dup(dst);
    DIR *d = ddup >= 0 ? fdopendir(ddup) : NULL;
    if (d)
        rewinddir(d); /* a dup shares the offset of a directory read before */
    struct dirent *de;
    int empty = d != NULL;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "lost+found"))
            empty = 0;
    if (d)
        closedir(d);
    if (!empty) {
        rc = dr_error_set(DR_EUSAGE,
                          "--to '%s' is not empty: promote writes into an empty "
                          "directory only",
                          dir);
        goto out;
    }
    tc.dstroot = dst;
    struct stat st;
    if ((rc = copy_dir(&tc, src, dst)) == 0 && fstat(src, &st) == 0)
        rc = meta_from_stat(dst, &st);
    if (rc == 0 && syncfs(dst) != 0)
        rc = dr_error_set(DR_EIO, "syncfs '%s': %s", dir, strerror(errno));
    if (rc == 0)
        printf("promoted %s copy %s to %s\n", name, latest + 7, dir);
out:
    tree_copy_free(&tc);
    if (dst >= 0)
        close(dst);
    if (src >= 0)
        close(src);
    if (cfd >= 0)
        close(cfd);
    if (nfd >= 0)
        close(nfd);
    if (rfd >= 0)
        close(rfd);
    return rc;
}
