/*
 * Internals of volume replication shared by push (source), serve (destination) and the copy
 * store: the wire messages and their decoders, path checks, and small fs helpers.
 *
 * One sync is one TLS connection, lock-step (the source asks, the destination answers):
 *
 *   source                                   destination
 *   HELLO version flags name         ->
 *                                    <-      HELLO_OK flags | ERROR text
 *   BATCH of file entries                ->
 *                                    <-      BATCH_DONE action|NEED per entry
 *   per entry, depth first, each directory's children right after it, sorted by name:
 *   ENTRY kind meta path [target] [sha]  ->
 *                                    <-      DONE action          (nothing to send)
 *                                    <-      WANT_WHOLE           -> DATA* FILE_END  <- DONE
 *                                    <-      WANT_DELTA key       -> SUMS* SUMS_END
 *                                    <-      RUNS* SIG* SIG_END   -> DELTA* FILE_END <- DONE
 *                                               (or, when the patched bytes' sha256 is not the
 *                                               source's: <- WANT_WHOLE -> DATA* FILE_END <- DONE)
 *   DIR_END path                     ->
 *                                    <-      DELETED name* DIR_DONE
 *   COMPLETE literal matched         ->
 *                                    <-      PUBLISHED copy-name
 *   either side may send ERROR (an error number, then text) instead of its next message, and
 *   closes.
 *
 * A delta (protocol 2): WANT_DELTA carries a 16-byte key, drawn at random by the destination for
 * the session. The source cuts its file into chunks of vol_sum_len(size) bytes and sends the GMAC
 * of each under that key (SUMS: VOL_SUM_BYTES a chunk, at most VOL_SUMS_FRAME a frame). The
 * destination does the same over its copy; the chunks whose sums differ (or lengths) form runs
 * (RUNS: first chunk and count, u32 each, in order, at most VOL_RUNS_FRAME a frame). Only the runs
 * go through librsync: the destination signs its bytes of the runs, concatenated (a run's bytes
 * are its chunks' range; the last chunk's run reaches to the end of the destination's file), the
 * source sends the delta of its bytes of the runs, concatenated, and FILE_END with their sha256.
 * The destination writes its copy's bytes into the result as it reads them to sum them, patches
 * the runs over them (each run's range zeroed first), and checks the patched bytes' sha256. Every
 * byte of the result is thus checked against the source's: an equal chunk by its GMAC under a key
 * that no one else knows (a universal hash: content written without knowledge of the key collides
 * with probability below 2^-100), the patched bytes by sha256; and an unchanged chunk costs one
 * GMAC on each side, never a librsync hash.
 *
 * An ENTRY's flags byte: 1 a sha256 follows (--checksum), 2 the file is sparse (fewer allocated
 * bytes than half its size): it goes whole, as its data extents, since a delta would hash every
 * byte of its holes on both sides.
 *
 * Every integer is big-endian. Strings are a 2-byte length and bytes (no NUL).
 */
#ifndef DRD_REPLICATE_VOLUME_INT_H
#define DRD_REPLICATE_VOLUME_INT_H

#include "drd/core/core.h"

#include <stdint.h>
#include <sys/stat.h>

#define VOL_PROTO_VERSION 2
#define VOL_PATH_MAX 4095
#define VOL_NAME_MAX 255
#define VOL_CHUNK (256 * 1024) /* raw bytes per DATA / DELTA frame */

enum vol_msg {
    M_HELLO = 'H',
    M_HELLO_OK = 'h',
    M_ERROR = 'E',
    M_ENTRY = 'N',
    M_DONE = 'u',
    M_WANT_WHOLE = 'w',
    M_WANT_DELTA = 'd',
    M_DATA = 'D',
    M_SIG = 'S',
    M_SIG_END = 'Z',
    M_DELTA = 'X',
    M_FILE_END = 'e',
    M_DIR_END = 'Q',
    M_DELETED = 'x',
    M_DIR_DONE = 'q',
    M_COMPLETE = 'C',
    M_PUBLISHED = 'c',
    M_BATCH = 'B',
    M_BATCH_DONE = 'b',
    M_SUMS = 'K',
    M_SUMS_END = 'k',
    M_RUNS = 'R',
};

enum vol_kind { K_DIR = 'd', K_FILE = 'f', K_SYMLINK = 'l', K_HARDLINK = 'h' };
/* what DONE says the destination did (or, with --dry-run, would do) */
enum vol_action { A_NONE = 0, A_META = 1, A_WHOLE = 2, A_DELTA = 3, A_CREATED = 4, A_NEED = 255 };
/* A BATCH carries up to VOL_BATCH_MAX file entries (u16 count, then u32 length + ENTRY each) of
 * one directory, so that unchanged files cost one round trip per batch, not one each; BATCH_DONE
 * has one action per entry, A_NEED for a file whose data must come: the source then sends that
 * ENTRY again on its own and the exchange goes on as for a single entry. */
#define VOL_BATCH_MAX 256

