/*
 * s3:// driver: opening a store (URL, options, credentials, one access check), the request
 * engine (signing, retries, timeouts, S3 errors to DR_E* codes, in one place), and the small
 * operations: head, delete, paged listing (ListObjectsV2) and cleanup of stale multipart uploads.
 * Uploads are in s3_put.c, downloads in s3_get.c.
 *
 * Retries: connection errors, timeouts, 5xx, SlowDown and RequestTimeout are retried with jittered
 * backoff (o->retries attempts in all), for every request that may be sent again; a request body
 * is always held in memory by the caller, so a retry re-sends exactly the same bytes.
 *
 * Must never log or put into a message the secret key, the session token or a signature; never
 * enable curl's verbose output (it prints the Authorization header).
 */
#include "drd/lib/objstore/s3_int.h"
#include "drd/lib/crypto/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_OK;

static void global_init(void)
{
    init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
}

void s3_backoff_init(dr_backoff *b)
{
    dr_backoff_init(b, 200, 5000);
}

/* ---- names, URLs ---- */

void s3_display(const s3_store *s, const char *key, char *out, size_t cap)
{
    if (key)
        snprintf(out, cap, "s3://%s/%s", s->bucket, key);
    else
        snprintf(out, cap, "%s", s->base.url);
}

char *s3_key(const s3_store *s, const char *name)
{
    size_t pl = strlen(s->prefix), nl = strlen(name);
    char *k = malloc(pl + nl + 1);
    if (!k)
        return NULL;
    memcpy(k, s->prefix, pl);
    memcpy(k + pl, name, nl + 1);
    return k;
}

int s3_uri_encode(dr_buf *b, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
            (keep_slash && *p == '/')) {
            rc = dr_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = dr_buf_append(b, e, 3);
        }
    }
    return rc;
}

/* ---- handles ---- */

CURL *s3_handle_get(s3_store *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->nidle)
        h = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->mu);
    return h ? h : curl_easy_init();
}

void s3_handle_put(s3_store *s, CURL *h)
{
    if (!h)
        return;
    curl_easy_reset(h); /* keeps the connection */
    pthread_mutex_lock(&s->mu);
    if (s->nidle < (int)(sizeof s->idle / sizeof s->idle[0])) {
        s->idle[s->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

int s3_setup(s3_store *s, CURL *h, const char *method, const char *key, const char *query,
             const char *payload_sha256, const char *extra_hdr, const char *ctype,
             struct curl_slist **hdrs, char *errbuf)
{
    int rc = 0;
    dr_buf url = {0}, hv = {0};
    struct curl_slist *l = NULL, *n;
    *hdrs = NULL;
    if ((rc = dr_buf_printf(&url, "%s://%s/", s->scheme, s->endpoint)) < 0 ||
        (rc = s3_uri_encode(&url, s->bucket, 0)) < 0)
        goto out;
    if (key && ((rc = dr_buf_append(&url, "/", 1)) < 0 || (rc = s3_uri_encode(&url, key, 1)) < 0))
        goto out;
    if (query && *query && (rc = dr_buf_printf(&url, "?%s", query)) < 0)
        goto out;
    if ((rc = dr_buf_printf(&hv, "x-amz-content-sha256: %s", payload_sha256)) < 0)
        goto out;
    /* no "Expect:" to turn off 100-continue: curl 7.88 would sign it with the empty value it
     * does not send, and every upload would fail with SignatureDoesNotMatch */
    const char *hs[] = {hv.data, extra_hdr, s->token_hdr, NULL, NULL};
    char ct[128];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hs[3] = ct;
    }
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        if (!hs[i])
            continue;
        if (!(n = curl_slist_append(l, hs[i]))) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            goto out;
        }
        l = n;
    }
    CURLcode cc = CURLE_OK;
    long conn_ms = s->timeout_ms < 10000 ? (long)s->timeout_ms : 10000;
    long low_s = s->timeout_ms >= 2000 ? (long)(s->timeout_ms / 1000) : 1;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(h, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, url.data);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_USERAGENT, "drd/" DRD_VERSION);
    SET(CURLOPT_AWS_SIGV4, s->sigv4);
    SET(CURLOPT_USERNAME, s->key_id);
    SET(CURLOPT_PASSWORD, s->secret);
    SET(CURLOPT_HTTPHEADER, l);
    SET(CURLOPT_CONNECTTIMEOUT_MS, conn_ms);
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SET(CURLOPT_LOW_SPEED_TIME, low_s);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    if (s->cacert)
        SET(CURLOPT_CAINFO, s->cacert);
    if (!strcmp(method, "HEAD"))
        SET(CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0)
        SET(CURLOPT_CUSTOMREQUEST, method);
