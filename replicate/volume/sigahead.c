/*
 * Volume replication, destination side: signatures computed ahead. A BATCH answer names every
 * file whose delta the source is about to ask for, in the order it will ask; a thread of the
 * session computes their signatures while the current file's delta is made and patched, so that
 * the three steps overlap across files as rsync's generator, sender and receiver do.
 * Memory stays bounded: at most AHEAD signatures wait, each at most DR_DELTA_MAX_SIG_BYTES.
 * Must never hand out a signature of another file than the basis the patch reads: the thread
 * records the inode, size and time it hashed, and a file that differs is hashed again in line.
 */
#include "replicate/volume/vol_int.h"

#include "drd/lib/delta/delta.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { AHEAD = 2 };

typedef struct slot {
    char *name;
    dr_buf sig;
    struct stat st;
    int state; /* 0 waiting, 1 ready, 2 failed (the caller hashes it in line) */
} slot;

struct vol_sigahead {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int dirfd;
    slot *s;
    size_t n, next; /* next: the slot the session takes next */
    int stop;
};

typedef struct buf_sink {
    dr_sink base;
    dr_buf *b;
} buf_sink;

static int buf_write(dr_sink *sk, const void *data, size_t len)
{
    dr_buf *b = ((buf_sink *)sk)->b;
    if (b->len + len > DR_DELTA_MAX_SIG_BYTES)
        return dr_error_set(DR_EGENERIC, "signature too large");
    return dr_buf_append(b, data, len);
}

static int buf_finish(dr_sink *sk)
{
    (void)sk;
    return 0;
}

static void buf_free(dr_sink *sk)
{
    (void)sk;
}

static const dr_sink_ops buf_ops = {buf_write, buf_finish, buf_free};

static int sign(struct vol_sigahead *a, slot *sl)
{
    int fd = openat(a->dirfd, sl->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    buf_sink bs = {.base = {&buf_ops}, .b = &sl->sig};
    dr_delta_job *job = NULL;
    int rc = fstat(fd, &sl->st) == 0 && S_ISREG(sl->st.st_mode) ? 0 : -1;
    if (rc == 0)
        rc = dr_delta_sig_job_new((uint64_t)sl->st.st_size, &job);
    if (rc == 0)
        rc = dr_delta_job_feed_fd(job, fd, &bs.base, NULL);
    if (rc == 0)
        rc = dr_delta_job_finish(job, &bs.base);
    dr_delta_job_free(job);
    close(fd);
    return rc;
}

static void *run(void *arg)
{
    struct vol_sigahead *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        pthread_mutex_lock(&a->mu);
        while (!a->stop && i >= a->next + AHEAD)
            pthread_cond_wait(&a->cv, &a->mu);
        int stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        if (stop)
            break;
        int rc = sign(a, &a->s[i]);
        pthread_mutex_lock(&a->mu);
        a->s[i].state = rc == 0 ? 1 : 2;
        if (rc != 0)
            dr_buf_free(&a->s[i].sig);
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    return NULL;
}

void vol_sigahead_stop(vol_sigahead *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    for (size_t i = 0; i < a->n; i++) {
        free(a->s[i].name);
        dr_buf_free(&a->s[i].sig);
    }
    free(a->s);
    close(a->dirfd);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

int vol_sigahead_start(vol_sigahead **out, int dirfd, char *const *names, size_t n)
{
    *out = NULL;
    struct vol_sigahead *a = calloc(1, sizeof *a);
    if (!a)
        return dr_error_set(DR_ENOMEM, "out of memory");
    a->s = calloc(n, sizeof *a->s);
    a->n = n;
    a->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    int ok = a->s && a->dirfd >= 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = (a->s[i].name = strdup(names[i])) != NULL;
    if (!ok) {
        for (size_t i = 0; a->s && i < n; i++)
            free(a->s[i].name);
        free(a->s);
        if (a->dirfd >= 0)
            close(a->dirfd);
        free(a);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->th, NULL, run, a) != 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        for (size_t i = 0; i < n; i++)
            free(a->s[i].name);
        free(a->s);
        close(a->dirfd);
        free(a);
        return 0; /* no thread: every signature is computed in line */
    }
    *out = a;
    return 0;
}

int vol_sigahead_take(vol_sigahead *a, const char *name, int basis_fd, dr_buf *sig)
{
    struct stat st;
    if (!a || fstat(basis_fd, &st) != 0)
        return 0;
    pthread_mutex_lock(&a->mu);
    size_t j = a->next;
    while (j < a->n && strcmp(a->s[j].name, name) != 0)
        j++;
    if (j == a->n) {
        pthread_mutex_unlock(&a->mu);
        return 0;
    }
    while (a->next < j) { /* files the destination no longer wants by delta */
        while (a->s[a->next].state == 0)
            pthread_cond_wait(&a->cv, &a->mu);
        dr_buf_free(&a->s[a->next].sig);
        a->next++;
        pthread_cond_broadcast(&a->cv);
    }
    slot *sl = &a->s[a->next];
    while (sl->state == 0)
        pthread_cond_wait(&a->cv, &a->mu);
    int ok = sl->state == 1 && sl->st.st_dev == st.st_dev && sl->st.st_ino == st.st_ino &&
             sl->st.st_size == st.st_size && sl->st.st_mtim.tv_sec == st.st_mtim.tv_sec &&
             sl->st.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
             sl->st.st_ctim.tv_sec == st.st_ctim.tv_sec &&
             sl->st.st_ctim.tv_nsec == st.st_ctim.tv_nsec;
    if (ok) {
        *sig = sl->sig;
        memset(&sl->sig, 0, sizeof sl->sig);
    }
    dr_buf_free(&sl->sig);
    a->next++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return ok;
}
