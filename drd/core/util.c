/*
 * Time, backoff, number and duration parsing, growable buffers.
 */
#include "drd/core/core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t dr_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t dr_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dr_time_iso_ms(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[32];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", s, (int)(ms % 1000));
}

void dr_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void dr_backoff_init(dr_backoff *b, int64_t base_ms, int64_t cap_ms)
{
    b->base_ms = base_ms;
    b->cap_ms = cap_ms;
    b->attempt = 0;
    b->seed = (uint64_t)dr_wall_ms() ^ (uint64_t)(uintptr_t)b;
}

int64_t dr_backoff_next(dr_backoff *b)
{
    int64_t lim = b->base_ms;
    for (int i = 0; i < b->attempt && lim < b->cap_ms; i++)
        lim *= 2;
    if (lim > b->cap_ms)
        lim = b->cap_ms;
    if (b->attempt < 62)
        b->attempt++;
    /* xorshift64* for jitter: no need for cryptographic quality */
    b->seed ^= b->seed >> 12;
    b->seed ^= b->seed << 25;
    b->seed ^= b->seed >> 27;
    uint64_t r = b->seed * 2685821657736338717ULL;
    /* half fixed, half jitter: never zero so a tight loop cannot spin */
    return lim / 2 + (int64_t)(r % (uint64_t)(lim / 2 + 1));
}

void dr_backoff_reset(dr_backoff *b)
{
    b->attempt = 0;
}

int dr_parse_i64(const char *s, const char *what, int64_t *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-' || *s == '+')
        return dr_error_set(DR_EUSAGE, "%s: expected a non-negative integer, got '%s'", what,
                            s ? s : "");
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return dr_error_set(DR_EUSAGE, "%s: expected a non-negative integer, got '%s'", what, s);
    *out = v;
    return 0;
}

int dr_parse_duration_ms(const char *s, const char *what, int64_t *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-')
        return dr_error_set(DR_EUSAGE, "%s: expected a duration like 10s, got '%s'", what,
                            s ? s : "");
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s)
        return dr_error_set(DR_EUSAGE, "%s: expected a duration like 10s, got '%s'", what, s);
    double mult;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return dr_error_set(DR_EUSAGE, "%s: unknown duration unit in '%s' (ms, s, m, h)", what, s);
    double ms = v * mult;
    if (!(ms >= 0 && ms <= 1e15)) /* NaN, inf and 30000 years are not durations (fuzz_config) */
        return dr_error_set(DR_EUSAGE, "%s: duration '%s' is out of range", what, s);
    *out = (int64_t)ms;
    return 0;
}

const char *dr_format_duration_ms(int64_t ms, char *buf, size_t cap)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms > 0 && ms % units[i].ms == 0) {
            snprintf(buf, cap, "%" PRId64 "%s", ms / units[i].ms, units[i].unit);
            return buf;
        }
    snprintf(buf, cap, "%" PRId64 "ms", ms);
    return buf;
}

static int buf_reserve(dr_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1)
        ncap *= 2;
    char *p = realloc(b->data, ncap);
    if (!p)
        return dr_error_set(DR_ENOMEM, "out of memory growing a buffer to %zu bytes", ncap);
    b->data = p;
    b->cap = ncap;
    return 0;
}

int dr_buf_append(dr_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int dr_buf_printf(dr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return dr_error_set(DR_EGENERIC, "bad format");
    int rc = buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int dr_buf_json_str(dr_buf *b, const char *s, size_t n)
{
    int rc = dr_buf_append(b, "\"", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            rc = dr_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            rc = dr_buf_printf(b, "\\u%04x", c);
        else
            rc = dr_buf_append(b, &s[i], 1);
    }
    if (rc == 0)
        rc = dr_buf_append(b, "\"", 1);
    return rc;
}

char *dr_escape(const void *s, size_t n, char *out, size_t cap)
{
    dr_buf b = {0};
    size_t len = 0;
    if (dr_buf_escape(&b, s, n) == 0 && b.data) {
        if (b.len < cap) {
            len = b.len;
            memcpy(out, b.data, len);
        } else { /* cut, and say so */
            len = cap - 1;
            memcpy(out, b.data, len - 3);
            memcpy(out + len - 3, "...", 3);
        }
    }
    out[len] = 0;
    dr_buf_free(&b);
    return out;
}

void dr_buf_free(dr_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
