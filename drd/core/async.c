/*
 * An asynchronous sink: hands filled buffers to a thread that writes them into the next sink, so
 * that producing the bytes (decrypting, decompressing) and consuming them (writing a file) run on
 * two cores. Two buffers: the caller fills one while the thread drains the other.
 * Must never lose or reorder bytes, and never swallow the next sink's error: it is returned by the
 * next write or by finish.
 */
#include "drd/core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct async_sink {
    dr_sink base;
    dr_sink *next;
    size_t cap;
    char *fill; /* the caller's buffer */
    size_t fill_len;
    char *full; /* handed to the thread (NULL: none pending) */
    size_t full_len;
    char *spare;
    int stop;
    int rc; /* the thread's first error */
    char msg[1024];
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
} async_sink;

static void *drain(void *arg)
{
    async_sink *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->full && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->full)
            break;
        char *buf = s->full;
        size_t len = s->full_len;
        pthread_mutex_unlock(&s->mu);
        int rc = s->rc ? 0 : dr_sink_write(s->next, buf, len);
        pthread_mutex_lock(&s->mu);
        if (rc < 0 && !s->rc) {
            s->rc = rc;
            snprintf(s->msg, sizeof s->msg, "%s", dr_error_msg()); /* thread-local message */
        }
        s->spare = buf;
        s->full = NULL;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Hands the fill buffer over once the thread has taken the previous one. */
static int hand_over(async_sink *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->full)
        pthread_cond_wait(&s->cv, &s->mu);
    int rc = s->rc;
    if (rc == 0) {
        s->full = s->fill;
        s->full_len = s->fill_len;
        s->fill = s->spare;
        s->spare = NULL;
        s->fill_len = 0;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc ? dr_error_set(rc, "%s", s->msg) : 0;
}

static int async_write(dr_sink *base, const void *data, size_t len)
{
    async_sink *s = (async_sink *)base;
    const char *p = data;
    while (len) {
        size_t k = s->cap - s->fill_len < len ? s->cap - s->fill_len : len;
        memcpy(s->fill + s->fill_len, p, k);
        s->fill_len += k;
        p += k;
        len -= k;
        if (s->fill_len == s->cap) {
            int rc = hand_over(s);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int wait_idle(async_sink *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->full)
        pthread_cond_wait(&s->cv, &s->mu);
    int rc = s->rc;
    pthread_mutex_unlock(&s->mu);
    return rc ? dr_error_set(rc, "%s", s->msg) : 0;
}

static int async_finish(dr_sink *base)
{
    async_sink *s = (async_sink *)base;
    int rc = 0;
    if (s->fill_len)
        rc = hand_over(s);
    if (rc == 0)
        rc = wait_idle(s);
    if (rc == 0)
        rc = dr_sink_finish(s->next);
    return rc;
}

static void async_free(dr_sink *base)
{
    async_sink *s = (async_sink *)base;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->fill);
    free(s->full);
    free(s->spare);
    free(s);
}

static const dr_sink_ops async_ops = {async_write, async_finish, async_free};

int dr_async_sink_new(dr_sink *next, size_t bufsize, dr_sink **out)
{
    async_sink *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &async_ops;
    s->next = next;
    s->cap = bufsize ? bufsize : 4u << 20;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->fill = malloc(s->cap);
    s->spare = malloc(s->cap);
    if (!s->fill || !s->spare || pthread_create(&s->th, NULL, drain, s) != 0) {
        async_free(&s->base);
        return dr_error_set(DR_ENOMEM, "cannot start a writer thread");
    }
    s->started = 1;
    *out = &s->base;
    return 0;
}
