/* Private to drd/lib/repo: the handle's fields and helpers shared by its files. */
#ifndef DRD_REPO_INT_H
#define DRD_REPO_INT_H

#include "drd/lib/repo/repo.h"

#define REPO_MANIFESTS "manifests/"
#define REPO_DATA "data/"
#define REPO_LOCKS "locks/"
#define REPO_DAMAGED "damaged" /* catalog kind of a manifest that cannot be used */

struct dr_repo {
    dr_store *store;
    dr_keyring *keys;
    struct dr_catalog *cat;
    int no_encryption;
    int allow_plaintext;
    int each_warned;       /* dr_repo_each has named the objects it skips once */
    dr_progress *progress; /* readers count the stored bytes they read into it (may be NULL) */
    char catalog_path[4096];
};

/* Reads and parses manifests/<id>.json; text (may be NULL) gets the raw document (caller frees). */
int repo_read_manifest(dr_repo *r, const char *id, dr_manifest *m, char **text);
/* Records m in the catalog with its raw text (the mac covers those bytes). */
int repo_catalog_put(dr_repo *r, const dr_manifest *m, const char *text);

/* key_counts of a parsed manifest document (keycounts.c): parse checks them against key_count
 * (DR_ENOTFOUND, no message, when absent); hash sets m's has_key_counts and key_counts_sha256. */
struct dr_json;
int repo_key_counts_parse(const struct dr_json *j, int64_t key_count, dr_key_counts *kc);
int repo_key_counts_hash(const struct dr_json *j, dr_manifest *m);

/* What a lock object's body says (lock.c); read by scan_lock and tests/fuzz/fuzz_lock.c. */
typedef struct repo_lock_info {
    int has_expires;    /* the body is JSON with an integer expires_ms (else: not a lock) */
    int64_t expires_ms; /* 0 when absent or malformed */
    int64_t pid;        /* 0 when absent or malformed */
    char host[128];     /* "?" when absent (cut to 127 bytes: a name for messages) */
} repo_lock_info;
/* Parses a lock body (untrusted: any store client may write one); never fails: a garbled body
 * has no expires_ms, and scan_lock removes it. */
void repo_lock_parse(const char *text, size_t len, repo_lock_info *out);

#endif