#undef SET
    if (cc != CURLE_OK) {
        rc = dr_error_set(DR_EGENERIC, "curl: cannot set option: %s", curl_easy_strerror(cc));
        goto out;
    }
    *hdrs = l;
    l = NULL;
out:
    curl_slist_free_all(l);
    dr_buf_free(&url); /* curl copies the URL */
    dr_buf_free(&hv);
    return rc;
}

/* ---- errors ---- */

static int is_tls_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return 1;
    default:
        return 0;
    }
}

static int is_conn_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

int s3_retryable(CURLcode cc, long status, const char *code)
{
    if (cc != CURLE_OK)
        return is_conn_error(cc);
    if (status >= 500)
        return 1;
    return !strcmp(code, "SlowDown") || !strcmp(code, "RequestTimeout") ||
           !strcmp(code, "InternalError") || !strcmp(code, "ServiceUnavailable");
}

static const struct s3_code {
    const char *code;
    int rc;
    const char *text;
} s3_codes[] = {
    {"AccessDenied", DR_EAUTH, "access denied"},
    {"AllAccessDisabled", DR_EAUTH, "access denied"},
    {"AccountProblem", DR_EAUTH, "access denied (account problem)"},
    {"InvalidAccessKeyId", DR_EAUTH, "bad credentials: the access key id is unknown to the server"},
    {"SignatureDoesNotMatch", DR_EAUTH,
     "bad credentials: the signature does not match (wrong secret key?)"},
    {"ExpiredToken", DR_EAUTH, "bad credentials: the session token has expired"},
    {"InvalidToken", DR_EAUTH, "bad credentials: invalid session token"},
    {"RequestTimeTooSkewed", DR_EAUTH, "request refused: this machine's clock is off"},
    {"NoSuchKey", DR_ENOTFOUND, "no such object"},
    {"NoSuchUpload", DR_ENOTFOUND, "the multipart upload does not exist (aborted meanwhile?)"},
    {"PreconditionFailed", DR_EIO, "already exists (objects are immutable)"},
    {"SlowDown", DR_EUNAVAILABLE, "server busy (SlowDown)"},
    {"ServiceUnavailable", DR_EUNAVAILABLE, "service unavailable"},
    {"InternalError", DR_EUNAVAILABLE, "internal server error"},
    {"RequestTimeout", DR_EUNAVAILABLE, "the server timed out reading the request"},
    {"XAmzContentSHA256Mismatch", DR_ECHECKSUM,
     "the server received other bytes than sent (payload hash mismatch)"},
    {"BadDigest", DR_ECHECKSUM, "the server received other bytes than sent (digest mismatch)"},
    {"InvalidBucketName", DR_EUSAGE, "invalid bucket name"},
    {"QuotaExceeded", DR_EIO, "quota exceeded"},
    {"EntityTooLarge", DR_EINVAL, "object too large for the server"},
    {"EntityTooSmall", DR_EINVAL, "part too small for the server"},
    {"InvalidPart", DR_EPROTO, "the server lost an uploaded part"},
    {"InvalidPartOrder", DR_EPROTO, "parts out of order"},
    {"InvalidRange", DR_EINVAL, "range outside the object"},
};

void s3_why(CURLcode cc, long status, const char *code, char *out, size_t cap)
{
    if (cc != CURLE_OK)
        snprintf(out, cap, "%s", curl_easy_strerror(cc));
    else
        snprintf(out, cap, "HTTP %ld%s%s", status, *code ? " " : "", code);
}

