/*
 * The etcd programs as child processes: snapshot restore and a throw-away etcd.
 * Must never listen on a TCP port (the throw-away etcd holds a restored database and has no
 * authentication: it listens only on unix sockets in a private 0700 dir), never hand a child
 * more environment than it needs (no AWS_*, no DRD_*: see child_env), and never signal a
 * process it did not start.
 */
#include "drd/lib/etcdtool/etcdtool.h"
#include "drd/core/core.h"
#include "drd/lib/boltfile/boltfile.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/etcd/etcd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The whole environment of a child: PATH and TMPDIR from ours, plus ETCDCTL_API=3 for the
 * tools; nothing else of ours (credentials such as AWS_SECRET_ACCESS_KEY or a session token,
 * DRD_* settings, ETCD_* variables that etcd would read as flags). */
typedef struct child_env {
    char path[4200];
    char tmpdir[4200];
    char *envp[4];
} child_env;

static char **child_env_init(child_env *ce, int tool)
{
    const char *path = getenv("PATH"), *tmp = getenv("TMPDIR");
    size_t n = 0;
    snprintf(ce->path, sizeof ce->path, "PATH=%s",
             path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    ce->envp[n++] = ce->path;
    if (tmp && *tmp) {
        snprintf(ce->tmpdir, sizeof ce->tmpdir, "TMPDIR=%s", tmp);
        ce->envp[n++] = ce->tmpdir;
    }
    if (tool)
        ce->envp[n++] = "ETCDCTL_API=3";
    ce->envp[n] = NULL;
    return ce->envp;
}

int dr_etcdtool_dir_state(const char *path)
{
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

/* Runs argv, capturing at most cap-1 bytes of its output. Exit status, or -1. */
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
    child_env ce;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, child_env_init(&ce, 1));
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

/* The last non-empty line of a tool's output, for a one-line error. */
static void one_line(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = 0;
    char *nl = strrchr(s, '\n');
    if (nl)
        memmove(s, nl + 1, strlen(nl + 1) + 1);
}

static const char *restore_tool(void)
{
    return in_path("etcdutl") ? "etcdutl" : in_path("etcdctl") ? "etcdctl" : NULL;
}

int dr_etcdtool_snapshot_revision(const char *snapshot_file, int64_t *revision)
{
    char out[8192];
    const char *tool = restore_tool();
    if (!tool)
        return dr_error_set(DR_EUSAGE, "neither etcdutl nor etcdctl is installed");
    char *argv[] = {(char *)tool, "snapshot", "status", (char *)snapshot_file, "-w", "json", NULL};
    int ex = run_capture(argv, out, sizeof out);
    char *rp = ex == 0 ? strstr(out, "\"revision\":") : NULL;
    if (!rp) {
        one_line(out);
        return dr_error_set(DR_EGENERIC, "%s snapshot status failed: %s", tool, out);
    }
    *revision = strtoll(rp + 11, NULL, 10);
    if (*revision < 1)
        *revision = 1; /* an empty store: etcd starts at revision 1 */
    return 0;
}

int dr_etcdtool_restore(const char *snapshot_file, const char *data_dir, const char *name,
                        const char *initial_cluster, const char *peer_urls)
{
    char out[8192];
    int ds = dr_etcdtool_dir_state(data_dir);
    if (ds == 2)
        return dr_error_set(DR_EUSAGE, "data dir '%s' is not empty: refusing to restore over it",
                            data_dir);
    const char *tool = restore_tool();
    if (!tool)
        return dr_error_set(DR_EUSAGE,
                            "neither etcdutl nor etcdctl is installed: cannot restore a snapshot");
    if (ds == 1 && rmdir(data_dir) != 0)
        return dr_error_set(DR_EIO, "cannot replace empty '%s': %s", data_dir, strerror(errno));
    char *argv[] = {(char *)tool,
                    "snapshot",
                    "restore",
                    (char *)snapshot_file,
                    "--data-dir",
                    (char *)data_dir,
                    "--name",
                    (char *)name,
                    "--initial-cluster",
                    (char *)initial_cluster,
                    "--initial-advertise-peer-urls",
                    (char *)peer_urls,
                    NULL};
    if (run_capture(argv, out, sizeof out) != 0) {
        one_line(out);
        return dr_error_set(DR_EGENERIC, "%s snapshot restore failed: %s", tool, out);
    }
    chmod(data_dir, 0700);
    return 0;
}

/* etcdctl 3.4 and no etcdutl: the database can be written straight into the data dir (what
 * etcdctl 3.4's restore does to it is known: only meta/consistent_index changes). */
static int direct_db_ok(void)
{
    const char *via = getenv("DRD_RESTORE_VIA");
    if (via && strcmp(via, "tool") == 0)
        return 0;
    const char *tool = restore_tool();
    if (!tool || strcmp(tool, "etcdctl") != 0)
        return 0;
    static int known = -1;
    if (known < 0) {
        char out[1024];
        char *argv[] = {"etcdctl", "version", NULL};
        known =
            run_capture(argv, out, sizeof out) == 0 && strstr(out, "etcdctl version: 3.4.") != NULL;
    }
    return known;
}

/* An empty bbolt database with etcd's sha256 trailer: what etcdctl restores to lay out a member. */
static int write_empty_snapshot(const char *path)
{
    dr_buf b = {0};
    uint8_t sum[32];
    int rc = dr_boltfile_empty(&b);
    if (rc == 0)
        rc = dr_sha256_buf(b.data, b.len, sum);
    if (rc == 0)
        rc = dr_buf_append(&b, sum, sizeof sum);
    if (rc == 0)
        rc = dr_fs_write_atomic(path, b.data, b.len, 0600);
    dr_buf_free(&b);
    return rc;
}

static int restore_via_tool(const char *data_dir, const char *name, const char *initial_cluster,
                            const char *peer_urls, dr_etcdtool_db_fn fn, void *ctx)
{
    char snap[4200];
    snprintf(snap, sizeof snap, "%s.snapshot.db", data_dir);
    int rc = fn(ctx, snap, 0);
    if (rc == 0)
        rc = dr_etcdtool_restore(snap, data_dir, name, initial_cluster, peer_urls);
    unlink(snap);
    return rc;
}

int dr_etcdtool_restore_from(const char *data_dir, const char *name, const char *initial_cluster,
                             const char *peer_urls, dr_etcdtool_db_fn fn, void *ctx)
{
    if (!direct_db_ok())
        return restore_via_tool(data_dir, name, initial_cluster, peer_urls, fn, ctx);
    char empty[4200], db[4200];
    uint8_t ci[8];
    size_t cilen = 0;
    snprintf(empty, sizeof empty, "%s.empty.db", data_dir);
    snprintf(db, sizeof db, "%s/member/snap/db", data_dir);
    int rc = write_empty_snapshot(empty);
    if (rc == 0)
        rc = dr_etcdtool_restore(empty, data_dir, name, initial_cluster, peer_urls);
    unlink(empty);
    if (rc == 0)
        rc = dr_boltfile_get(db, "meta", "consistent_index", ci, sizeof ci, &cilen);
    if (rc == 0 && cilen != sizeof ci)
        rc = dr_error_set(DR_EPROTO, "etcdctl wrote a %zu-byte consistent index", cilen);
    if (rc == 0)
        rc = fn(ctx, db, 1); /* replaces the empty database */
    if (rc < 0)
        return rc; /* the caller removes data_dir */
    rc = dr_boltfile_set_same_size(db, "meta", "consistent_index", ci, sizeof ci);
    if (rc == DR_ENOTFOUND || rc == DR_EUSAGE || rc == DR_EPROTO) {
        dr_warn("cannot set the consistent index in the restored database (%s): restoring "
                "through etcdctl instead",
                dr_error_msg());
        dr_error_clear();
        if ((rc = dr_fs_remove_tree(data_dir)) < 0)
            return rc;
        return restore_via_tool(data_dir, name, initial_cluster, peer_urls, fn, ctx);
    }
    return rc;
}

const char *dr_etcdtool_version(void)
{
    static char v[32];
    if (v[0])
        return v;
    char out[4096];
    char *argv[] = {"etcd", "--version", NULL};
    snprintf(v, sizeof v, "unknown");
    if (run_capture(argv, out, sizeof out) == 0) {
        char *p = strstr(out, "etcd Version: ");
        if (p) {
            p += 14;
            size_t n = strcspn(p, "\n ");
            snprintf(v, sizeof v, "%.*s", (int)(n < sizeof v - 1 ? n : sizeof v - 1), p);
        }
    }
    return v;
}

/* The throw-away etcd listens on two unix sockets in a private (0700) dir of its own, so no other
 * local user can reach it (over TCP anyone on the host could read and write the restored keys:
 * the server has no authentication). etcd 3.4 takes a unix URL only as "unix://host:port" (a
 * numeric port) and makes the socket file "host:port" relative to its working directory, so it
 * is started in that dir (clients reach it at "unix:///<dir>/client.sock:0"). */
#define CLIENT_SOCK "client.sock:0"
#define PEER_SOCK "peer.sock:0"
#define SUN_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */

struct dr_etcd_proc {
    pid_t pid;
    char dir[4096]; /* the private dir of the sockets */
    char url[4200];
};

static int spawn_and_wait(const char *data_dir, const char *log_path, char *const argv[],
                          int64_t timeout_ms, dr_etcd_proc *p)
{
    posix_spawn_file_actions_t fa;
    child_env ce;
    posix_spawn_file_actions_init(&fa);
    /* in this order: the log path may be relative to our working directory */
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW,
                                     0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addchdir_np(&fa, p->dir);
    int rc = posix_spawnp(&p->pid, "etcd", &fa, NULL, argv, child_env_init(&ce, 0));
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return dr_error_set(DR_EUSAGE, "cannot start etcd (is etcd-server installed?): %s",
                            strerror(rc));
    int64_t deadline = dr_mono_ms() + timeout_ms;
    for (;;) {
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return dr_error_set(DR_EUNAVAILABLE, "the throw-away etcd on %s exited (see %s)",
                                data_dir, log_path);
        }
        dr_etcd *e = NULL;
        dr_etcd_opts o = {.endpoints = p->url, .timeout_ms = 1000};
        if (dr_etcd_open(&e, &o) == 0) {
            dr_etcd_close(e);
            return 0;
        }
        dr_error_clear();
        if (dr_mono_ms() > deadline)
            return dr_error_set(DR_ETIMEOUT,
                                "the throw-away etcd on %s did not answer within %lld "
                                "ms (see %s)",
                                data_dir, (long long)timeout_ms, log_path);
        dr_sleep_ms(50);
    }
}

