/*
 * drd repo: the backup repository format shared by the snapshot and restore commands.
 * A repository is a store (drd/lib/objstore) laid out as (docs/format.md):
 *
 *     manifests/<ID>.json    plaintext manifest; its presence makes the object visible
 *     data/<job>-<ms>-<rand>.drd   the container: tar (+zstd) (+AES-256-GCM chunks)
 *     locks/<job>-<start>-<nonce>.json   advisory job locks (save, follow)
 *
 * ID = <rev_start:019>-<rev_end:019>-<kind>-<UTC yyyymmddThhmmssZ>, so names sort by revision and
 * say kind and range. A full snapshot has rev_start == rev_end == its revision; a segment
 * (kind "incr") holds the events of revisions [rev_start, rev_end].
 *
 * This module composes the wrappers (objstore, archive, crypto, catalog, json) into the
 * repository's operations; it must never talk to etcd (that is the commands' job) and never
 * make an object visible before its data is complete: the data object is finished first, the
 * manifest is written last, the catalog row after that.
 */
#ifndef DRD_REPO_H
#define DRD_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "drd/core/core.h"
#include "drd/lib/archive/archive.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/objstore/objstore.h"

#define DR_REPO_ID_MAX 80
/* 2: the outer manifest carries a MAC when encrypted, and the sealed inner manifest the data,
 * compression, encryption and key fields (format 1 objects are refused as damaged). */
#define DR_REPO_FORMAT 2

typedef enum { DR_KIND_FULL = 0, DR_KIND_INCR = 1 } dr_repo_kind;
const char *dr_repo_kind_name(dr_repo_kind k);

/* ID for an object; time in ms since the epoch (UTC). */
void dr_repo_make_id(dr_repo_kind kind, int64_t rev_start, int64_t rev_end, int64_t time_ms,
                     char id[DR_REPO_ID_MAX]);
/* Parses an ID; DR_EUSAGE naming it when malformed. Any out pointer may be NULL. */
int dr_repo_parse_id(const char *id, dr_repo_kind *kind, int64_t *rev_start, int64_t *rev_end,
                     int64_t *time_ms);

/* Keys per Kubernetes resource at a full snapshot's revision (docs/format.md "key_counts"): one
 * bucket per resource ("pods" for the keys under /registry/pods/; "<group>/<resource>" for a
 * group's, as /registry/apiregistration.k8s.io/apiservices/), at most DR_KEY_COUNTS_MAX of them,
 * kept sorted by name; every other key (outside /registry/, or past the cap) in other. */
#define DR_KEY_COUNTS_MAX 256
#define DR_KEY_COUNT_NAME_MAX 128 /* a name's bytes, NUL included */
typedef struct dr_key_count {
    char name[DR_KEY_COUNT_NAME_MAX];
    int64_t n;
} dr_key_count;
typedef struct dr_key_counts {
    dr_key_count *v; /* sorted by name, no two alike */
    size_t n;
    int64_t other;
} dr_key_counts;
/* Whether name may name a bucket: 1..127 bytes of [a-z0-9.-], at most one '/' inside. */
int dr_key_counts_name_ok(const char *name, size_t len);
/* Adds n keys to bucket name (created in order when new); a name that is not ok, or a new one
 * when DR_KEY_COUNTS_MAX are taken, goes to other. DR_ENOMEM. */
int dr_key_counts_add(dr_key_counts *kc, const char *name, size_t len, int64_t n);
/* The bucket's count, 0 when absent. */
int64_t dr_key_counts_get(const dr_key_counts *kc, const char *name);
/* Every key counted: the buckets and other. */
int64_t dr_key_counts_total(const dr_key_counts *kc);
/* 1 when both hold the same buckets with the same counts and the same other. */
int dr_key_counts_equal(const dr_key_counts *a, const dr_key_counts *b);
void dr_key_counts_free(dr_key_counts *kc);
/* {"resources": {"name": n, ...}, "other": n} */
int dr_key_counts_json(const dr_key_counts *kc, dr_buf *out);
/* Reads the "key_counts" of a manifest's text into *kc (caller frees), range-checked as
 * dr_manifest_from_json does; DR_ENOTFOUND when the manifest has none, DR_EPROTO. */
int dr_key_counts_from_manifest(const char *text, size_t len, dr_key_counts *kc);

