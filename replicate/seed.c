/*
 * Seed a standby: stream a snapshot of the source (sha256 trailer checked) into a temp file next
 * to the data dir, then restore it with etcdutl or etcdctl. The standby etcd started on the dir
 * is at the source's revision with identical history, which exact mode requires.
 *
 * Must never restore into a non-empty directory and never leave the temp snapshot behind.
 */
#include "repl_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct fsink {
    int fd;
} fsink;

static int sink_write(void *ctx, const void *data, size_t len)
{
    fsink *s = ctx;
    const char *p = data;
    while (len) {
        ssize_t w = write(s->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dr_error_set(DR_EIO, "cannot write the snapshot: %s", strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int dir_state(const char *path)
{
    /* 0: absent, 1: empty dir, 2: non-empty or not a dir */
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : 2;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n ? 2 : 1;
}

static int in_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char f[4200];
        snprintf(f, sizeof f, "%s/%s", d, prog);
        if (access(f, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* Run argv, capture at most cap-1 bytes of stdout+stderr into out. Returns exit status or -1. */
static int run_capture(char *const argv[], char *out, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return -1;
    }
    size_t n = 0;
    ssize_t r;
    char tmp[1024];
    while ((r = read(pfd[0], tmp, sizeof tmp)) > 0) {
        size_t take = (size_t)r;
        if (n + take > cap - 1)
            take = cap - 1 - n;
        memcpy(out + n, tmp, take);
        n += take;
    }
    out[n] = 0;
    close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void one_line(char *s)
{
    /* the last non-empty line of a tool's output, for a one-line error */
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = 0;
    char *nl = strrchr(s, '\n');
    if (nl)
        memmove(s, nl + 1, strlen(nl + 1) + 1);
}

int dr_repl_seed(const dr_repl_seed_opts *o, int64_t *revision)
{
    int rc = 0, fd = -1;
    dr_etcd *src = NULL;
    char tmp[4096], out[8192];
    int ds = dir_state(o->data_dir);
    if (ds == 2)
        return dr_error_set(DR_EUSAGE, "--data-dir '%s' is not empty: refusing to restore over it",
                            o->data_dir);
    snprintf(tmp, sizeof tmp, "%s.seed-snapshot.db.tmp", o->data_dir);
    const char *tool = in_path("etcdutl") ? "etcdutl" : in_path("etcdctl") ? "etcdctl" : NULL;
    if (!tool)
        return dr_error_set(DR_EUSAGE, "neither etcdutl nor etcdctl is installed: cannot restore "
                                       "a snapshot");
    if ((rc = dr_etcd_open(&src, &o->source)) < 0)
        return rc;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = dr_error_set(DR_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    fsink s = {fd};
    uint64_t size = 0;
    dr_etcd_header h = {0};
    if ((rc = dr_etcd_snapshot(src, sink_write, &s, &size, &h)) < 0)
        goto out;
    if (fsync(fd) != 0) {
        rc = dr_error_set(DR_EIO, "cannot sync '%s': %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    /* revision of the snapshot, from the restore tool itself */
    char *st_argv[] = {(char *)tool, "snapshot", "status", tmp, "-w", "json", NULL};
    setenv("ETCDCTL_API", "3", 1);
    int ex = run_capture(st_argv, out, sizeof out);
    char *rp = ex == 0 ? strstr(out, "\"revision\":") : NULL;
    if (!rp) {
        one_line(out);
        rc = dr_error_set(DR_EGENERIC, "%s snapshot status failed: %s", tool, out);
        goto out;
    }
    *revision = strtoll(rp + 11, NULL, 10);
    if (*revision < 1)
        *revision = 1; /* an empty store: etcd starts at revision 1 */
    if (ds == 1 && rmdir(o->data_dir) != 0) {
        rc = dr_error_set(DR_EIO, "cannot replace empty '%s': %s", o->data_dir, strerror(errno));
        goto out;
    }
    char *re_argv[] = {(char *)tool,
                       "snapshot",
                       "restore",
                       tmp,
                       "--data-dir",
                       (char *)o->data_dir,
                       "--name",
                       (char *)o->name,
                       "--initial-cluster",
                       (char *)o->initial_cluster,
                       "--initial-advertise-peer-urls",
                       (char *)o->initial_advertise_peer_urls,
                       NULL};
    ex = run_capture(re_argv, out, sizeof out);
    if (ex != 0) {
        one_line(out);
        rc = dr_error_set(DR_EGENERIC, "%s snapshot restore failed: %s", tool, out);
        goto out;
    }
    chmod(o->data_dir, 0700);
    dr_info("seeded %s from %s at revision %lld (%llu bytes)", o->data_dir, dr_etcd_endpoint(src),
            (long long)*revision, (unsigned long long)size);
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    dr_etcd_close(src);
    return rc;
}