int dr_etcdtool_start(const char *data_dir, const char *name, const char *log_path,
                      int64_t timeout_ms, dr_etcd_proc **out)
{
    int rc = 0;
    char abs_data[PATH_MAX], ops[32];
    dr_etcd_proc *p = calloc(1, sizeof *p);
    if (!p)
        return dr_error_set(DR_ENOMEM, "out of memory");
    /* etcd runs in the sockets' dir: it gets the data dir as an absolute path */
    if (!realpath(data_dir, abs_data)) {
        rc = dr_error_set(DR_EIO, "cannot resolve data dir '%s': %s", data_dir, strerror(errno));
        goto out;
    }
    if ((rc = dr_fs_mkdtemp("etcd", p->dir, sizeof p->dir)) < 0)
        goto out;
    if (strlen(p->dir) + 1 + strlen(CLIENT_SOCK) > SUN_PATH_MAX) {
        rc = dr_error_set(DR_EUSAGE,
                          "the throw-away etcd's socket path '%s/%s' is longer than %d bytes\n"
                          "HINT: set TMPDIR to a shorter directory",
                          p->dir, CLIENT_SOCK, SUN_PATH_MAX);
        goto out;
    }
    snprintf(p->url, sizeof p->url, "unix://%s/%s", p->dir, CLIENT_SOCK);
    snprintf(ops, sizeof ops, "%d", (int)DR_ETCDTOOL_MAX_TXN_OPS);
    char *argv[] = {"etcd",
                    "--data-dir",
                    abs_data,
                    "--name",
                    (char *)name,
                    "--listen-client-urls",
                    "unix://" CLIENT_SOCK,
                    "--advertise-client-urls",
                    "unix://" CLIENT_SOCK,
                    "--listen-peer-urls",
                    "unix://" PEER_SOCK,
                    "--max-txn-ops",
                    ops,
                    "--max-request-bytes",
                    "1073741824",
                    "--quota-backend-bytes",
                    "8589934592",
                    "--log-level",
                    "error",
                    NULL};
    rc = spawn_and_wait(data_dir, log_path, argv, timeout_ms, p);
out:
    if (rc < 0) {
        dr_etcdtool_stop(p);
        return rc;
    }
    *out = p;
    return 0;
}

