/*
 * s3:// download source: a ranged GET streamed through a bounded buffer.
 *
 * No thread: the reader drives the transfer itself with a curl multi handle. curl's write
 * callback appends to a buffer of BUF_SIZE bytes; when a chunk does not fit it pauses the
 * transfer (CURL_WRITEFUNC_PAUSE: curl keeps that chunk and stops reading the socket, so TCP
 * pushes back on the server), and read() resumes it once the buffer has room again. Memory is
 * BUF_SIZE plus curl's receive buffer, whatever the object's size.
 *
 * A transfer that breaks (connection lost, timeout, 5xx) is resumed with a new ranged GET from
 * the first byte not yet received, up to the store's retry count. dr_store_get returns only once
 * the answer's status is known, so a missing object is DR_ENOTFOUND there, not at the first read.
 *
 * Must never hand out bytes of an error answer as object data.
 */
#include "drd/lib/objstore/s3_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE (1024 * 1024)
#define CURL_BUF (256 * 1024) /* curl's receive buffer: the largest chunk the callback gets */
#define ERR_MAX (64 * 1024)

typedef struct s3_source {
    dr_source base;
    s3_store *st;
    char *key;
    uint64_t off;         /* next byte of the object to receive */
    uint64_t left;        /* bytes still wanted; UINT64_MAX: to the end */
    uint64_t range_start; /* off when the current transfer started */
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    int active;       /* easy is in multi */
    int headers_done; /* the status of the current answer is known */
    long status;
    int paused;
    int done; /* the current transfer ended (result in cc) */
    CURLcode cc;
    int eof;
    int attempts;
    dr_backoff bo;
    char *buf; /* data in [head, head + len) */
    size_t head, len;
    dr_buf errbody; /* body of a non-2xx answer */
} s3_source;

static size_t src_header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    s3_source *r = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
        r->headers_done = 0; /* a new answer (after 100 Continue, say) */
    } else if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        long st = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 200) {
            r->status = st;
            r->headers_done = 1;
        }
    }
    return n;
}

static size_t src_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    s3_source *r = ud;
    size_t n = size * nmemb;
    if (r->status != 200 && r->status != 206) {
        if (r->errbody.len + n <= ERR_MAX && dr_buf_append(&r->errbody, data, n) < 0)
            return 0;
        return n;
    }
    if ((r->left != UINT64_MAX && n > r->left) || (r->status == 200 && r->range_start))
        return 0; /* more than asked for, or the range ignored: CURLE_WRITE_ERROR */
    if (r->head + r->len + n > BUF_SIZE) {
        if (r->len + n > BUF_SIZE) {
            r->paused = 1;
            return CURL_WRITEFUNC_PAUSE; /* curl delivers this chunk again on unpause */
        }
        memmove(r->buf, r->buf + r->head, r->len);
        r->head = 0;
    }
    memcpy(r->buf + r->head + r->len, data, n);
    r->len += n;
    r->off += n;
    if (r->left != UINT64_MAX)
        r->left -= n;
    return n;
}

static void end_transfer(s3_source *r, int keep_handle)
{
    if (r->active) {
        curl_multi_remove_handle(r->multi, r->easy);
        r->active = 0;
    }
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    if (r->easy) {
        if (keep_handle)
            s3_handle_put(r->st, r->easy);
        else
            curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
}

/* Starts a GET of [off, off + left) of the object. */
static int start_transfer(s3_source *r)
{
    int rc = 0;
    char range[64] = "";
    r->attempts++;
    r->headers_done = 0;
    r->status = 0;
    r->paused = 0;
    r->done = 0;
    r->cc = CURLE_OK;
    r->errbuf[0] = 0;
    r->errbody.len = 0;
    r->range_start = r->off;
    if (r->off || r->left != UINT64_MAX) {
        if (r->left != UINT64_MAX)
            snprintf(range, sizeof range, "Range: bytes=%llu-%llu", (unsigned long long)r->off,
                     (unsigned long long)(r->off + r->left - 1));
        else
            snprintf(range, sizeof range, "Range: bytes=%llu-", (unsigned long long)r->off);
    }
    if (!(r->easy = s3_handle_get(r->st)))
        return dr_error_set(DR_ENOMEM, "out of memory");
    if ((rc = s3_setup(r->st, r->easy, "GET", r->key, NULL, S3_EMPTY_SHA256,
                       range[0] ? range : NULL, NULL, &r->hdrs, r->errbuf)) < 0)
        return rc;
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, src_write_cb);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, src_header_cb);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_BUFFERSIZE, (long)CURL_BUF);
    if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK)
        return dr_error_set(DR_EGENERIC, "curl: cannot add transfer");
    r->active = 1;
    return 0;
}

