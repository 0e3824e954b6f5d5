/*
 * drd core: errors, logging, time and backoff, durable file writes.
 *
 * Everything here is dependency-free (libc + pthreads). It must never include a third-party
 * library's header: wrappers under drd/lib translate their library's errors into DR_E* codes.
 *
 * Errors: functions return 0 or a negative DR_E* code and set a thread-local message with
 * dr_error_set(). A message set at a lower level is never overwritten by a caller (use
 * dr_error_wrap to add context in front of it).
 */
#ifndef DRD_CORE_H
#define DRD_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum {
#define X(name, num, desc) name = -(num),
#include "drd/core/errors.def"
#undef X
};

#define DR_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Set the thread's error message; returns code (negative) so callers can `return dr_error_set(..)`.
 */
int dr_error_set(int code, const char *fmt, ...) DR_PRINTF(2, 3);
/* Prefix the current message with context ("ctx: old message"); returns code. */
int dr_error_wrap(int code, const char *fmt, ...) DR_PRINTF(2, 3);
/* The thread's last message ("" if none). Borrowed; valid until the next dr_error_* call. */
const char *dr_error_msg(void);
/* The code last set on this thread (0 if none). */
int dr_error_code(void);
void dr_error_clear(void);
/* Catalog name of a code ("DR_ECOMPACTED") and its description; "unknown" for other values. */
const char *dr_error_name(int code);
const char *dr_error_desc(int code);
/* Exit status for a code: its catalog number (0 for 0). */
int dr_error_exit_status(int code);

/* Logging: one line per event to stderr, "2026-01-01T00:00:00.000Z level message". */
typedef enum { DR_LOG_DEBUG = 0, DR_LOG_INFO, DR_LOG_WARN, DR_LOG_ERROR } dr_log_level;
void dr_log_set_level(dr_log_level lvl);
dr_log_level dr_log_get_level(void);
/* Parse "debug|info|warn|error"; returns 0 or DR_EUSAGE. */
int dr_log_parse_level(const char *s, dr_log_level *out);
void dr_log(dr_log_level lvl, const char *fmt, ...) DR_PRINTF(2, 3);
#define dr_debug(...) dr_log(DR_LOG_DEBUG, __VA_ARGS__)
#define dr_info(...) dr_log(DR_LOG_INFO, __VA_ARGS__)
#define dr_warn(...) dr_log(DR_LOG_WARN, __VA_ARGS__)
#define dr_err(...) dr_log(DR_LOG_ERROR, __VA_ARGS__)

/* Time. Monotonic milliseconds for intervals; wall-clock milliseconds since the epoch. */
int64_t dr_mono_ms(void);
int64_t dr_wall_ms(void);
void dr_sleep_ms(int64_t ms);

/* Exponential backoff with full jitter: base, cap in ms. */
typedef struct dr_backoff {
    int64_t base_ms;
    int64_t cap_ms;
    int attempt;
    uint64_t seed;
} dr_backoff;
void dr_backoff_init(dr_backoff *b, int64_t base_ms, int64_t cap_ms);
/* Next delay in ms (in [0, min(cap, base*2^attempt)]), advancing the attempt counter. */
int64_t dr_backoff_next(dr_backoff *b);
void dr_backoff_reset(dr_backoff *b);

/* Durable write: temp file in the same directory -> write -> fsync -> rename -> fsync dir.
 * A crash at any moment leaves either the old content or the new, never a mix. */
int dr_fs_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Read a whole (small) file; caller frees *out. Bounded by max bytes (DR_EIO when larger). */
int dr_fs_read_all(const char *path, size_t max, char **out, size_t *out_len);

/* Parse a non-negative decimal integer fully; returns 0 or DR_EUSAGE naming what. */
int dr_parse_i64(const char *s, const char *what, int64_t *out);
/* Parse a duration "250ms", "10s", "5m", "1h", or plain seconds; out in ms. */
int dr_parse_duration_ms(const char *s, const char *what, int64_t *out);

/* Growable byte buffer. */
typedef struct dr_buf {
    char *data;
    size_t len;
    size_t cap;
} dr_buf;
int dr_buf_append(dr_buf *b, const void *p, size_t n);
int dr_buf_printf(dr_buf *b, const char *fmt, ...) DR_PRINTF(2, 3);
void dr_buf_free(dr_buf *b);
/* Append s as a JSON string literal (with quotes and escapes). */
int dr_buf_json_str(dr_buf *b, const char *s, size_t n);

#endif