int s3_fail(s3_store *s, const char *op, const char *key, CURLcode cc, const char *errbuf,
            long status, const char *code, int attempts)
{
    char what[1200], tries[48] = "";
    s3_display(s, key, what, sizeof what);
    if (attempts > 1)
        snprintf(tries, sizeof tries, " (%d attempts)", attempts);
    if (cc != CURLE_OK) {
        const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(cc);
        if (cc == CURLE_ABORTED_BY_CALLBACK)
            return dr_error_set(DR_EINTR, "cannot %s '%s': aborted", op, what);
        if (cc == CURLE_PEER_FAILED_VERIFICATION)
            /* wrong CA or a certificate for another name: say which CAs were trusted */
            return dr_error_set(
                DR_ETLS,
                "cannot %s '%s': S3 endpoint '%s' failed TLS certificate verification "
                "against %s%s%s: %s",
                op, what, s->endpoint, s->cacert ? "CA file '" : "the system's CAs",
                s->cacert ? s->cacert : "", s->cacert ? "'" : "", why);
        if (is_tls_error(cc))
            return dr_error_set(DR_ETLS, "cannot %s '%s': TLS failure with S3 endpoint '%s': %s",
                                op, what, s->endpoint, why);
        if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
            return dr_error_set(DR_EUNAVAILABLE,
                                "cannot %s '%s': cannot connect to S3 endpoint '%s': %s%s", op,
                                what, s->endpoint, why, tries);
        if (cc == CURLE_OPERATION_TIMEDOUT)
            return dr_error_set(DR_ETIMEOUT,
                                "cannot %s '%s': S3 endpoint '%s' made no progress for %lld ms%s",
                                op, what, s->endpoint, (long long)s->timeout_ms, tries);
        if (is_conn_error(cc))
            return dr_error_set(DR_EUNAVAILABLE,
                                "cannot %s '%s': connection to S3 endpoint '%s' failed: %s%s", op,
                                what, s->endpoint, why, tries);
        if (cc == CURLE_WRITE_ERROR)
            return dr_error_set(DR_EPROTO, "cannot %s '%s': answer too large or unreadable", op,
                                what);
        return dr_error_set(DR_EPROTO, "cannot %s '%s': %s", op, what, why);
    }
    if (!strcmp(code, "NoSuchBucket"))
        return dr_error_set(DR_ENOTFOUND, "cannot %s '%s': bucket '%s' does not exist", op, what,
                            s->bucket);
    for (size_t i = 0; i < sizeof s3_codes / sizeof s3_codes[0]; i++)
        if (!strcmp(code, s3_codes[i].code))
            return dr_error_set(s3_codes[i].rc, "cannot %s '%s': %s%s", op, what, s3_codes[i].text,
                                tries);
    /* no (known) code: HEAD answers have no body */
    if (status == 401 || status == 403)
        return dr_error_set(DR_EAUTH, "cannot %s '%s': access denied (HTTP %ld%s%s)", op, what,
                            status, *code ? " " : "", code);
    if (status == 404)
        return dr_error_set(DR_ENOTFOUND, "cannot %s '%s': not found%s%s", op, what,
                            *code ? ": " : "", code);
    if (status == 412)
        return dr_error_set(DR_EIO, "cannot %s '%s': already exists (objects are immutable)", op,
                            what);
    if (status >= 500)
        return dr_error_set(DR_EUNAVAILABLE, "cannot %s '%s': server error (HTTP %ld%s%s)%s", op,
                            what, status, *code ? " " : "", code, tries);
    return dr_error_set(DR_EPROTO, "cannot %s '%s': unexpected answer (HTTP %ld%s%s)", op, what,
                        status, *code ? " " : "", code);
}

/* ---- the request engine ---- */

typedef struct body_reader {
    const char *p;
    size_t len, off;
} body_reader;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    body_reader *b = ud;
    size_t n = size * nitems, left = b->len - b->off;
    if (n > left)
        n = left;
    if (n)
        memcpy(buf, b->p + b->off, n);
    b->off += n;
    return n;
}