/* Runs the transfer a step: waits (up to 1 s) for the socket, performs, collects an end. */
static int step(s3_source *r)
{
    int running = 0, nmsg = 0;
    CURLMcode mc = curl_multi_perform(r->multi, &running);
    if (mc == CURLM_OK && running && !r->len && !r->paused)
        mc = curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
    if (mc == CURLM_OK)
        mc = curl_multi_perform(r->multi, &running);
    if (mc != CURLM_OK)
        return dr_error_set(DR_EGENERIC, "curl: %s", curl_multi_strerror(mc));
    CURLMsg *m;
    while ((m = curl_multi_info_read(r->multi, &nmsg))) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == r->easy) {
            r->done = 1;
            r->cc = m->data.result;
        }
    }
    return 0;
}

/* Handles the end of a transfer: end of stream, a resumption, or the error. */
static int transfer_ended(s3_source *r)
{
    char code[64] = "";
    long status = r->status;
    CURLcode cc = r->cc;
    if (cc == CURLE_OK && !status)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status == 416) {
        /* the range starts at or past the end: nothing (more) to read */
        end_transfer(r, 1);
        r->eof = 1;
        return 0;
    }
    if (cc == CURLE_OK && (status == 200 || status == 206)) {
        end_transfer(r, 1); /* (shorter than asked when the object ends before off + len) */
        r->eof = 1;
        return 0;
    }
    if (cc == CURLE_OK)
        s3_xml_text(r->errbody.data, r->errbody.len, "Code", code, sizeof code);
    int retry = s3_retryable(cc, status, code) && r->attempts < r->st->retries;
    end_transfer(r, cc == CURLE_OK);
    if (!retry) {
        /* keep what was received: the message names the failure, not the bytes */
        return s3_fail(r->st, "get", r->key, cc, r->errbuf, status, code, r->attempts);
    }
    int64_t wait = dr_backoff_next(&r->bo);
    char why[160];
    s3_why(cc, status, code, why, sizeof why);
    dr_debug("s3: get '%s': attempt %d failed (%s), resuming at byte %llu in %lld ms", r->key,
             r->attempts, why, (unsigned long long)r->off, (long long)wait);
    dr_sleep_ms(wait);
    return start_transfer(r);
}

/* Pumps until data is buffered, the stream ended, or (headers_only) the status is known. */
static int pump(s3_source *r, int headers_only)
{
    int rc = 0;
    while (!r->eof && !r->len) {
        if (headers_only && r->headers_done && (r->status == 200 || r->status == 206))
            break;
        if (r->paused) {
            r->paused = 0;
            curl_easy_pause(r->easy, CURLPAUSE_CONT);
            if (r->len)
                break;
        }
        if ((rc = step(r)) < 0)
            break;
        if (r->done && !r->len && (rc = transfer_ended(r)) < 0)
            break;
    }
    return rc;
}

static int s3_source_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    s3_source *r = (s3_source *)base;
    int rc = 0;
    *n = 0;
    if (!r->len && !r->eof && (rc = pump(r, 0)) < 0)
        return rc;
    size_t k = cap < r->len ? cap : r->len;
    memcpy(buf, r->buf + r->head, k);
    r->head += k;
    r->len -= k;
    if (!r->len)
        r->head = 0;
    *n = k;
    /* room for the largest chunk again: let curl go on while the caller works */
    if (r->paused && BUF_SIZE - r->len >= CURL_BUF) {
        if (r->head)
            memmove(r->buf, r->buf + r->head, r->len), r->head = 0;
        r->paused = 0;
        curl_easy_pause(r->easy, CURLPAUSE_CONT);
    }
    return 0;
}

static void s3_source_free(dr_source *base)
{
    s3_source *r = (s3_source *)base;
    end_transfer(r, 0);
    if (r->multi)
        curl_multi_cleanup(r->multi);
    dr_buf_free(&r->errbody);
    free(r->buf);
    free(r->key);
    free(r);
}

static const dr_source_ops s3_source_ops = {s3_source_read, s3_source_free};

int s3_get(dr_store *base, const char *name, uint64_t off, uint64_t len, dr_source **out)
{
    s3_store *s = (s3_store *)base;
    int rc = 0;
    s3_source *r = calloc(1, sizeof *r);
    if (!r)
        return dr_error_set(DR_ENOMEM, "out of memory");
    r->base.ops = &s3_source_ops;
    r->st = s;
    r->off = off;
    r->left = len ? len : UINT64_MAX;
    s3_backoff_init(&r->bo);
    if (!(r->key = s3_key(s, name)) || !(r->buf = malloc(BUF_SIZE)) ||
        !(r->multi = curl_multi_init())) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = start_transfer(r)) < 0 || (rc = pump(r, 1)) < 0)
        goto out;
out:
    if (rc < 0) {
        s3_source_free(&r->base);
        return rc;
    }
    *out = &r->base;
    return 0;
}