/* HELLO_OK's flags byte: the source must send sha256 sums (the destination restarted mid-sync) */
#define VOL_OK_CHECKSUM 1u
#define VOL_F_DRYRUN 1u
#define VOL_F_CHECKSUM 2u

typedef struct vol_entry {
    uint8_t kind;
    uint32_t mode, uid, gid;
    int64_t mtime_s;
    uint32_t mtime_ns;
    uint64_t size;
    char path[VOL_PATH_MAX + 1];
    char target[VOL_PATH_MAX + 1]; /* symlink target, or the path a hard link shares */
    int has_sha;
    int sparse; /* mostly holes: sent whole (its data extents), never by delta */
    uint8_t sha[32];
} vol_entry;

/* A cursor over a received frame; every get fails (DR_EPROTO naming what) past the end. */
typedef struct vol_rd {
    const uint8_t *p;
    size_t n;
    const char *what;
} vol_rd;

int vol_get_u8(vol_rd *r, uint8_t *v);
int vol_get_u32(vol_rd *r, uint32_t *v);
int vol_get_u64(vol_rd *r, uint64_t *v);
/* A string of at most max bytes into out (cap > max), NUL-terminated; NUL inside refused. */
int vol_get_str(vol_rd *r, char *out, size_t max);
int vol_get_end(vol_rd *r);

void vol_put_u8(dr_buf *b, uint8_t v);
void vol_put_u32(dr_buf *b, uint32_t v);
void vol_put_u64(dr_buf *b, uint64_t v);
void vol_put_str(dr_buf *b, const char *s);

int vol_entry_encode(const vol_entry *e, dr_buf *b);
/* Decodes and checks an ENTRY: kind, path (vol_path_check), a symlink target (any bytes but
 * NUL), a hard link's target path (vol_path_check). */
int vol_entry_decode(const void *p, size_t n, vol_entry *e);

/* A relative path from the wire: "" (the root) or components joined by '/', none empty, "." or
 * "..", none longer than 255 bytes, no NUL, at most VOL_PATH_MAX bytes. DR_EPROTO naming it. */
int vol_path_check(const char *path, size_t len);
/* The last component of a checked path, and the length of its parent ("" has none). */
const char *vol_path_base(const char *path, size_t *parent_len);

/* The chunks of a delta: 64 KiB, larger (a multiple of 64 KiB) for a file of more than 2 GiB so
 * that it has at most VOL_SUMS_MAX chunks; vol_sum_count: how many a file of size bytes has. */
#define VOL_SUM_MIN (64u * 1024)
#define VOL_SUMS_MAX 32768u
#define VOL_SUMS_FRAME 4096u
#define VOL_SUM_BYTES 16
#define VOL_SUM_KEY 16
#define VOL_RUNS_FRAME 8192u
uint64_t vol_sum_len(uint64_t size);
uint32_t vol_sum_count(uint64_t size, uint64_t clen);
/* A run of chunks whose data comes by delta. */
typedef struct vol_run {
    uint32_t first, count;
} vol_run;
/* Decodes a RUNS frame, appending to runs (*n so far, cap at most): every run non-empty, after
 * the previous one and not adjacent to it, within nchunks. DR_EPROTO naming what is wrong. */
int vol_runs_decode(const void *p, size_t len, uint32_t nchunks, vol_run *runs, size_t *n,
                    size_t cap);

/* DATA frame header: offset, flags (1: zstd), raw length; DELTA: flags, raw length. */
int vol_data_decode(const void *p, size_t n, uint64_t *off, uint8_t *flags, uint32_t *raw,
                    const uint8_t **body, size_t *blen);

/* fs helpers on directory descriptors, never following a symlink */
/* Removes name under dirfd whatever it is (a directory with all it holds). */
int vol_remove_at(int dirfd, const char *name);
/* Copies the content of src into dst (both open), keeping holes. */
int vol_copy_data(int src, int dst, uint64_t size);
/* Applies mode, owner (when root) and mtime to name under dirfd (AT_SYMLINK_NOFOLLOW). */
int vol_set_meta(int dirfd, const char *name, const vol_entry *e, int is_link);
/* The same on an open file or directory. */
int vol_set_meta_fd(int fd, const vol_entry *e);
/* A temp name for name in its directory: ".drd-tmp.<pid>.<n>" (never a name the source has:
 * leading-dot temp names are deleted as extraneous when a sync is interrupted). */
void vol_tmp_name(char *out, size_t cap);

/* Receives one message into buf (DR_TLS_MAX_FRAME bytes); an ERROR from the peer becomes
 * DR_EPROTO "what: its text". */
struct dr_tls_conn;
int vol_recv(struct dr_tls_conn *t, uint8_t *buf, uint8_t *type, size_t *n, const char *what);
/* Sends ERROR: code's catalog number (one byte) and msg; the peer's vol_recv returns that code. */
int vol_send_error(struct dr_tls_conn *t, int code, const char *msg);