static int seek_cb(void *ud, curl_off_t off, int origin)
{
    body_reader *b = ud;
    if (origin != SEEK_SET || off < 0 || (size_t)off > b->len)
        return CURL_SEEKFUNC_FAIL;
    b->off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    s3_req *r = ud;
    size_t n = size * nmemb, max = r->resp_max ? r->resp_max : 16u << 20;
    if (r->resp.len + n > max || dr_buf_append(&r->resp, data, n) < 0)
        return 0; /* CURLE_WRITE_ERROR */
    return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    s3_req *r = ud;
    size_t n = size * nmemb;
    if (n > 5 && !strncasecmp(data, "ETag:", 5)) {
        const char *v = data + 5;
        size_t l = n - 5;
        while (l && (*v == ' ' || *v == '\t'))
            v++, l--;
        while (l && (v[l - 1] == '\r' || v[l - 1] == '\n' || v[l - 1] == ' '))
            l--;
        if (l < sizeof r->etag) {
            memcpy(r->etag, v, l);
            r->etag[l] = 0;
        }
    }
    return n;
}

static int xfer_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    atomic_int *abort_flag = ud;
    return abort_flag && atomic_load(abort_flag) ? 1 : 0;
}

void s3_req_free(s3_req *r)
{
    dr_buf_free(&r->resp);
}

int s3_request(s3_store *s, s3_req *r)
{
    int rc = 0, attempt = 0;
    char sha[65], errbuf[CURL_ERROR_SIZE];
    char code[64] = "";
    CURLcode cc = CURLE_OK;
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL;
    dr_backoff bo;
    s3_backoff_init(&bo);
    r->status = 0;
    r->length = -1;
    r->etag[0] = 0;
    if (r->upload && r->body_len) {
        uint8_t d[32];
        dr_sha256 *hs = NULL;
        if ((rc = dr_sha256_new(&hs)) < 0 ||
            (rc = dr_sha256_update(hs, r->body, r->body_len)) < 0 ||
            (rc = dr_sha256_final(hs, d)) < 0) {
            dr_sha256_free(hs);
            goto out;
        }
        dr_sha256_free(hs);
        dr_hex(d, 32, sha);
    } else {
        snprintf(sha, sizeof sha, "%s", S3_EMPTY_SHA256);
    }
    for (;;) {
        body_reader br = {r->body, r->body_len, 0};
        attempt++;
        errbuf[0] = 0;
        code[0] = 0;
        r->status = 0;
        r->resp.len = 0;
        if (!(h = s3_handle_get(s))) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = s3_setup(s, h, r->method, r->key, r->query, sha, r->hdr, r->ctype, &hdrs,
                           errbuf)) < 0)
            goto out;
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
        if (r->abort) {
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cb);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, r->abort);
        }
        if (r->upload) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
            curl_easy_setopt(h, CURLOPT_READDATA, &br);
            curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
            curl_easy_setopt(h, CURLOPT_SEEKDATA, &br);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
            curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
        }
        cc = curl_easy_perform(h);
        if (cc == CURLE_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
            curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->length);
            if (r->status >= 200 && r->status <= 299 && r->body_error &&
                s3_xml_root_is(r->resp.data, r->resp.len, "Error"))
                r->status = 500; /* CompleteMultipartUpload: 200 with an <Error> is a failure */
            if (r->status < 200 || r->status > 299)
                s3_xml_text(r->resp.data, r->resp.len, "Code", code, sizeof code);
        }
        curl_slist_free_all(hdrs);
        hdrs = NULL;
        if (cc != CURLE_OK && cc != CURLE_ABORTED_BY_CALLBACK) {
            /* a broken connection must not go back to the pool */
            curl_easy_cleanup(h);
        } else {
            s3_handle_put(s, h);
        }
        h = NULL;
        if (cc == CURLE_OK && r->status >= 200 && r->status <= 299)
            break;
        if (r->no_retry || attempt >= s->retries || !s3_retryable(cc, r->status, code) ||
            (r->abort && atomic_load(r->abort))) {
            rc = s3_fail(s, r->op, r->key, cc, errbuf, r->status, code, attempt);
            goto out;
        }
        int64_t wait = dr_backoff_next(&bo);
        char why[160];
        s3_why(cc, r->status, code, why, sizeof why);
        dr_debug("s3: %s '%s': attempt %d failed (%s), retrying in %lld ms", r->op,
                 r->key ? r->key : s->bucket, attempt, why, (long long)wait);
        dr_sleep_ms(wait);
    }
