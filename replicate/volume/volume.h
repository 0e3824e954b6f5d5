/*
 * drd volume replication: a directory tree (a PVC's data) from a source to a destination by
 * librsync deltas over TLS 1.3, VolSync-style. The destination listens (dr_vol_serve); the
 * source pushes one sync (dr_vol_push). Only complete syncs are published, as point-in-time
 * copies the destination keeps:
 *
 *   ROOT/NAME/current/        the tree syncs write into (may be mid-sync: never promoted)
 *   ROOT/NAME/copies/<time>/  complete copies: hard-link trees of current, never written again
 *   ROOT/NAME/latest          symlink to copies/<time>, replaced atomically after each publish
 *   ROOT/NAME/status.json     the last sync's figures (drd replicate volume status, /metrics)
 *   ROOT/NAME/syncing         present while current differs from latest (a sync started and
 *                             has not been published)
 *
 * Must never write outside ROOT/NAME (names from the wire are checked, and every operation is
 * relative to a directory descriptor without following symlinks), publish a partial sync, or
 * modify a published copy (current's files are replaced by rename, and a file shared with a
 * copy is copied before its metadata changes).
 */
#ifndef DRD_REPLICATE_VOLUME_H
#define DRD_REPLICATE_VOLUME_H

#include "drd/core/core.h"
#include "drd/lib/tlsnet/tlsnet.h"

#include <signal.h>
#include <stdint.h>

typedef struct dr_vol_stats {
    uint64_t wire_sent, wire_received; /* TLS bytes of the source (sent) and destination */
    uint64_t literal, matched;         /* delta bytes sent as data / copied from the basis */
    uint64_t whole_bytes;              /* raw bytes of new files sent whole */
    uint64_t files, files_changed, files_deleted;
    int64_t duration_ms;
    int64_t started_ms; /* wall clock when the sync began (the destination: when it took the
                         * connection, before the source reads a file) */
    char copy[64];      /* the copy published */
} dr_vol_stats;

typedef struct dr_vol_serve_opts {
    const char *listen, *root;
    dr_tls_opts tls;
    int keep;                  /* copies kept per name (0: 3) */
    const char *status_listen; /* /metrics, /healthz (NULL: none) */
    int max_syncs;             /* exit after this many sessions (0: run until stopped; tests) */
    int no_sync;               /* publish without syncfs (a power loss may lose a copy) */
    volatile sig_atomic_t *stop;
} dr_vol_serve_opts;

/* Serves syncs one at a time until *stop. A failed session is logged and recorded in the
 * name's status; the server goes on. Errors: DR_EUSAGE (address in use, root missing), key and
 * certificate errors of dr_tls_conf_new. */
int dr_vol_serve(const dr_vol_serve_opts *o);

typedef struct dr_vol_push_opts {
    const char *source, *to, *name;
    dr_tls_opts tls;
    uint64_t bwlimit; /* bytes per second, 0: none */
    int checksum, dry_run;
    int verbose;           /* print each change on stdout */
    dr_progress *progress; /* counts the file bytes sent whole or by delta (NULL: none) */
} dr_vol_push_opts;

/* One sync of source to the destination; returns 0 when the copy is published (dry run: when
 * the listing is complete). */
int dr_vol_push(const dr_vol_push_opts *o, dr_vol_stats *st);

/* Prints the status of one name or of every name under root (json: one JSON document). */
int dr_vol_status(const char *root, const char *name, int json);

/* Copies the latest complete copy of name to dir (absent or empty), keeping holes, modes,
 * times, owners (as root), symlinks and hard links. DR_ENOTFOUND when there is none. */
int dr_vol_promote(const char *root, const char *name, const char *dir);

/* The newest complete copy of a volume, as its destination recorded it (read only). */
typedef struct dr_vol_latest_info {
    char copy[128];     /* the copy `latest` names; "" when no sync ever completed */
    int64_t started_ms; /* when the sync that published it began, by the destination's clock
                         * (before the source read any file); 0: not recorded (a copy published
                         * by an older drd, or status.json not yet written for this copy) */
    int64_t ended_ms;   /* when it was published (0: not recorded) */
    int syncing;        /* a newer sync has started and is not published yet */
} dr_vol_latest_info;

/* Reads ROOT/NAME's latest copy and its times (status.json counts only when it names that very
 * copy). DR_ENOTFOUND when root has no volume name (no sync ever started), DR_EIO. */
int dr_vol_latest(const char *root, const char *name, dr_vol_latest_info *out);

/* Checks a volume name: 1..64 of [A-Za-z0-9._-], not starting with '.'. DR_EUSAGE. */
int dr_vol_name_check(const char *name);

#endif
