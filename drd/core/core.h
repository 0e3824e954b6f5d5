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
 * The arguments may include dr_error_msg() itself (it is formatted before it is replaced). */
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
/* One line on stderr as is (no time or level): a command's own report lines, which go above a
 * progress line being rewritten on the terminal (dr_progress_report_start). */
void dr_log_line(const char *line);
#define dr_debug(...) dr_log(DR_LOG_DEBUG, __VA_ARGS__)
#define dr_info(...) dr_log(DR_LOG_INFO, __VA_ARGS__)
#define dr_warn(...) dr_log(DR_LOG_WARN, __VA_ARGS__)
#define dr_err(...) dr_log(DR_LOG_ERROR, __VA_ARGS__)

/* Time. Monotonic milliseconds for intervals; wall-clock milliseconds since the epoch. */
int64_t dr_mono_ms(void);
int64_t dr_mono_us(void);
int64_t dr_wall_ms(void);
void dr_sleep_ms(int64_t ms);
/* Wall-clock ms as UTC with milliseconds, "2026-12-02T03:15:02.123Z", into buf (32 bytes do). */
void dr_time_iso_ms(int64_t ms, char *buf, size_t cap);

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

/* Creates the temp file tmp for writing, exclusively and without following a symlink
 * (O_EXCL|O_NOFOLLOW); a file already there (a crashed run with our pid) is unlinked and the
 * create tried once more. Returns the descriptor, or DR_EIO. */
int dr_fs_create_temp(const char *tmp, unsigned mode);
/* Durable write: temp file in the same directory -> write -> fsync -> rename -> fsync dir.
 * A crash at any moment leaves either the old content or the new, never a mix. */
int dr_fs_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Read a whole (small) file; caller frees *out. Bounded by max bytes (DR_EIO when larger). */
int dr_fs_read_all(const char *path, size_t max, char **out, size_t *out_len);

/* Parse a non-negative decimal integer fully; returns 0 or DR_EUSAGE naming what. */
int dr_parse_i64(const char *s, const char *what, int64_t *out);
/* Parse a duration "250ms", "10s", "5m", "1h", or plain seconds; out in ms. */
int dr_parse_duration_ms(const char *s, const char *what, int64_t *out);
/* The inverse: ms as a config spells it, in the largest unit that holds it whole ("5s",
 * "250ms", "15m", "1h", "90s"), into buf (cap bytes). Returns buf. */
const char *dr_format_duration_ms(int64_t ms, char *buf, size_t cap);

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
/* dr_buf_escape into a fixed buffer: NUL-terminated, cut with "..." when cap is too small
 * (cap >= 4). Returns out. For names from a store in one-line messages. */
char *dr_escape(const void *s, size_t n, char *out, size_t cap);

/* ---- byte streams ----
 * Data moves through chains of filters (CONVENTIONS.md "Data paths"): a sink is pushed to, a
 * source is pulled from, and a filter wraps the next sink (or the previous source).
 * Rules every implementation keeps:
 *  - dr_sink_finish flushes, completes the stream and finishes the sink it wraps (a chain is
 *    finished from its head); what a sink writes becomes visible/complete only on finish.
 *  - dr_sink_free releases only this sink, never the one it wraps; freeing a sink that was not
 *    finished aborts it (a store upload is abandoned, a file is removed).
 *  - dr_source_free releases only this source. A source returns *n == 0 only at end of stream.
 */
typedef struct dr_sink dr_sink;
typedef struct dr_sink_ops {
    int (*write)(dr_sink *s, const void *data, size_t len);
    int (*finish)(dr_sink *s);
    void (*free)(dr_sink *s);
} dr_sink_ops;
struct dr_sink {
    const dr_sink_ops *ops;
};
int dr_sink_write(dr_sink *s, const void *data, size_t len);
int dr_sink_finish(dr_sink *s);
void dr_sink_free(dr_sink *s);