out:
    curl_slist_free_all(hdrs);
    if (h)
        s3_handle_put(s, h);
    return rc;
}

/* ---- small operations ---- */

static int s3_head(dr_store *base, const char *name, uint64_t *size)
{
    s3_store *s = (s3_store *)base;
    s3_req r = {.op = "stat", .method = "HEAD"};
    int rc = 0;
    char *key = s3_key(s, name);
    if (!key)
        return dr_error_set(DR_ENOMEM, "out of memory");
    r.key = key;
    if ((rc = s3_request(s, &r)) < 0)
        goto out;
    if (r.length < 0) {
        rc = dr_error_set(DR_EPROTO, "cannot stat 's3://%s/%s': no Content-Length in the answer",
                          s->bucket, key);
        goto out;
    }
    *size = (uint64_t)r.length;
out:
    s3_req_free(&r);
    free(key);
    return rc;
}

static int s3_del(dr_store *base, const char *name)
{
    s3_store *s = (s3_store *)base;
    s3_req r = {.op = "delete", .method = "DELETE"};
    int rc = 0;
    char *key = s3_key(s, name);
    if (!key)
        return dr_error_set(DR_ENOMEM, "out of memory");
    r.key = key;
    rc = s3_request(s, &r);
    if (rc == DR_ENOTFOUND && r.status == 404 &&
        !strstr(r.resp.data ? r.resp.data : "", "NoSuchBucket")) {
        dr_error_clear();
        rc = 0; /* a missing object is not an error */
    }
    s3_req_free(&r);
    free(key);
    return rc;
}

/* Lists keys under full prefix kp, calling cb with names relative to the store. */
static int s3_list(dr_store *base, const char *prefix, dr_store_list_cb cb, void *ctx)
{
    s3_store *s = (s3_store *)base;
    int rc = 0;
    char *kp = s3_key(s, prefix), *token = NULL;
    dr_buf q = {0};
    if (!kp)
        return dr_error_set(DR_ENOMEM, "out of memory");
    for (;;) {
        s3_req r = {.op = "list", .method = "GET"};
        q.len = 0;
        /* canonical: continuation-token, list-type, max-keys, prefix */
        if (token && ((rc = dr_buf_printf(&q, "continuation-token=")) < 0 ||
                      (rc = s3_uri_encode(&q, token, 0)) < 0 || (rc = dr_buf_printf(&q, "&")) < 0))
            goto out;
        if ((rc = dr_buf_printf(&q, "list-type=2")) < 0)
            goto out;
        if (s->base.list_page > 0 &&
            (rc = dr_buf_printf(&q, "&max-keys=%d", s->base.list_page)) < 0)
            goto out;
        if (*kp &&
            ((rc = dr_buf_printf(&q, "&prefix=")) < 0 || (rc = s3_uri_encode(&q, kp, 0)) < 0))
            goto out;
        r.query = q.data;
        rc = s3_request(s, &r);
        free(token);
        token = NULL;
        if (rc == 0)
            rc = s3_list_parse(r.resp.data, r.resp.len, s->base.url, s->prefix, cb, ctx, &token);
        s3_req_free(&r);
        if (rc != 0 || !token)
            goto out;
    }
out:
    dr_buf_free(&q);
    free(token);
    free(kp);
    return rc;
}

typedef struct abort_ctx {
    s3_store *s;
    const dr_buf *full; /* the asked prefix, store prefix included */
    int64_t cutoff;
    dr_buf q;
    int *count;
} abort_ctx;