/* sha256 of an open file's content (read with pread from 0). */
int vol_hash_fd(int fd, uint8_t sha[32]);
/* The sum (GMAC under g's key) of fd's bytes [off, off + len), read through buf (VOL_CHUNK bytes);
 * DR_EIO when the file ends before. copy (-1: none): the bytes read are also written there at the
 * same offsets (vol_write_sparse), so that a delta's result has its equal chunks for one read. */
struct dr_gmac;
int vol_sum_range(int fd, uint64_t off, uint64_t len, struct dr_gmac *g, uint8_t *buf, int copy,
                  uint8_t sum[VOL_SUM_BYTES]);
/* The sums of the chunks (clen bytes) of a file of size bytes, the first count at most, appended
 * to out; the bytes summed copied into copy as vol_sum_range does. */
int vol_sums_compute(int fd, uint64_t size, uint64_t clen, uint32_t count, struct dr_gmac *g,
                     uint8_t *buf, int copy, dr_buf *out);
/* Writes n bytes at off into fd, leaving 4 KiB blocks (aligned to the file) of zeros as holes. */
int vol_write_sparse(int fd, const uint8_t *p, size_t n, uint64_t off);

/* Files with several links, by inode: the first path seen (hard links are sent, and promoted,
 * as links to it). */
typedef struct vol_ino {
    dev_t dev;
    ino_t ino;
    char *path;
} vol_ino;
typedef struct vol_inomap {
    vol_ino *map;
    size_t n, cap;
} vol_inomap;
/* The first path recorded for (d, i), or NULL after recording path for it (*err set on
 * failure). */
const char *vol_inomap_seen(vol_inomap *m, dev_t d, ino_t i, const char *path, int *err);
void vol_inomap_free(vol_inomap *m);

/* ---- receiving a file (recv.c) ---- */
/* What receiving a file needs of a destination's session (all borrowed): its connection, its
 * message buffer (DR_TLS_MAX_FRAME bytes) and VOL_CHUNK buffer, its zstd context, the ENTRY. */
typedef struct vol_rx {
    struct dr_tls_conn *t;
    uint8_t *buf, *raw;
    struct dr_zstd *z;
    const vol_entry *e;
    const uint8_t *key; /* the session's VOL_SUM_KEY bytes */
} vol_rx;
/* A whole file: DATA frames up to FILE_END into fd (empty, opened for writing); its sha256 checked
 * when the entry has one (DR_ECHECKSUM). */
int vol_recv_whole(vol_rx *x, int fd);
/* A delta, after WANT_DELTA: reads the source's SUMS, compares them with the basis' (sums: those
 * computed ahead, with the basis' bytes already copied into tfd; or empty: computed here, copying
 * the bytes summed into tfd; the caller frees it), sends RUNS and the signature of the runs' basis
 * bytes. *out: the caller's (vol_delta_free), also on failure. */
typedef struct vol_delta vol_delta;
int vol_delta_start(vol_rx *x, int basis, uint64_t bsize, dr_buf *sums, int tfd, vol_delta **out);
/* Then the delta (DELTA frames up to FILE_END): the runs' bytes written into fd (the tfd given to
 * vol_delta_start) over the basis' copied there, fd cut to the source's size; DR_ECHECKSUM when
 * the patched bytes fail the source's sha256. */
int vol_recv_delta(vol_rx *x, vol_delta *d, int fd);
void vol_delta_free(vol_delta *d);

/* ---- the copy store (store.c) ---- */
struct dr_vol_stats;
/* Removes what an interrupted publish left in copies/. */
void vol_clean_copies(int namefd);
/* Publishes current/ as copies/<time> (a hard-link tree), points latest at it, keeps the newest
 * keep copies, removes `syncing`; the copy's name into copy. sync: syncfs the data first. */
int vol_publish(int namefd, int curfd, int keep, int sync, char *copy, size_t cap);
/* Records a session's outcome in status.json (rc: the session's result). */
void vol_status_write(int namefd, const char *name, const struct dr_vol_stats *st, int rc);
/* Prometheus text for every name under root. */
int vol_metrics(const char *root, dr_buf *body);

/* The chunk sums of a delta computed ahead by a thread (sigahead.c) for the files of one
 * directory, named (with their sizes on the source, which pick the chunk length) in the order
 * their deltas will be asked for. start never fails for want of a thread (then *out is NULL and
 * take always says no). take: 1 and the sums in *sums (the caller's) when the ones computed are
 * of the file open as basis_fd, in the chunks of a source file of src_size bytes, with the temp
 * file holding the bytes hashed (the caller's: its name into tmp, open in *tfd), else 0 (compute
 * them in line). */
typedef struct vol_sigahead vol_sigahead;
int vol_sigahead_start(vol_sigahead **out, int dirfd, const uint8_t key[VOL_SUM_KEY],
                       char *const *names, const uint64_t *sizes, size_t n);
int vol_sigahead_take(vol_sigahead *a, const char *name, int basis_fd, uint64_t src_size,
                      dr_buf *sums, int *tfd, char *tmp, size_t cap);
void vol_sigahead_stop(vol_sigahead *a);

#endif