typedef struct dr_source dr_source;
typedef struct dr_source_ops {
    int (*read)(dr_source *s, void *buf, size_t cap, size_t *n);
    void (*free)(dr_source *s);
} dr_source_ops;
struct dr_source {
    const dr_source_ops *ops;
};
/* Reads up to cap bytes (at least 1 unless at end of stream). */
int dr_source_read(dr_source *s, void *buf, size_t cap, size_t *n);
/* Reads until cap bytes or end of stream; *n < cap only at end of stream. */
int dr_source_read_full(dr_source *s, void *buf, size_t cap, size_t *n);
/* Pumps src to the end into dst (does not finish dst); *bytes may be NULL. */
int dr_stream_copy(dr_source *src, dr_sink *dst, uint64_t *bytes);
void dr_source_free(dr_source *s);

/* A sink into a new local file: written to "<path>.tmp.<pid>" and, on finish, fsynced and
 * renamed over path (durable, as dr_fs_write_atomic); freed unfinished it removes the temp file.
 * flags: DR_FS_EXCLUSIVE: finish refuses (DR_EIO) when path already exists; DR_FS_SCRATCH: no
 * fsync (a file read once right after and deleted, whose loss in a crash costs nothing). */
#define DR_FS_EXCLUSIVE 1
#define DR_FS_SCRATCH 2
int dr_fs_sink_new(const char *path, unsigned mode, int flags, dr_sink **out);
/* A filter that writes into next from its own thread, through two buffers of bufsize bytes
 * (0: 4 MiB), so that producing and writing the bytes use two cores. Finishing it drains and
 * finishes next; an error of next comes back from a later write or from finish. */
int dr_async_sink_new(dr_sink *next, size_t bufsize, dr_sink **out);
/* A filter passing the first keep bytes on to next and dropping the rest (next is borrowed;
 * finishing it finishes next). */
int dr_head_sink_new(dr_sink *next, uint64_t keep, dr_sink **out);
/* A source reading a local file from offset off. DR_ENOTFOUND when missing. */
int dr_fs_source_new(const char *path, uint64_t off, dr_source **out);
/* A sink collecting into memory (at most max bytes, DR_EIO beyond); take the bytes with
 * dr_buf_sink_take before freeing. */
int dr_buf_sink_new(size_t max, dr_sink **out);
/* Hands over the collected bytes (caller frees *data; NUL-terminated for convenience). */
void dr_buf_sink_take(dr_sink *s, char **data, size_t *len);
/* A source over borrowed memory. */
int dr_mem_source_new(const void *data, size_t len, dr_source **out);

/* Creates dir and its parents (mode for the new ones). */
int dr_fs_mkdirs(const char *dir, unsigned mode);
/* Removes path and everything under it (only for directories drd made: scratch and partial
 * dirs); an absent path is fine. DR_EIO. */
int dr_fs_remove_tree(const char *path);

/* ---- secrets and private files ----
 * A secret file (keyring, S3 credentials file, TLS private key, PSK) must be a regular file that
 * no one but its owner may access (no group or other permission bits), owned by the effective
 * uid or by root (as OpenSSH does: root can change any file anyway). Anything else is refused,
 * never warned about: a secret others can read must be considered exposed, and one another user
 * owns can be swapped for theirs. what names the file in messages ("keyring", "etcd client
 * key"). Errors: DR_ENOTFOUND (missing), DR_EAUTH (mode or owner; names both and says how to fix
 * it), DR_EIO (not a regular file, unreadable). */
/* Checks an open file (fstat: the file checked is the file read). */
int dr_fs_check_secret_fd(int fd, const char *path, const char *what);
/* Opens path and checks it (for a file another library reads by name afterwards). */
int dr_fs_check_secret_file(const char *path, const char *what);
/* Reads a checked secret file whole (at most max bytes, DR_EIO beyond) into one allocation, with
 * no realloc leaving copies behind. *out is NUL-terminated; the caller wipes it (dr_secure_zero)
 * and frees it. */
int dr_fs_read_secret(const char *path, const char *what, size_t max, char **out, size_t *out_len);
/* Overwrites n bytes at p with zeros in a way the compiler cannot drop (explicit_bzero): for key
 * material outside drd/lib/crypto, which uses OPENSSL_cleanse. */