/* Aborts one upload of a listing page when it was initiated before the cutoff. */
static int abort_stale(void *ctx, const char *key, const char *id, int64_t initiated_ms,
                       const char *initiated)
{
    abort_ctx *ac = ctx;
    int rc = 0;
    if (initiated_ms > ac->cutoff)
        return 0;
    if (strncmp(key, ac->full->data, ac->full->len) != 0) {
        /* the answer is not trusted: never abort anything outside the asked prefix */
        dr_warn("store '%s': listing of uploads under '%s' named '%.200s': ignored",
                ac->s->base.url, ac->full->data, key);
        return 0;
    }
    s3_req a = {.op = "abort upload of", .method = "DELETE", .key = key};
    ac->q.len = 0;
    if ((rc = dr_buf_printf(&ac->q, "uploadId=")) < 0 || (rc = s3_uri_encode(&ac->q, id, 0)) < 0)
        return rc;
    a.query = ac->q.data;
    rc = s3_request(ac->s, &a);
    if (rc == DR_ENOTFOUND) { /* aborted or completed meanwhile */
        dr_error_clear();
        rc = 0;
    } else if (rc == 0) {
        (*ac->count)++;
        dr_debug("store '%s': aborted stale upload of '%s' (initiated %s)", ac->s->base.url, key,
                 initiated);
    }
    s3_req_free(&a);
    return rc;
}

/* Aborts the multipart uploads under the store's prefix initiated before now - older_than_ms. */
static int s3_cleanup(dr_store *base, const char *prefix, int64_t older_than_ms, int *count)
{
    s3_store *s = (s3_store *)base;
    int rc = 0;
    dr_buf full = {0};
    if ((rc = dr_buf_printf(&full, "%s%s", s->prefix, prefix)) < 0)
        return rc;
    char *kmark = NULL, *umark = NULL;
    dr_buf q = {0};
    abort_ctx ac = {.s = s, .full = &full, .cutoff = dr_wall_ms() - older_than_ms, .count = count};
    *count = 0;
    for (;;) {
        s3_req r = {.op = "list uploads of", .method = "GET"};
        q.len = 0;
        /* canonical: key-marker, prefix, upload-id-marker, uploads */
        if (kmark && ((rc = dr_buf_printf(&q, "key-marker=")) < 0 ||
                      (rc = s3_uri_encode(&q, kmark, 0)) < 0 || (rc = dr_buf_printf(&q, "&")) < 0))
            goto out;
        if (*full.data &&
            ((rc = dr_buf_printf(&q, "prefix=")) < 0 ||
             (rc = s3_uri_encode(&q, full.data, 0)) < 0 || (rc = dr_buf_printf(&q, "&")) < 0))
            goto out;
        if (umark && ((rc = dr_buf_printf(&q, "upload-id-marker=")) < 0 ||
                      (rc = s3_uri_encode(&q, umark, 0)) < 0 || (rc = dr_buf_printf(&q, "&")) < 0))
            goto out;
        if ((rc = dr_buf_printf(&q, "uploads=")) < 0)
            goto out;
        r.query = q.data;
        rc = s3_request(s, &r);
        free(kmark);
        free(umark);
        kmark = umark = NULL;
        if (rc == 0)
            rc = s3_uploads_parse(r.resp.data, r.resp.len, s->base.url, abort_stale, &ac, &kmark,
                                  &umark);
        s3_req_free(&r);
        if (rc < 0 || !kmark)
            goto out;
    }
out:
    dr_buf_free(&q);
    dr_buf_free(&ac.q);
    dr_buf_free(&full);
    free(kmark);
    free(umark);
    return rc;
}

/* ---- open / close ---- */

static void s3_close(dr_store *base)
{
    s3_store *s = (s3_store *)base;
    for (int i = 0; i < s->nidle; i++)
        curl_easy_cleanup(s->idle[i]);
    pthread_mutex_destroy(&s->mu);
    free(s->bucket);
    free(s->prefix);
    free(s->endpoint);
    free(s->sigv4);
    free(s->key_id);
    s3_wipe_free(s->secret);
    s3_wipe_free(s->token_hdr);
    free(s->cacert);
    free(s->base.url);
    free(s);
}

/* Reads key id, secret and token of profile from an AWS credentials file (INI). A missing file
 * is DR_ENOTFOUND (so the caller can try the next place); a file without the profile's keys is
 * DR_EUSAGE. The file's contents never reach a message. */
