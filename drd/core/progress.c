/*
 * Progress of long jobs: a worker counts bytes into atomics, readers (a reporter thread for a
 * one-shot command, the daemon's loop for /status) compute rate and ETA from them at any time.
 *
 * reporter: started --(every second on a terminal, every log_every_ms otherwise)--> prints the
 * state --(stop)--> prints the last state, ends the terminal line, joined.
 * Must never block or slow the worker (it only does relaxed atomic adds) and never print while
 * the job is idle.
 */
#include "drd/core/core.h"
#include "drd/core/core_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void dr_progress_begin(dr_progress *p, const char *phase, uint64_t total)
{
    if (!p)
        return;
    atomic_store(&p->done, 0);
    atomic_store(&p->total, total);
    atomic_store(&p->phase, phase);
    int64_t now = dr_mono_ms();
    atomic_store(&p->start_ms, now > 0 ? now : 1);
}

void dr_progress_phase(dr_progress *p, const char *phase)
{
    if (p)
        atomic_store(&p->phase, phase);
}

void dr_progress_set_total(dr_progress *p, uint64_t total)
{
    if (p)
        atomic_store(&p->total, total);
}

void dr_progress_add(dr_progress *p, uint64_t n)
{
    if (p)
        atomic_fetch_add_explicit(&p->done, n, memory_order_relaxed);
}

void dr_progress_end(dr_progress *p)
{
    if (p)
        atomic_store(&p->start_ms, 0);
}

int dr_progress_read(const dr_progress *p, int64_t now_ms, dr_progress_view *v)
{
    memset(v, 0, sizeof *v);
    v->eta_s = -1;
    int64_t start = p ? atomic_load(&((dr_progress *)p)->start_ms) : 0;
    if (!start)
        return 0;
    dr_progress *q = (dr_progress *)p; /* atomic loads take non-const pointers */
    v->phase = atomic_load(&q->phase);
    v->done = atomic_load(&q->done);
    v->total = atomic_load(&q->total);
    v->elapsed_ms = now_ms > start ? now_ms - start : 0;
    if (v->elapsed_ms > 0)
        v->rate = (double)v->done * 1000.0 / (double)v->elapsed_ms;
    if (v->total && v->done <= v->total && v->rate > 0)
        v->eta_s = (int64_t)((double)(v->total - v->done) / v->rate + 0.5);
    return 1;
}

/* "12.0 MiB", "512 B" */
static void bytes(double b, char *out, size_t cap)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

/* "7s", "3m05s", "2h10m" */
static void duration(int64_t s, char *out, size_t cap)
{
    if (s < 60)
        snprintf(out, cap, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(out, cap, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else
        snprintf(out, cap, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
}

void dr_progress_format(const dr_progress_view *v, char *buf, size_t cap)
{
    char done[32], total[32], rate[32], eta[32];
    bytes((double)v->done, done, sizeof done);
    bytes(v->rate, rate, sizeof rate);
    if (v->total) {
        bytes((double)v->total, total, sizeof total);
        int pct = (int)(v->done >= v->total ? 100 : (double)v->done * 100.0 / (double)v->total);
        if (v->eta_s >= 0)
            duration(v->eta_s, eta, sizeof eta);
        snprintf(buf, cap, "%s: %s of %s (%d%%), %s/s, ETA %s", v->phase ? v->phase : "working",
                 done, total, pct, rate, v->eta_s >= 0 ? eta : "?");
    } else {
        snprintf(buf, cap, "%s: %s, %s/s", v->phase ? v->phase : "working", done, rate);
    }
}

int dr_progress_json(const dr_progress_view *v, dr_buf *b)
{
    int rc = dr_buf_printf(b, "{\"phase\":");
    const char *ph = v->phase ? v->phase : "";
    rc |= dr_buf_json_str(b, ph, strlen(ph));
    rc |= dr_buf_printf(b, ",\"done_bytes\":%" PRIu64 ",\"total_bytes\":", v->done);
    rc |= v->total ? dr_buf_printf(b, "%" PRIu64, v->total) : dr_buf_printf(b, "null");
    rc |= dr_buf_printf(b, ",\"rate_bytes_per_second\":%.0f,\"eta_seconds\":", v->rate);
    rc |= v->eta_s >= 0 ? dr_buf_printf(b, "%" PRId64, v->eta_s) : dr_buf_printf(b, "null");
    rc |= dr_buf_printf(b, ",\"elapsed_seconds\":%.1f}", (double)v->elapsed_ms / 1000.0);
    return rc ? dr_error_set(DR_ENOMEM, "out of memory") : 0;
}

struct dr_progress_reporter {
    dr_progress *p;
    char what[64];
    int line;         /* rewrite one terminal line; else log lines */
    int64_t every_ms; /* between prints */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

static void show(dr_progress_reporter *r, int final)
{
    dr_progress_view v;
    char text[400], line[480];
    if (!dr_progress_read(r->p, dr_mono_ms(), &v)) {
        if (final && r->line)
            core_log_live(NULL, 1);
        return;
    }
    dr_progress_format(&v, text, sizeof text);
    if (r->line) {
        snprintf(line, sizeof line, "%s %s", r->what, text);
        core_log_live(line, final);
    } else if (!final) {
        dr_info("%s: %s", r->what, text);
    }
}

static void *report_main(void *arg)
{
    dr_progress_reporter *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + r->every_ms % 1000 * 1000000;
        ts.tv_sec += (time_t)(r->every_ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0 && !r->stop) {
            pthread_mutex_unlock(&r->mu);
            show(r, 0);
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int dr_progress_report_start(dr_progress *p, const char *what, dr_progress_mode mode,
                             int64_t log_every_ms, dr_progress_reporter **out)
{
    *out = NULL;
    if (mode == DR_PROGRESS_OFF)
        return 0;
    dr_progress_reporter *r = calloc(1, sizeof *r);
    if (!r)
        return dr_error_set(DR_ENOMEM, "out of memory");
    r->p = p;
    snprintf(r->what, sizeof r->what, "%s", what);
    r->line = mode == DR_PROGRESS_LINE || isatty(2);
    r->every_ms = r->line ? 1000 : log_every_ms > 0 ? log_every_ms : 5000;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&r->thread, NULL, report_main, r) != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return dr_error_set(DR_ENOMEM, "cannot start a thread");
    }
    *out = r;
    return 0;
}

void dr_progress_report_stop(dr_progress_reporter *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    show(r, 1);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
