/*
 * drd epoch: the fencing epoch (docs/runbooks.md, "Epochs"). Every promotion raises it and writes
 * a record naming the new primary (its config name and etcd cluster ID) to the key /drd/epoch of
 * the clusters and to the object drd-epoch of each store. A side that finds a newer record naming
 * someone else is stale: it refuses to replicate from itself, to write snapshots into a store and
 * to be promoted over it, and says both epochs.
 *
 * A service module (etcd, repo, json, crypto). The parser reads untrusted bytes (a key anyone
 * with write access to etcd may set, an object anyone with access to the store may put): it is
 * bounded, total and fuzzed (tests/fuzz/fuzz_epoch.c). In a store with a keyring the record
 * carries a MAC under the keyring (as manifests do) and an unauthenticated one is refused.
 * Must never lower an epoch: every write is refused when a newer record is already there.
 */
#ifndef DRD_EPOCH_H
#define DRD_EPOCH_H

#include "drd/core/core.h"
#include "drd/lib/etcd/etcd.h"
#include "drd/lib/crypto/crypto.h"
#include "drd/lib/objstore/objstore.h"
#include "drd/lib/repo/repo.h"

#include <stdint.h>

#define DR_EPOCH_KEY "/drd/epoch"
#define DR_EPOCH_OBJECT "drd-epoch" /* objects drd-epoch/<epoch, 20 digits>: one per epoch */
#define DR_EPOCH_MAX_BYTES 4096

typedef struct dr_epoch {
    int64_t epoch;       /* 0: nothing recorded (the sides are as the config says) */
    char primary[64];    /* the primary's cluster name in the config */
    uint64_t cluster_id; /* its etcd cluster ID */
    int64_t revision;    /* the revision it was promoted at */
    int64_t time_ms;     /* when */
    char run[96];        /* the runbook run that raised it */
} dr_epoch;

/* Parses a record (JSON: {"epoch":N,"primary":"name","cluster_id":"hex","revision":R,
 * "time_ms":T,"run":"id"}). DR_EPROTO naming what is wrong. */
int dr_epoch_parse(const char *text, size_t len, dr_epoch *out);
/* Appends the record's JSON (one line, no newline) to b. */
int dr_epoch_format(const dr_epoch *ep, dr_buf *b);
/* "epoch 4 (primary west, cluster 8e9e05c52164694d, run 20261202-101500-planned)" or "epoch 0
 * (none recorded)". */
void dr_epoch_describe(const dr_epoch *ep, char *buf, size_t cap);

/* The record in a cluster's /drd/epoch (epoch 0 when absent); *mod_rev (may be NULL) gets the
 * key's mod revision (0 when absent) for a guarded write. DR_EPROTO for a garbled record. */
int dr_epoch_read_etcd(dr_etcd *e, dr_epoch *out, int64_t *mod_rev);
/* Writes ep to /drd/epoch if the key's mod revision is still expect_mod_rev (0: absent): one
 * guarded txn, so a concurrent raise wins and this one fails with DR_ESTALE. hdr may be NULL. */
int dr_epoch_write_etcd(dr_etcd *e, const dr_epoch *ep, int64_t expect_mod_rev,
                        dr_etcd_header *hdr);

/* The store's record (epoch 0 when absent). k: the store's keyring (NULL: none); with one, a
 * record not authenticated under it is DR_EAUTH. No catalog is needed (a dry run writes
 * nothing, not even a catalog file). */
int dr_epoch_read_store(dr_store *s, const dr_keyring *k, dr_epoch *out);
/* Writes ep as the object drd-epoch/<epoch> (store objects are immutable: one per epoch; with a
 * MAC under the keyring's current key when there is one), unless the store already holds that
 * epoch or a newer one: DR_ESTALE (the very same record again is success: a resumed run). */
int dr_epoch_write_store(dr_store *s, const dr_keyring *k, const dr_epoch *ep);

/* The newer of a and b into *out (a's on a tie). */
void dr_epoch_newest(const dr_epoch *a, const dr_epoch *b, dr_epoch *out);

/* Whether the cluster with ID cluster_id may act as the primary given the newest record known:
 * yes when nothing is recorded or the record names it. Otherwise DR_ESTALE with a message
 * "<doing>: <who> is not the primary: <newest described>; <who> holds <own described>". */
int dr_epoch_check_primary(const dr_epoch *newest, const dr_epoch *own, uint64_t cluster_id,
                           const char *who, const char *doing);

/* The checks the domains make before they write (each reads what it needs, then applies
 * dr_epoch_check_primary):
 *  - replication from src to tgt: the newest of both clusters' records must name src, unless it
 *    is exactly epoch handover naming tgt (a planned switchover draining the last revisions into
 *    the side it is promoting; 0: no such exception). DR_ESTALE otherwise.
 *  - a snapshot or segments of e into r: the newest of r's record and e's must name e. */
int dr_epoch_check_replication(dr_etcd *src, dr_etcd *tgt, int64_t handover);
int dr_epoch_check_snapshot(dr_repo *r, dr_etcd *e);

#endif