static int read_creds_file(s3_store *s, const char *path, const char *profile)
{
    int rc = 0;
    char *data = NULL, *id = NULL, *secret = NULL, *token = NULL;
    size_t len = 0;
    /* refused, not warned about, when others may read it or another user owns it */
    if ((rc = dr_fs_read_secret(path, "S3 credentials file", 1 << 20, &data, &len)) < 0)
        goto out;
    if ((rc = s3_creds_parse(data, profile, &id, &secret, &token)) < 0)
        goto out;
    if (!id || !*id || !secret || !*secret) {
        rc = dr_error_set(DR_EUSAGE,
                          "S3 credentials file '%s' has no aws_access_key_id and "
                          "aws_secret_access_key for profile '%s'",
                          path, profile);
        goto out;
    }
    s->key_id = id;
    s->secret = secret;
    id = secret = NULL;
    if (token && *token) {
        size_t tl = strlen(token) + 32;
        if (!(s->token_hdr = malloc(tl))) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(s->token_hdr, tl, "x-amz-security-token: %s", token);
    }
out:
    if (data) {
        dr_secure_zero(data, len);
        free(data);
    }
    s3_wipe_free(id);
    s3_wipe_free(secret);
    s3_wipe_free(token);
    return rc;
}

static int load_creds(s3_store *s, const dr_store_opts *o)
{
    int rc = 0;
    const char *profile = getenv("AWS_PROFILE");
    const char *eid = getenv("AWS_ACCESS_KEY_ID"), *esec = getenv("AWS_SECRET_ACCESS_KEY");
    const char *etok = getenv("AWS_SESSION_TOKEN");
    char path[4096];
    if (!profile || !*profile)
        profile = "default";
    if (o->s3_credentials) {
        rc = read_creds_file(s, o->s3_credentials, profile);
        if (rc == DR_ENOTFOUND)
            rc = dr_error_set(DR_EUSAGE, "S3 credentials file '%s' does not exist",
                              o->s3_credentials);
        return rc;
    }
    if (eid && *eid && esec && *esec) {
        if (!(s->key_id = strdup(eid)) || !(s->secret = strdup(esec)))
            return dr_error_set(DR_ENOMEM, "out of memory");
        if (etok && *etok) {
            size_t tl = strlen(etok) + 32;
            if (!(s->token_hdr = malloc(tl)))
                return dr_error_set(DR_ENOMEM, "out of memory");
            snprintf(s->token_hdr, tl, "x-amz-security-token: %s", etok);
        }
        return 0;
    }
    const char *f = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
    if (f && *f)
        snprintf(path, sizeof path, "%s", f);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.aws/credentials", home);
    else
        path[0] = 0;
    rc = path[0] ? read_creds_file(s, path, profile) : DR_ENOTFOUND;
    if (rc == DR_ENOTFOUND)
        rc = dr_error_set(DR_EUSAGE,
                          "no S3 credentials for store '%s': set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or give a credentials file (--s3-credentials, "
                          "AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials)",
                          s->base.url);
    return rc;
}

static int valid_bucket(const char *b, size_t n)
{
    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-' ||
              b[i] == '.'))
            return 0;
    return 1;
}

static const store_ops s3_ops = {s3_put, s3_get, s3_head, s3_del, s3_list, s3_cleanup, s3_close};

