/*
 * s3:// driver, internal: the store, the request engine (s3.c) and what the upload sink
 * (s3_put.c) and the download source (s3_get.c) share.
 *
 * Signing: libcurl 7.88 signs SigV4 itself (CURLOPT_AWS_SIGV4) but (measured against RGW) only
 * when we send x-amz-content-sha256 ourselves (it then signs that header and uses its value as
 * the payload hash), and it signs the query string exactly as written. So every request carries
 * the payload's SHA-256 (or the empty hash), and query strings are built canonical here: keys in
 * sorted order, values URI-encoded, "key=" for an empty value.
 *
 * Must never log or put into a message the secret key, the session token or a signature.
 */
#ifndef DRD_OBJSTORE_S3_INT_H
#define DRD_OBJSTORE_S3_INT_H

#include "drd/lib/objstore/objstore_int.h"
#include "drd/lib/objstore/s3_parse.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#define S3_MIN_PART (5u * 1024 * 1024)
#define S3_MAX_PARTS 10000
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct s3_store {
    dr_store base;
    char *bucket;
    char *prefix;   /* "" or "dir/sub/" (ends with '/') */
    char *endpoint; /* host:port */
    const char *scheme;
    char *sigv4;     /* "aws:amz:<region>:s3" */
    char *key_id;    /* access key id */
    char *secret;    /* secret key: never printed */
    char *token_hdr; /* "x-amz-security-token: ..." or NULL: never printed */
    char *cacert;
    size_t part_size;
    int parallel;
    int64_t timeout_ms;
    int retries;
    pthread_mutex_t mu; /* guards the idle handle pool */
    CURL *idle[16];
    int nidle;
} s3_store;

/* One request, sent with retries by s3_request. */
typedef struct s3_req {
    /* in */
    const char *op;     /* for messages: "put", "get", "list", ... */
    const char *method; /* GET HEAD PUT POST DELETE */
    const char *key;    /* full key in the bucket (prefix included); NULL: the bucket */
    const char *query;  /* canonical query string (see above) or NULL */
    const void *body;   /* request body (PUT/POST), body_len bytes; may be NULL with 0 */
    size_t body_len;
    int upload;        /* send a body (even an empty one) */
    const char *hdr;   /* one extra header ("If-None-Match: *") or NULL */
    const char *ctype; /* Content-Type or NULL */
    int no_retry;      /* not idempotent: one attempt */
    int body_error;    /* a 200 answer may carry <Error> (CompleteMultipartUpload) */
    size_t resp_max;   /* response body limit (0: 16 MiB) */
    atomic_int *abort; /* non-NULL and set: give up (DR_EINTR) */
    /* out */
    long status;
    dr_buf resp;
    char etag[128];
    curl_off_t length; /* Content-Length of the answer (HEAD), -1 if none */
} s3_req;

/* Sends r; 0 on a 2xx answer, else the mapped DR_E* code with a message
 * "cannot <op> '<s3 URL>': <reason>". Free r with s3_req_free even on failure. */
int s3_request(s3_store *s, s3_req *r);
void s3_req_free(s3_req *r);

/* "s3://bucket/key" (or the store's URL for key NULL) into out (cap bytes). */
void s3_display(const s3_store *s, const char *key, char *out, size_t cap);
/* Full key of an object name: prefix + name (caller frees; NULL when out of memory). */
char *s3_key(const s3_store *s, const char *name);
/* Appends the SigV4 URI encoding of s (keep '/' when keep_slash). */
int s3_uri_encode(dr_buf *b, const char *s, int keep_slash);

/* Pooled easy handles: a handle keeps its connection to the endpoint between requests. */
CURL *s3_handle_get(s3_store *s);
void s3_handle_put(s3_store *s, CURL *h);
/* Sets URL, signing, credentials, TLS, timeouts and headers on h for one request. *hdrs gets the
 * header list (caller frees with curl_slist_free_all after the transfer). */
int s3_setup(s3_store *s, CURL *h, const char *method, const char *key, const char *query,
             const char *payload_sha256, const char *extra_hdr, const char *ctype,
             struct curl_slist **hdrs, char *errbuf);
/* Whether a failed attempt may be sent again. */
int s3_retryable(CURLcode cc, long status, const char *code);
/* A short reason for a failed attempt ("HTTP 503 SlowDown", curl's text), for debug logs. */
void s3_why(CURLcode cc, long status, const char *code, char *out, size_t cap);
/* Sets the message for a failed request and returns its DR_E* code. code is the S3 error code
 * from the answer ("" if none), attempts how many were made. */
int s3_fail(s3_store *s, const char *op, const char *key, CURLcode cc, const char *errbuf,
            long status, const char *code, int attempts);
/* The backoff between attempts (jittered, 200 ms doubling to 5 s). */
void s3_backoff_init(dr_backoff *b);

/* Upload sink and download source (s3_put.c, s3_get.c). */
int s3_put(dr_store *s, const char *name, dr_sink **out);
int s3_get(dr_store *s, const char *name, uint64_t off, uint64_t len, dr_source **out);

#endif
