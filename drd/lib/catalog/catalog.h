/*
 * drd catalog: the local index of what a store holds (snapshots, segments) and of restore
 * drills, in sqlite3 (WAL mode, file mode 0600). The only module that includes <sqlite3.h>.
 * The store is the source of truth: the catalog is a cache that `drd catalog rebuild` recreates
 * from the store alone, so it must never hold anything that cannot be recomputed from the store
 * except the drill history.
 */
#ifndef DRD_CATALOG_H
#define DRD_CATALOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct dr_catalog dr_catalog;

/* Opens (creating when missing, with parent directories 0700) the catalog at path, mode 0600.
 * DR_EAUTH when its directory is owned by another user or others may write to it
 * (dr_fs_check_private_dir); DR_EIO when it cannot be opened or is not a drd catalog. Caller
 * closes. */
int dr_catalog_open(const char *path, dr_catalog **out);
void dr_catalog_close(dr_catalog *c);

/* Transactions group writes (a sync or a rebuild is all-or-nothing). */
int dr_catalog_begin(dr_catalog *c);
int dr_catalog_commit(dr_catalog *c);
void dr_catalog_rollback(dr_catalog *c);

typedef struct dr_catalog_entry {
    const char *id;
    const char *kind; /* "full" or "incr" */
    int64_t rev_start;
    int64_t rev_end;
    int64_t created_ms;
    uint64_t stored_bytes;
    const char *manifest; /* the manifest JSON */
} dr_catalog_entry;

/* Inserts or replaces an entry. */
int dr_catalog_put(dr_catalog *c, const dr_catalog_entry *e);
int dr_catalog_remove(dr_catalog *c, const char *id);
/* Removes every entry (not the drills). */
int dr_catalog_clear(dr_catalog *c);
/* Calls cb for each entry (kind NULL: all) ordered by rev_end, then full after incr, then id.
 * Pointers in *e are valid during the call only. cb returning non-zero stops and is returned. */
typedef int (*dr_catalog_cb)(void *ctx, const dr_catalog_entry *e);
int dr_catalog_each(dr_catalog *c, const char *kind, dr_catalog_cb cb, void *ctx);
/* One entry by id through cb; DR_ENOTFOUND when absent. */
int dr_catalog_get(dr_catalog *c, const char *id, dr_catalog_cb cb, void *ctx);
/* Number of entries. */
int dr_catalog_count(dr_catalog *c, int64_t *n);

/* Small key/value settings (e.g. the store URL the catalog belongs to, last sync time).
 * get: caller frees *value; DR_ENOTFOUND when absent. */
int dr_catalog_meta_set(dr_catalog *c, const char *key, const char *value);
int dr_catalog_meta_get(dr_catalog *c, const char *key, char **value);

typedef struct dr_catalog_drill {
    int64_t started_ms;
    const char *snapshot_id;
    int64_t revision;
    int ok;
    int64_t rto_ms;
    const char *report; /* JSON */
} dr_catalog_drill;
int dr_catalog_drill_add(dr_catalog *c, const dr_catalog_drill *d);
/* Drills, newest first, at most limit (0: all). */
typedef int (*dr_catalog_drill_cb)(void *ctx, const dr_catalog_drill *d);
int dr_catalog_drill_each(dr_catalog *c, int limit, dr_catalog_drill_cb cb, void *ctx);

#endif
