/*
 * drd object store: where snapshots and segments live. Two drivers behind one interface:
 *   file:///path        local directory (the embedded default, no server)
 *   s3://bucket/prefix  S3 over libcurl (SigV4, path-style, multipart streaming upload)
 * Both keep the same layout: object names are '/'-separated paths relative to the store's root
 * (the directory, or bucket + prefix).
 *
 * The only module that includes <curl/...> or <libxml/...>; it turns HTTP/S3 errors (AccessDenied,
 * NoSuchBucket, SlowDown, 5xx, connection errors) into DR_E* codes with clear messages, once.
 * Must never print or log credentials or signatures. Objects are immutable once written: an
 * object becomes visible only when its writer finishes; an unfinished writer leaves nothing
 * under the name (S3: the multipart upload is aborted; file: the temp file is removed), and
 * dr_store_cleanup removes what a killed writer left behind.
 */
#ifndef DRD_OBJSTORE_H
#define DRD_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "drd/core/core.h"

typedef struct dr_store dr_store;

typedef struct dr_store_opts {
    const char *s3_endpoint;    /* "host:port" (required for s3://) */
    const char *s3_region;      /* NULL: "us-east-1" */
    const char *s3_cacert;      /* PEM CA file for https (NULL: system roots) */
    int s3_insecure_http;       /* plain http (explicit opt-in) */
    const char *s3_credentials; /* credentials file (NULL: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
                                  else AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials;
                                  profile from AWS_PROFILE or "default") */
    size_t part_size;           /* multipart part size; 0: 8 MiB (min 5 MiB) */
    int parallel;       /* parts uploaded at once; 0: 2. Memory = part_size * (parallel+1) */
    int64_t timeout_ms; /* per request without progress; 0: 30 s */
    int retries;        /* attempts for 5xx/connection errors/SlowDown; 0: 5 */
    int create;         /* writers: file:// creates a missing directory (and parents, 0700);
                           readers leave it 0 and get DR_ENOTFOUND */
} dr_store_opts;

/* Opens a store by URL. DR_EUSAGE: unknown scheme or malformed URL (names it), missing
 * --s3-endpoint, no credentials, a session token with s3_insecure_http (a token travels as it
 * is); DR_ENOTFOUND: the bucket (or the directory, unless o->create) does not exist; DR_EAUTH:
 * access denied / bad credentials, or a credentials file others may read or another user owns
 * (dr_fs_check_secret_fd); DR_EUNAVAILABLE: endpoint unreachable;
 * DR_ETLS. Checks access with one request (S3: list of at most 1 key). Caller closes. */
int dr_store_open(const char *url, const dr_store_opts *o, dr_store **out);
void dr_store_close(dr_store *s);
/* The URL the store was opened with (borrowed). */
const char *dr_store_url(const dr_store *s);

/* Streaming write of object name: memory bounded by the part buffers, size not needed in advance.
 * The object appears only when dr_sink_finish returns 0; dr_sink_free before that aborts. */
int dr_store_put(dr_store *s, const char *name, dr_sink **out);
/* Whole small object in one call. */
int dr_store_put_buf(dr_store *s, const char *name, const void *data, size_t len);
/* Streaming read from offset off, len bytes (0: to the end). DR_ENOTFOUND when missing. */
int dr_store_get(dr_store *s, const char *name, uint64_t off, uint64_t len, dr_source **out);
/* Whole small object (at most max bytes, DR_EIO beyond); caller frees *data (NUL-terminated). */
int dr_store_get_buf(dr_store *s, const char *name, size_t max, char **data, size_t *len);
/* Size of an object; DR_ENOTFOUND when missing. */
int dr_store_head(dr_store *s, const char *name, uint64_t *size);
/* Deletes an object; a missing object is not an error. */
int dr_store_delete(dr_store *s, const char *name);

typedef struct dr_store_obj {
    const char *name; /* relative to the store root */
    uint64_t size;
    int64_t mtime_ms;
} dr_store_obj;
/* Calls cb for every object whose name starts with prefix, in ascending name order, paging
 * through the listing (bounded memory). cb returning non-zero stops the walk and is returned. */
typedef int (*dr_store_list_cb)(void *ctx, const dr_store_obj *obj);
int dr_store_list(dr_store *s, const char *prefix, dr_store_list_cb cb, void *ctx);

/* Removes what killed writers of objects whose names start with prefix ("" or NULL: all) left:
 * S3 multipart uploads and file:// temp files older than older_than_ms. *n (may be NULL) gets
 * how many were removed. */
int dr_store_cleanup(dr_store *s, const char *prefix, int64_t older_than_ms, int *n);

#endif