/* The manifest of one object (docs/format.md "Manifest"). */
typedef struct dr_manifest {
    int format;
    char id[DR_REPO_ID_MAX];
    dr_repo_kind kind;
    int64_t rev_start, rev_end;
    int64_t created_ms;
    char data[160]; /* data object name */
    uint64_t cluster_id;
    uint64_t member_id;
    char etcd_version[32];
    char etcd_endpoint[128];
    int64_t compact_revision; /* the source's compact revision when taken (full), or 0 */
    uint64_t plain_bytes;     /* full: the etcd snapshot file (trailer included); incr: events */
    char plain_sha256[65];
    uint64_t stored_bytes; /* the data object */
    char stored_sha256[65];
    char compression[8]; /* "zstd" | "none" */
    char encryption[16]; /* "aes-256-gcm" | "none" */
    char key_id[DR_KEY_NAME_MAX + 1];
    int64_t key_count; /* full: keys at the revision; incr: -1 */
    int has_hashkv;
    uint32_t hashkv;  /* full: HashKV at the revision */
    int64_t events;   /* incr: number of events; full: 0 */
    int64_t leases;   /* incr: lease records */
    char labels[512]; /* "k=v,k2=v2" */
    char drd_version[32];
    /* full: keys per resource at the revision. A manifest stays a small value (thousands are
     * held at once): from_json keeps only has_key_counts and the sha256 of the counts' canonical
     * form (dr_manifest_set_key_counts), which compare_inner compares and dr_repo_key_counts
     * checks the counts it reads against; a writer lends the counts themselves to to_json in
     * key_counts (NULL in a parsed manifest) until the manifest is committed. */
    int has_key_counts;
    uint8_t key_counts_sha256[32];
    const dr_key_counts *key_counts;
    /* Outer manifests of encrypted objects end with "mac": hex HMAC (dr_keyring_mac under key_id)
     * of the sha256 of the text before the mac line (docs/format.md "Manifest"). from_json sets
     * mac ("" when the text does not end in exactly that line) and body_sha256; to_json never
     * writes it (dr_manifest_seal_json does). */
    char mac[65];
    uint8_t body_sha256[32];
} dr_manifest;
/* The manifest as JSON, without a mac. */
int dr_manifest_to_json(const dr_manifest *m, dr_buf *out);
/* The outer manifest: to_json plus, when m is encrypted, the mac line under m->key_id.
 * DR_EAUTH when the keyring lacks that key. */
int dr_manifest_seal_json(const dr_manifest *m, const dr_keyring *k, dr_buf *out);
/* Parses and range-checks a manifest (any text: it comes from the store). DR_EPROTO naming the
 * field when something is missing, malformed or out of range, or the format is not this drd's. */
int dr_manifest_from_json(const char *text, size_t len, dr_manifest *m);
/* Whether mac authenticates m under k (its key_id): 0, or DR_EAUTH saying why not. */
int dr_manifest_check_mac(const dr_manifest *m, const dr_keyring *k);
/* Lends kc to m (to_json writes it) and sets has_key_counts and key_counts_sha256. */
int dr_manifest_set_key_counts(dr_manifest *m, const dr_key_counts *kc);
/* Compares the sealed inner manifest with the outer one on every field that steers reading or
 * choosing (all but stored.*, which the inner one cannot know, and mac): 0, or DR_ECHECKSUM
 * naming the first field that differs. */
int dr_manifest_compare_inner(const dr_manifest *outer, const dr_manifest *inner);

/* ---- the repository handle ---- */
typedef struct dr_repo dr_repo;
typedef struct dr_repo_opts {
    const char *store_url;
    dr_store_opts store;
    const char *key_file;     /* keyring; required for writing unless no_encryption */
    int no_encryption;        /* write plaintext objects (explicit opt-out) */
    int need_key;             /* refuse to open without a key (writers) */
    int allow_plaintext;      /* with a keyring: read unencrypted objects too (--allow-plaintext) */
    const char *catalog_path; /* NULL: $DRD_CATALOG_DIR or $XDG_STATE_HOME/drd or
                                 ~/.local/state/drd, file catalog-<hash of URL>.db */
} dr_repo_opts;
/* Whether this reader may act on m (docs/security.md): without a keyring, plaintext objects only
 * (an unencrypted store is trusted as is); with one, only objects encrypted under a key of the
 * ring whose outer manifest's mac verifies, and plaintext ones only with allow_plaintext. 0, or
 * DR_EAUTH with one line naming the object and why. */
int dr_repo_trust(dr_repo *r, const dr_manifest *m);
/* Opens store, keyring (when given) and catalog. Writers: DR_EUSAGE when neither a key file nor
 * no_encryption is given. */
int dr_repo_open(const dr_repo_opts *o, dr_repo **out);
void dr_repo_close(dr_repo *r);
dr_store *dr_repo_store(dr_repo *r);
/* Borrowed; NULL when no key file was given. */
const dr_keyring *dr_repo_keyring(dr_repo *r);
struct dr_catalog *dr_repo_catalog(dr_repo *r);

