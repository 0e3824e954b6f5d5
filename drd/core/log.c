/*
 * One-line logging to stderr. Must never log secrets: callers pass no credentials in messages.
 */
#include "drd/core/core.h"
#include "drd/core/core_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static dr_log_level cur_level = DR_LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *const names[] = {"debug", "info", "warn", "error"};
/* A progress line being rewritten on the terminal (progress.c): a log line goes above it. */
static char live[512];
static int live_on;

void dr_log_set_level(dr_log_level lvl)
{
    cur_level = lvl;
}
dr_log_level dr_log_get_level(void)
{
    return cur_level;
}

int dr_log_parse_level(const char *s, dr_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (dr_log_level)i;
            return 0;
        }
    }
    return dr_error_set(DR_EUSAGE, "unknown log level '%s' (debug, info, warn, error)", s);
}

void dr_log(dr_log_level lvl, const char *fmt, ...)
{
    if (lvl < cur_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000L,
                  names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    dr_log_line(line);
}

void dr_log_line(const char *line)
{
    pthread_mutex_lock(&log_mu);
    if (live_on) /* above the progress line, which is drawn again below */
        fprintf(stderr, "\r\033[K%s\n%s", line, live);
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&log_mu);
}

void core_log_live(const char *line, int final)
{
    pthread_mutex_lock(&log_mu);
    snprintf(live, sizeof live, "%s", line ? line : "");
    fprintf(stderr, "\r\033[K%s%s", live, final && line ? "\n" : "");
    fflush(stderr);
    live_on = !final;
    pthread_mutex_unlock(&log_mu);
}
