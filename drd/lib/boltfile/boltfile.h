/*
 * drd/lib/boltfile: reading one value, or a bucket's greatest key, of a bbolt database file
 * (etcd's backend format, bbolt 1.3) and overwriting a value in place with one of the same size;
 * and the bytes of a fresh, empty database as bbolt creates it.
 *
 * Why: a restore writes etcd's member/snap/db straight from the backup stream and then needs the
 * one change `etcdctl snapshot restore` makes to it (meta/consistent_index), without copying the
 * whole file again (docs/restore.md "How the data dir is made"); `drd replicate seed` reads the
 * seeded database's revision from its last key instead of scanning it all.
 *
 * What it must never do: write anywhere but the bytes of the value it found by walking the trees
 * from the valid meta page with the highest txid, change the size or layout of anything, or trust
 * a page outside the file or the meta page's high-water mark (DR_EPROTO names the page).
 */
#ifndef DRD_BOLTFILE_H
#define DRD_BOLTFILE_H

#include "drd/core/core.h"

#include <stddef.h>
#include <stdint.h>

/* The value of key in top-level bucket `bucket` of the database file at path: copied into val
 * (up to cap bytes), its full length in *len. DR_ENOTFOUND when the bucket or key is absent (the
 * message names which), DR_EPROTO when the file is not a valid bbolt database, DR_EIO. */
int dr_boltfile_get(const char *path, const char *bucket, const char *key, void *val, size_t cap,
                    size_t *len);

/* The greatest key of top-level bucket `bucket` (NULL: of the top level itself, i.e. the last
 * bucket name), copied into key (up to cap bytes), its full length in *len: what a cursor's Last
 * gives (etcd's newest revision is the last key of bucket "key"). DR_ENOTFOUND when the bucket is
 * absent or empty; other errors as dr_boltfile_get. */
int dr_boltfile_last_key(const char *path, const char *bucket, void *key, size_t cap, size_t *len);

/* Overwrites that value in place with len bytes (len must equal its current length; DR_EUSAGE
 * otherwise) and fdatasyncs the file. Nothing else in the file changes. Errors as
 * dr_boltfile_get. */
int dr_boltfile_set_same_size(const char *path, const char *bucket, const char *key,
                              const void *val, size_t len);

/* Appends to out the 16 KiB of an empty database with 4096-byte pages, exactly as bbolt's
 * Open writes a new file: two meta pages (txid 0 and 1), an empty freelist, an empty root leaf. */
int dr_boltfile_empty(dr_buf *out);

/* The format's integers (little-endian) and a meta page's checksum (FNV-1a 64 of the 56 bytes
 * before it), for readers of bbolt bytes elsewhere (snapshot/bolt.c scans a streamed database). */
uint16_t dr_bolt_le16(const uint8_t *p);
uint32_t dr_bolt_le32(const uint8_t *p);
uint64_t dr_bolt_le64(const uint8_t *p);
/* etcd's revision keys (8 bytes main, '_', 8 bytes sub) are big-endian. */
uint64_t dr_bolt_be64(const uint8_t *p);
uint64_t dr_bolt_meta_sum(const uint8_t *meta);

#endif