/* Brings the catalog in line with the store's manifests (adds new ones, drops vanished ones);
 * rebuild empties it first. *n gets the number of entries after. */
int dr_repo_sync(dr_repo *r, int64_t *n);
int dr_repo_rebuild(dr_repo *r, int64_t *n);

/* Reads a manifest by ID (or "latest": the newest full snapshot) from the store. */
int dr_repo_manifest(dr_repo *r, const char *id, dr_manifest *m);
/* The newest restorable point in the catalog (as of its last sync; no store access): the newest
 * full snapshot this reader trusts and the unbroken chain of trusted segments after it. *rev
 * gets its revision and *ms the creation time of its newest object (the point's age is the
 * store's RPO), both 0 when the catalog holds no full snapshot. */
int dr_repo_newest_point(dr_repo *r, int64_t *rev, int64_t *ms);
/* The key counts of m, a manifest this reader trusts (from dr_repo_each, or dr_repo_manifest and
 * dr_repo_trust), read from its text in the catalog (or the store) and checked against m's
 * key_counts_sha256, so they are as authentic as m. DR_ENOTFOUND when m has none; caller frees
 * *kc. */
int dr_repo_key_counts(dr_repo *r, const dr_manifest *m, dr_key_counts *kc);
/* Calls cb for each manifest in the catalog (after a sync) that dr_repo_trust accepts, ordered by
 * rev_end, segments before the full snapshot of the same revision; the others are skipped (named
 * in a warning on the handle's first call). */
typedef int (*dr_repo_manifest_cb)(void *ctx, const dr_manifest *m);
int dr_repo_each(dr_repo *r, dr_repo_manifest_cb cb, void *ctx);
/* Calls cb for every manifest in the catalog, usable or not: m is NULL for a damaged one (not
 * parseable: problem says why), problem is NULL for one dr_repo_trust accepts. */
typedef int (*dr_repo_list_cb)(void *ctx, const char *id, const dr_manifest *m,
                               const char *problem);
int dr_repo_list(dr_repo *r, dr_repo_list_cb cb, void *ctx);
/* Deletes an object: manifest first (it disappears at once), then data, then the catalog row.
 * The data goes only when the manifest is one dr_repo_trust accepts and no other manifest
 * names the same data, so deleting a planted or damaged manifest removes that manifest alone. */
int dr_repo_delete(dr_repo *r, const char *id);
/* Removes data objects no manifest references (a killed writer's) and unfinished uploads, of
 * job (NULL: every job) and older than older_than_ms. A run holding the job's lock passes 0: no
 * other writer of that job is alive, so whatever it left is garbage. *n (may be NULL) gets the
 * count. */
int dr_repo_cleanup(dr_repo *r, const char *job, int64_t older_than_ms, int *n);

/* ---- writing a container ----
 * begin creates the chain  tar -> zstd -> encrypt -> hash -> store upload  into a new data object;
 * the caller writes entries through the archive writer, then commit finishes the chain, fills the
 * manifest's data/stored/compression/encryption/key fields, writes manifests/<m->id>.json and the
 * catalog row. Freed uncommitted, nothing becomes visible. */
typedef struct dr_repo_writer dr_repo_writer;
/* job names the writer ("save", "follow") in the data object's name (data/<job>-...). */
int dr_repo_writer_new(dr_repo *r, const char *job, dr_compress c, dr_repo_writer **out);
dr_archive_writer *dr_repo_writer_archive(dr_repo_writer *w);
/* Writes the sealed inner manifest (entry "manifest.json", the last one) after filling m's
 * format, data, compression, encryption and key fields; m: everything but stored.* set. */
int dr_repo_writer_seal(dr_repo_writer *w, dr_manifest *m, int64_t mtime);
/* m: as given to seal. Fills stored.*, writes the outer manifest (with its mac when encrypted). */
int dr_repo_writer_commit(dr_repo_writer *w, dr_manifest *m);
void dr_repo_writer_free(dr_repo_writer *w);

/* Every reader made from now on (verify, get_db, read_events) adds the stored bytes it reads to
 * p (NULL: none); p must outlive them. The caller begins and ends p. */
void dr_repo_set_progress(dr_repo *r, dr_progress *p);

/* ---- reading a container ----
 * Opens the data object of m: store -> hash -> decrypt -> archive reader. Entries are read with
 * dr_archive_next/dr_archive_read; dr_repo_reader_finish drains the stream and checks that the
 * stored bytes match the manifest's size and sha256 (DR_ECHECKSUM otherwise). */