int dr_store_s3_open(const char *url, const char *rest, const dr_store_opts *o, dr_store **out)
{
    int rc = 0;
    s3_store *s = NULL;
    const char *slash = strchr(rest, '/');
    size_t bl = slash ? (size_t)(slash - rest) : strlen(rest);
    dr_buf q = {0};
    if (strchr(rest, '@')) {
        rc = dr_error_set(DR_EUSAGE, "malformed store URL: credentials do not belong in an s3:// "
                                     "URL (use AWS_ACCESS_KEY_ID or a credentials file)");
        goto out;
    }
    if (!valid_bucket(rest, bl)) {
        rc = dr_error_set(DR_EUSAGE,
                          "malformed store URL '%s': want s3://bucket[/prefix] with a bucket name "
                          "of 3-63 characters a-z 0-9 . -",
                          url);
        goto out;
    }
    if (strpbrk(rest, "?#") || (slash && strstr(slash, "//"))) {
        rc = dr_error_set(DR_EUSAGE, "malformed store URL '%s': bad prefix", url);
        goto out;
    }
    if (pthread_once(&init_once, global_init) != 0 || init_rc != CURLE_OK) {
        rc = dr_error_set(DR_EGENERIC, "cannot initialise libcurl");
        goto out;
    }
    if (!(s = calloc(1, sizeof *s))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->base.ops = &s3_ops;
    if (!(s->base.url = strdup(url)) || !(s->bucket = strndup(rest, bl))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    {
        const char *p = slash ? slash + 1 : "";
        size_t pl = strlen(p);
        while (pl && p[pl - 1] == '/')
            pl--;
        if (!(s->prefix = malloc(pl + 2))) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            goto out;
        }
        memcpy(s->prefix, p, pl);
        if (pl)
            s->prefix[pl++] = '/';
        s->prefix[pl] = 0;
    }
    if (!o->s3_endpoint || !*o->s3_endpoint) {
        rc = dr_error_set(DR_EUSAGE, "store '%s' needs an S3 endpoint (--s3-endpoint host:port)",
                          url);
        goto out;
    }
    if (strstr(o->s3_endpoint, "://") || strchr(o->s3_endpoint, '/') ||
        strchr(o->s3_endpoint, '@') || strpbrk(o->s3_endpoint, " \t\r\n")) {
        rc = dr_error_set(DR_EUSAGE,
                          "bad S3 endpoint '%s': want host:port (plain http is an explicit "
                          "option, --s3-insecure-http)",
                          strchr(o->s3_endpoint, '@') ? "(hidden: contains '@')" : o->s3_endpoint);
        goto out;
    }
    const char *region = o->s3_region && *o->s3_region ? o->s3_region : "us-east-1";
    for (const char *p = region; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            rc = dr_error_set(DR_EUSAGE, "bad S3 region '%s'", region);
            goto out;
        }
    }
    size_t sl = strlen(region) + 16;
    if (!(s->endpoint = strdup(o->s3_endpoint)) || !(s->sigv4 = malloc(sl)) ||
        (o->s3_cacert && !(s->cacert = strdup(o->s3_cacert)))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(s->sigv4, sl, "aws:amz:%s:s3", region);
    s->scheme = o->s3_insecure_http ? "http" : "https";
    s->part_size = o->part_size ? o->part_size : 8u << 20;
    if (s->part_size < S3_MIN_PART || s->part_size > (1u << 30)) {
        rc =
            dr_error_set(DR_EUSAGE, "S3 part size %zu out of range (5 MiB to 1 GiB)", s->part_size);
        goto out;
    }
    s->parallel = o->parallel > 0 ? o->parallel : 2;
    if (s->parallel > 64) {
        rc = dr_error_set(DR_EUSAGE, "S3 parallel uploads %d out of range (1 to 64)", s->parallel);
        goto out;
    }
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    s->retries = o->retries > 0 ? o->retries : 5;
    if ((rc = load_creds(s, o)) < 0)
        goto out;
    /* SigV4 never sends the secret key, but a session token travels as it is, in a header */
    if (s->token_hdr && o->s3_insecure_http) {
        rc = dr_error_set(DR_EUSAGE,
                          "refusing to send an S3 session token over plain http to '%s'\nHINT: "
                          "use https (drop --s3-insecure-http), or long-term keys without "
                          "AWS_SESSION_TOKEN",
                          o->s3_endpoint);
        goto out;
    }

    /* one request checks endpoint, credentials and bucket: a list of at most one key */
    {
        s3_req r = {.op = "open store", .method = "GET"};
        if ((rc = dr_buf_printf(&q, "list-type=2&max-keys=1")) < 0)
            goto out;
        if (*s->prefix && ((rc = dr_buf_printf(&q, "&prefix=")) < 0 ||
                           (rc = s3_uri_encode(&q, s->prefix, 0)) < 0))
            goto out;
        r.query = q.data;
        rc = s3_request(s, &r);
        s3_req_free(&r);
        if (rc < 0)
            goto out;
    }
out:
    dr_buf_free(&q);
    if (rc < 0) {
        if (s)
            s3_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
