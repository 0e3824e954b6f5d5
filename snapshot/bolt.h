/*
 * snapshot/bolt.h (private to the snapshot module): the store revision an etcd snapshot holds,
 * found while the snapshot streams by.
 *
 * etcd 3.4's Maintenance.Snapshot sends a bbolt database file (bbolt 1.3, Tx.WriteTo) followed by
 * a 32-byte sha256 of it, and says nothing about the revision. The scanner reads the stream once,
 * in order, keeps small per-page summaries and walks the B+trees from the meta page at the end
 * (docs/format.md "The revision of an etcd snapshot"). Memory stays bounded by the buffer cap and
 * the summaries, never by the size of the database; there is no temp file.
 *
 * What it must never do: trust a page that the walk from the valid meta page does not reach (free
 * pages may hold stale or newer data), skip bytes because of such a page's overflow count, or read
 * outside the bytes it was given (garbage in, DR_EPROTO out).
 */
#ifndef DRD_SNAPSHOT_BOLT_H
#define DRD_SNAPSHOT_BOLT_H

#include <stddef.h>
#include <stdint.h>

typedef struct dr_bolt_scan dr_bolt_scan;

/* A page (with its overflow pages) up to this size is buffered and parsed whole. Larger leaf
 * pages (large values) are still read for their last key; anything else larger fails, clearly,
 * only if the walk needs it. */
#define DR_BOLT_MAX_EXTENT (8u << 20)

typedef struct dr_bolt_result {
    /* The store revision the snapshot holds: max(newest revision in bucket "key",
     * finishedCompactRev, scheduledCompactRev, 1). A compaction deletes only entries at or below
     * its revision and is never above the store's revision, so this is exact even when the newest
     * entries were compacted away. etcd 3.4's own restore sets max(newest key revision,
     * finishedCompactRev, 1); the two differ only for a snapshot taken in the middle of a
     * compaction that had already deleted the newest entries. */
    int64_t revision;
    /* Main revision of the newest entry of bucket "key": what `etcdctl snapshot status` prints as
     * "revision" (0 when the bucket is empty); -1 when the scan did not keep it because it is below
     * min_rev (then revision came from the compact revision). */
    int64_t key_revision;
    int64_t compact_revision;           /* meta/finishedCompactRev, 0 if none */
    int64_t scheduled_compact_revision; /* meta/scheduledCompactRev, 0 if none */
    uint64_t consistent_index;          /* meta/consistent_index, 0 if none */
    uint64_t txid;                      /* bbolt transaction id of the snapshot */
    uint32_t page_size;
    uint64_t db_size; /* bytes of the database (the stream without its trailer) */
    int has_trailer;  /* the stream carried the 32-byte trailer (not verified here) */
    /* what the scan saw and used, for tests and benchmarks */
    uint64_t branch_pages;      /* branch pages summarized */
    uint64_t leaf_records;      /* leaf pages kept (last revision >= min_rev or bucket entries) */
    uint64_t buffered_extents;  /* pages with overflow parsed from the buffer */
    uint64_t oversized_extents; /* pages larger than DR_BOLT_MAX_EXTENT seen */
    int key_leaf_oversized;     /* the newest entry came from an oversized leaf page */
    size_t peak_mem;            /* the scanner's peak heap use in bytes */
} dr_bolt_result;

/* A new scanner. min_rev: a lower bound of the snapshot's revision known before the snapshot
 * started (the revision of a Status/Range answer from the same member just before); leaf pages
 * whose newest revision is below it are not kept. min_rev <= 0 keeps every leaf of bucket "key"
 * (24 bytes each): exact key_revision always, memory then grows with the database.
 * Caller frees *out with dr_bolt_scan_free. DR_ENOMEM. */
int dr_bolt_scan_new(int64_t min_rev, dr_bolt_scan **out);

/* The stream's next bytes, in order, in pieces of any size. The stream is the database file,
 * with or without etcd's 32-byte sha256 trailer after it (not verified here: the caller hashes
 * the stream). DR_EPROTO when the stream cannot be an etcd snapshot (no valid meta page, more
 * than 32 bytes after the database end), DR_ENOMEM. After an error every call returns it again. */
int dr_bolt_scan_feed(dr_bolt_scan *s, const void *data, size_t len);

/* After the last byte: walks the trees from the meta page and fills *out. DR_EPROTO with a
 * message naming the page or bucket when the revision cannot be determined (truncated stream,
 * not a bbolt/etcd database, a needed page invalid or larger than DR_BOLT_MAX_EXTENT, min_rev
 * above the snapshot's revision when that mattered). May be called more than once. */
int dr_bolt_scan_result(dr_bolt_scan *s, dr_bolt_result *out);

void dr_bolt_scan_free(dr_bolt_scan *s);

#endif