typedef struct dr_repo_reader dr_repo_reader;
int dr_repo_reader_new(dr_repo *r, const dr_manifest *m, dr_repo_reader **out);
dr_archive_reader *dr_repo_reader_archive(dr_repo_reader *rd);
int dr_repo_reader_finish(dr_repo_reader *rd);
void dr_repo_reader_free(dr_repo_reader *rd);

/* A source over the data of consecutive entries named "events-*" from the archive's next entry
 * on (a segment's records); it ends at the first other entry, whose name and size
 * dr_repo_events_stop then gives (name "" at the end of the archive). */
int dr_repo_events_source_new(dr_archive_reader *ar, dr_source **out);
const char *dr_repo_events_stop(dr_source *events, uint64_t *size);

/* ---- job locks ----
 * An advisory lock per job name ("save", "follow") in the store plus a local flock, so a second
 * run refuses (DR_EBUSY naming the holder) instead of writing alongside. The store lock expires
 * when its holder stops refreshing it (a killed run does not block the next one for long). */
typedef struct dr_repo_lock dr_repo_lock;
int dr_repo_lock_take(dr_repo *r, const char *job, dr_repo_lock **out);
/* Refreshes the lock when due (call at least every 30 s while holding it). */
int dr_repo_lock_refresh(dr_repo_lock *l);
void dr_repo_lock_release(dr_repo_lock *l);

/* ---- segments: watch events in the container (docs/format.md "Segment events") ----
 * Records, all integers big-endian:
 *   'R' rev:u64 count:u32                     a revision; count records follow
 *   'P' key_len:u32 key val_len:u32 val create_rev:u64 mod_rev:u64 version:u64 lease:u64
 *   'D' key_len:u32 key
 *   'L' lease:u64 ttl:u64                     a lease first seen at this revision (granted TTL)
 */
typedef struct dr_seg_event {
    int type; /* 'P', 'D' or 'L' */
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create_revision, mod_revision, version, lease;
    int64_t ttl;
} dr_seg_event;
/* Appends one encoded record to b. */
int dr_seg_encode_rev(dr_buf *b, int64_t rev, uint32_t count);
int dr_seg_encode_event(dr_buf *b, const dr_seg_event *ev);
/* Streaming decoder over a source (the events entries): next revision header, then its events. */
typedef struct dr_seg_reader dr_seg_reader;
int dr_seg_reader_new(dr_source *in, dr_seg_reader **out);
/* 0 and *rev, *count; DR_ENOTFOUND at a clean end; DR_EPROTO when malformed or truncated. */
int dr_seg_next_rev(dr_seg_reader *s, int64_t *rev, uint32_t *count);
/* The next event of the current revision; pointers valid until the next call. */
int dr_seg_next_event(dr_seg_reader *s, dr_seg_event *ev);
void dr_seg_reader_free(dr_seg_reader *s);

/* ---- reading objects back (verify.c) ---- */
/* Reads an object completely and checks everything that needs no etcd: stored size and sha256,
 * every encrypted chunk, the archive, the content's size and sha256, the sealed manifest against
 * m, and for segments the revision records (consecutive, exactly the manifest's range). Every
 * error names the object. */
int dr_repo_verify(dr_repo *r, const dr_manifest *m);
/* Writes the plain etcd snapshot file of full snapshot m to path (mode 0600), which appears only
 * when every check of dr_repo_verify passed (the stored object's sha256, every AES-GCM chunk, the
 * size and sha256 of the content, the inner manifest); fsynced. flags:
 *  DR_GETDB_SCRATCH  a file that etcdutl/etcdctl snapshot restore reads right away and drd
 *                    deletes: no fsync, and the content's sha256 is left to the restore tool's
 *                    check of etcd's own sha256 trailer of the same bytes (its size is checked);
 *  DR_GETDB_DB_ONLY  the bbolt database alone, without etcd's 32-byte sha256 trailer (the
 *                    content's sha256, which covers the trailer, is checked on the writer
 *                    thread), to become a member's member/snap/db. */
#define DR_GETDB_SCRATCH 1
#define DR_GETDB_DB_ONLY 2
int dr_repo_get_db(dr_repo *r, const dr_manifest *m, const char *path, int flags);
/* Reads segment m completely (with every check of dr_repo_verify) and calls cb for each record of
 * the revisions up to upto (0: all), in order: i counts 0..count-1 within a revision. The checks
 * complete only at the end, so callers verify the segment first and replay it after. cb's
 * non-zero return stops and is returned. */
typedef int (*dr_repo_event_cb)(void *ctx, int64_t rev, uint32_t i, uint32_t count,
                                const dr_seg_event *ev);
int dr_repo_read_events(dr_repo *r, const dr_manifest *m, int64_t upto, dr_repo_event_cb cb,
                        void *ctx);

#endif