const char *dr_etcdtool_url(const dr_etcd_proc *p)
{
    return p->url;
}

void dr_etcdtool_stop(dr_etcd_proc *p)
{
    if (!p)
        return;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        int64_t deadline = dr_mono_ms() + 10000;
        int status;
        while (waitpid(p->pid, &status, WNOHANG) == 0) {
            if (dr_mono_ms() > deadline) {
                kill(p->pid, SIGKILL);
                waitpid(p->pid, &status, 0);
                break;
            }
            dr_sleep_ms(20);
        }
    }
    if (p->dir[0])
        dr_fs_remove_tree(p->dir);
    free(p);
}

int dr_etcdtool_members(const char *ic, char names[][128], char peers[][1024], int max, int *n)
{
    const char *p = ic;
    *n = 0;
    while (*p) {
        const char *eq = strchr(p, '=');
        if (*n >= max || !eq || eq == p || (size_t)(eq - p) >= 128)
            return dr_error_set(DR_EUSAGE,
                                "--initial-cluster: cannot read member %d of '%s' (1 to %d members "
                                "name=URL[,URL])",
                                *n + 1, ic, max);
        memcpy(names[*n], p, (size_t)(eq - p));
        names[*n][eq - p] = 0;
        /* the next member starts after a ',' whose item holds a '=' */
        const char *end = eq + 1, *c = strchr(end, ',');
        while (c && !memchr(c + 1, '=', strcspn(c + 1, ",")))
            c = strchr(c + 1, ',');
        size_t len = c ? (size_t)(c - end) : strlen(end);
        if (len == 0 || len >= 1024)
            return dr_error_set(DR_EUSAGE, "--initial-cluster: bad peer URLs for '%s' in '%s'",
                                names[*n], ic);
        memcpy(peers[*n], end, len);
        peers[*n][len] = 0;
        (*n)++;
        p = c ? c + 1 : end + len;
    }
    if (*n == 0)
        return dr_error_set(DR_EUSAGE, "--initial-cluster is empty");
    return 0;
}