void dr_secure_zero(void *p, size_t n);
/* Checks that dir is a directory owned by the effective uid (or root) that group and others
 * cannot write to; what names it in messages. DR_EAUTH, DR_ENOTFOUND, DR_EIO. */
int dr_fs_check_private_dir(const char *dir, const char *what);
/* Creates a new private (0700) directory "$TMPDIR/drd-<name>-XXXXXX" (TMPDIR unset or empty:
 * /tmp; the directory is private whatever its parent) and writes its path to out (cap bytes).
 * DR_EIO. The caller removes it (dr_fs_remove_tree). */
int dr_fs_mkdtemp(const char *name, char *out, size_t cap);

/* ---- progress of long jobs ----
 * A job (snapshot save, restore, drill, volume push) counts what it has done into a dr_progress
 * from its own thread with atomic stores; anyone else (a reporter thread, the daemon's loop
 * serving /status) reads it at any time without a lock. A zeroed dr_progress is valid and idle.
 * Every function accepts p == NULL (a job run without anyone watching). */
typedef struct dr_progress {
    _Atomic uint64_t done;       /* bytes done */
    _Atomic uint64_t total;      /* bytes in all; 0: not known (yet) */
    _Atomic int64_t start_ms;    /* dr_mono_ms() at begin; 0: idle */
    _Atomic(const char *) phase; /* what the job does now: a string literal */
} dr_progress;
/* Starts (or restarts) counting: done 0, the clock from now. phase: a string literal. */
void dr_progress_begin(dr_progress *p, const char *phase, uint64_t total);
void dr_progress_phase(dr_progress *p, const char *phase);
void dr_progress_set_total(dr_progress *p, uint64_t total);
void dr_progress_add(dr_progress *p, uint64_t n);
/* Idle again (the job finished): readers see nothing. */
void dr_progress_end(dr_progress *p);

/* One consistent-enough reading: rate is the average since begin, eta_s -1 when unknown (no
 * total, or nothing done yet). */
typedef struct dr_progress_view {
    const char *phase;
    uint64_t done, total;
    int64_t elapsed_ms;
    double rate; /* bytes per second */
    int64_t eta_s;
} dr_progress_view;
/* 1 and *v when p is running, 0 when idle (or NULL). now_ms: dr_mono_ms(). */
int dr_progress_read(const dr_progress *p, int64_t now_ms, dr_progress_view *v);
/* "streaming snapshot: 12.0 MiB of 40.0 MiB (30%), 4.1 MiB/s, ETA 7s" into buf. */
void dr_progress_format(const dr_progress_view *v, char *buf, size_t cap);
/* {"phase":..,"done_bytes":..,"total_bytes":..,"rate_bytes_per_second":..,"eta_seconds":..,
 * "elapsed_seconds":..} (total_bytes and eta_seconds null when unknown). */
int dr_progress_json(const dr_progress_view *v, dr_buf *b);

/* Shows a one-shot command's progress on stderr from a thread of its own (so that a stall shows
 * as a falling rate): DR_PROGRESS_AUTO: on a terminal a line rewritten every second, else a log
 * line every log_every_ms (0: 5 s); DR_PROGRESS_LINE: the rewritten line even when stderr is no
 * terminal; DR_PROGRESS_OFF: nothing (*out NULL). what prefixes the lines ("snapshot save").
 * stop prints the last state (the line is ended) and joins the thread; accepts NULL. */
typedef enum { DR_PROGRESS_AUTO = 0, DR_PROGRESS_LINE, DR_PROGRESS_OFF } dr_progress_mode;
typedef struct dr_progress_reporter dr_progress_reporter;
int dr_progress_report_start(dr_progress *p, const char *what, dr_progress_mode mode,
                             int64_t log_every_ms, dr_progress_reporter **out);
void dr_progress_report_stop(dr_progress_reporter *r);

/* Appends n bytes for a terminal or log: printable ASCII as is, a backslash as "\\", every other
 * byte (control characters, escape sequences, non-ASCII) as "\xNN". For etcd keys, which are
 * arbitrary bytes. */
int dr_buf_escape(dr_buf *b, const void *p, size_t n);

#endif
