/*
 * Volume replication, destination side: the chunk sums of a delta computed ahead. A BATCH
 * answer names every file whose delta the source is about to ask for, in the order it will ask;
 * a thread of the session hashes their chunks while the current file's delta is made and
 * patched, so that the steps overlap across files as rsync's generator, sender and receiver do.
 * Memory stays bounded: at most AHEAD sum lists wait, each at most VOL_SUMS_MAX sums.
 * The thread copies the bytes it hashes into a new temp file of the directory as it reads them,
 * so that the result of the delta has its equal chunks without a second read of the copy; a
 * file over AHEAD_COPY_MAX is left to the caller (the disk the temp files ahead take is bounded).
 * Must never hand out the sums of another file than the basis the patch reads: the thread
 * records the inode, size and time it hashed, and a file that differs is hashed again in line
 * (its temp file removed). Never leaves a temp file it made that no caller took.
 */
#include "replicate/volume/vol_int.h"

#include "drd/lib/crypto/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { AHEAD = 2 };
/* A larger file is summed (and copied) in line: the temp files made ahead take at most
 * AHEAD * AHEAD_COPY_MAX bytes of disk besides the current file's. */
#define AHEAD_COPY_MAX (256ull << 20)

typedef struct slot {
    char *name;
    uint64_t src_size;
    dr_buf sums;
    struct stat st;
    char tmp[64]; /* the temp file holding the bytes hashed ("": none) */
    int tfd;
    int state; /* 0 waiting, 1 ready, 2 failed (the caller hashes it in line) */
} slot;

struct vol_sigahead {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int dirfd;
    uint8_t key[VOL_SUM_KEY];
    slot *s;
    size_t n, next; /* next: the slot the session takes next */
    int stop;
};

/* Drops a slot's temp file (when the caller did not take it). */
static void drop_tmp(struct vol_sigahead *a, slot *sl)
{
    if (sl->tmp[0])
        unlinkat(a->dirfd, sl->tmp, 0);
    if (sl->tfd >= 0)
        close(sl->tfd);
    sl->tmp[0] = 0;
    sl->tfd = -1;
}

static int sign(struct vol_sigahead *a, slot *sl, dr_gmac *g, uint8_t *buf)
{
    int fd = openat(a->dirfd, sl->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint64_t clen = vol_sum_len(sl->src_size);
    int rc = fstat(fd, &sl->st) == 0 && S_ISREG(sl->st.st_mode) &&
                     (uint64_t)sl->st.st_size <= AHEAD_COPY_MAX
                 ? 0
                 : -1;
    for (int i = 0; rc == 0 && sl->tfd < 0 && i < 100; i++) {
        vol_tmp_name(sl->tmp, sizeof sl->tmp);
        sl->tfd =
            openat(a->dirfd, sl->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (sl->tfd < 0)
            sl->tmp[0] = 0;
        if (sl->tfd < 0 && errno != EEXIST)
            rc = -1;
    }
    if (rc == 0 && sl->tfd >= 0)
        rc = vol_sums_compute(fd, (uint64_t)sl->st.st_size, clen, vol_sum_count(sl->src_size, clen),
                              g, buf, sl->tfd, &sl->sums);
    else
        rc = -1;
    close(fd);
    return rc;
}

static void *run(void *arg)
{
    struct vol_sigahead *a = arg;
    uint8_t *buf = malloc(VOL_CHUNK);
    dr_gmac *g = NULL;
    if (dr_gmac_new(a->key, &g) < 0)
        g = NULL;
    for (size_t i = 0; i < a->n; i++) {
        pthread_mutex_lock(&a->mu);
        while (!a->stop && i >= a->next + AHEAD)
            pthread_cond_wait(&a->cv, &a->mu);
        int stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        if (stop)
            break;
        int rc = buf && g ? sign(a, &a->s[i], g, buf) : -1;
        if (rc != 0)
            drop_tmp(a, &a->s[i]);
        pthread_mutex_lock(&a->mu);
        a->s[i].state = rc == 0 ? 1 : 2;
        if (rc != 0)
            dr_buf_free(&a->s[i].sums);
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    free(buf);
    dr_gmac_free(g);
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
        drop_tmp(a, &a->s[i]);
        free(a->s[i].name);
        dr_buf_free(&a->s[i].sums);
    }
    free(a->s);
    close(a->dirfd);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

int vol_sigahead_start(vol_sigahead **out, int dirfd, const uint8_t key[VOL_SUM_KEY],
                       char *const *names, const uint64_t *sizes, size_t n)
{
    *out = NULL;
    struct vol_sigahead *a = calloc(1, sizeof *a);
    if (!a)
        return dr_error_set(DR_ENOMEM, "out of memory");
    memcpy(a->key, key, VOL_SUM_KEY);
    a->s = calloc(n, sizeof *a->s);
    a->n = n;
    a->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    int ok = a->s && a->dirfd >= 0;
    for (size_t i = 0; ok && i < n; i++) {
        a->s[i].src_size = sizes[i];
        a->s[i].tfd = -1;
        ok = (a->s[i].name = strdup(names[i])) != NULL;
    }
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
        return 0; /* no thread: the sums are computed in line */
    }
    *out = a;
    return 0;
}

int vol_sigahead_take(vol_sigahead *a, const char *name, int basis_fd, uint64_t src_size,
                      dr_buf *sums, int *tfd, char *tmp, size_t cap)
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
        dr_buf_free(&a->s[a->next].sums);
        drop_tmp(a, &a->s[a->next]);
        a->next++;
        pthread_cond_broadcast(&a->cv);
    }
    slot *sl = &a->s[a->next];
    while (sl->state == 0)
        pthread_cond_wait(&a->cv, &a->mu);
    int ok = sl->state == 1 && sl->src_size == src_size && sl->st.st_dev == st.st_dev &&
             sl->st.st_ino == st.st_ino && sl->st.st_size == st.st_size &&
             sl->st.st_mtim.tv_sec == st.st_mtim.tv_sec &&
             sl->st.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
             sl->st.st_ctim.tv_sec == st.st_ctim.tv_sec &&
             sl->st.st_ctim.tv_nsec == st.st_ctim.tv_nsec && strlen(sl->tmp) < cap;
    if (ok) {
        *sums = sl->sums;
        memset(&sl->sums, 0, sizeof sl->sums);
        *tfd = sl->tfd;
        memcpy(tmp, sl->tmp, strlen(sl->tmp) + 1);
        sl->tfd = -1;
        sl->tmp[0] = 0;
    }
    dr_buf_free(&sl->sums);
    drop_tmp(a, sl);
    a->next++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return ok;
}
