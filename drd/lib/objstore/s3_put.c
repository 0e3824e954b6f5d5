/*
 * s3:// upload sink: streaming multipart upload with bounded part buffers.
 *
 * The writer fills a part buffer; when it is full and more bytes come, the buffer goes to a queue
 * that `parallel` upload threads drain (each part is hashed, signed and PUT with retries from its
 * buffer, which returns to the free list only after its last attempt), and the writer goes on
 * filling the next free buffer. So filling overlaps uploading, and memory is at most
 * part_size * (parallel + 1). An object that never fills one part is sent as one PUT (with
 * If-None-Match: *) and needs no upload threads; its buffer grows as bytes come.
 *
 * States:
 *   OPEN --write fills a part, more comes--> (multipart starts: CreateMultipartUpload, threads)
 *   OPEN --finish--> FINISHED (single PUT, or last part + wait + CompleteMultipartUpload)
 *   OPEN --any failure--> FAILED (first error kept; every later call returns it)
 *   free in OPEN or FAILED: threads stopped (in-flight parts cancelled), AbortMultipartUpload.
 *   A killed process leaves an incomplete upload: invisible as an object, removed by cleanup.
 *
 * Immutability: put refuses a name that exists (HEAD), and finish checks again before
 * completing; S3 cannot make this atomic for multipart uploads, so callers use unique names.
 *
 * Must never re-send a part whose buffer was given back, or complete an upload with a part
 * missing.
 */
#include "drd/lib/objstore/s3_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_OPEN, ST_FINISHED, ST_FAILED };

typedef struct job {
    char *buf;
    size_t len;
    int num;
} job;

typedef struct s3_sink {
    dr_sink base;
    s3_store *st;
    char *key;
    char what[1100]; /* s3://bucket/key, for messages */
    size_t part_size;
    int state;
    uint64_t total;

    char *cur; /* the buffer being filled (NULL: none) */
    size_t cur_len, cur_cap;
    int next_part; /* number of the next part to queue, from 1 */
    char *upload_id;

    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* a job was queued, or stop */
    pthread_cond_t cv_done; /* a buffer came back */
    int nbufs, max_bufs;    /* allocated buffers (cur included), at most parallel + 1 */
    char **free_bufs;
    int nfree;
    job *queue; /* ring of max_bufs jobs */
    int qhead, qlen;
    int inflight; /* queued or being uploaded */
    char **etags; /* by part number - 1 */
    int etags_cap;
    pthread_t *threads;
    int nthreads;
    int stop;
    atomic_int abort;
    int err; /* first failure, with its message */
    char errmsg[1024];
} s3_sink;

/* Records the current thread's error as the sink's first failure. Call with mu held. */
static void record_err_locked(s3_sink *k, int rc)
{
    if (!k->err) {
        k->err = rc;
        snprintf(k->errmsg, sizeof k->errmsg, "%s", dr_error_msg());
    }
}

static int fail(s3_sink *k, int rc)
{
    pthread_mutex_lock(&k->mu);
    record_err_locked(k, rc);
    rc = k->err;
    pthread_mutex_unlock(&k->mu);
    k->state = ST_FAILED;
    return dr_error_set(rc, "%s", k->errmsg);
}

static int upload_part(s3_sink *k, const job *j, char *etag, size_t cap)
{
    dr_buf q = {0};
    char op[48];
    int rc;
    snprintf(op, sizeof op, "upload part %d of", j->num);
    s3_req r = {.op = op,
                .method = "PUT",
                .key = k->key,
                .body = j->buf,
                .body_len = j->len,
                .upload = 1,
                .abort = &k->abort};
    /* canonical: partNumber, uploadId */
    if ((rc = dr_buf_printf(&q, "partNumber=%d&uploadId=", j->num)) < 0 ||
        (rc = s3_uri_encode(&q, k->upload_id, 0)) < 0)
        goto out;
    r.query = q.data;
    if ((rc = s3_request(k->st, &r)) < 0)
        goto out;
    if (!r.etag[0] || strlen(r.etag) >= cap) {
        rc = dr_error_set(DR_EPROTO, "cannot upload part %d of '%s': no ETag in the answer", j->num,
                          k->what);
        goto out;
    }
    snprintf(etag, cap, "%s", r.etag);
out:
    s3_req_free(&r);
    dr_buf_free(&q);
    return rc;
}

static void *worker(void *arg)
{
    s3_sink *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->qlen && !k->stop)
            pthread_cond_wait(&k->cv_work, &k->mu);
        if (!k->qlen)
            break;
        job j = k->queue[k->qhead];
        k->qhead = (k->qhead + 1) % k->max_bufs;
        k->qlen--;
        int skip = k->err || atomic_load(&k->abort);
        pthread_mutex_unlock(&k->mu);

        char etag[128] = "";
        int rc = skip ? 0 : upload_part(k, &j, etag, sizeof etag);

        pthread_mutex_lock(&k->mu);
        if (rc < 0) {
            record_err_locked(k, rc);
            atomic_store(&k->abort, 1); /* the object is lost: cancel the other parts */
        } else if (!skip && !(k->etags[j.num - 1] = strdup(etag))) {
            record_err_locked(k, dr_error_set(DR_ENOMEM, "out of memory"));
        }
        k->free_bufs[k->nfree++] = j.buf;
        k->inflight--;
        pthread_cond_broadcast(&k->cv_done);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* A free part buffer for the writer (waits while all are in flight). */
static int take_buf(s3_sink *k)
{
    int rc = 0;
    pthread_mutex_lock(&k->mu);
    while (!k->nfree && k->nbufs >= k->max_bufs && !k->err)
        pthread_cond_wait(&k->cv_done, &k->mu);
    if (k->err) {
        rc = k->err;
    } else if (k->nfree) {
        k->cur = k->free_bufs[--k->nfree];
        k->cur_cap = k->part_size;
    } else if (!(k->cur = malloc(k->part_size))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory for a %zu-byte part buffer", k->part_size);
        record_err_locked(k, rc);
    } else {
        k->nbufs++;
        k->cur_cap = k->part_size;
    }
    pthread_mutex_unlock(&k->mu);
    k->cur_len = 0;
    return rc < 0 ? fail(k, rc) : 0;
}

static int start_upload(s3_sink *k)
{
    int rc = 0;
    char id[1024];
    s3_req r = {
        .op = "start upload of", .method = "POST", .key = k->key, .query = "uploads=", .upload = 1};
    if ((rc = s3_request(k->st, &r)) < 0)
        goto out;
    if (s3_xml_text(r.resp.data, r.resp.len, "UploadId", id, sizeof id) < 0 || !id[0]) {
        rc = dr_error_set(DR_EPROTO, "cannot start upload of '%s': no UploadId in the answer",
                          k->what);
        goto out;
    }
    if (!(k->upload_id = strdup(id))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    k->nthreads = k->st->parallel;
    if (!(k->threads = calloc((size_t)k->nthreads, sizeof *k->threads))) {
        k->nthreads = 0;
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < k->nthreads; i++) {
        if (pthread_create(&k->threads[i], NULL, worker, k) != 0) {
            k->nthreads = i;
            rc = dr_error_set(DR_EGENERIC, "cannot start upload thread");
            goto out;
        }
    }
    dr_debug("s3: multipart upload of '%s' started", k->what);
out:
    s3_req_free(&r);
    return rc;
}

/* Queues the current buffer as the next part. */
static int queue_part(s3_sink *k)
{
    int rc = 0;
    if (k->next_part > S3_MAX_PARTS) {
        rc = dr_error_set(
            DR_EINVAL, "cannot put '%s': larger than %d parts of %zu bytes (raise the part size)",
            k->what, S3_MAX_PARTS, k->part_size);
        return fail(k, rc);
    }
    if (!k->upload_id && (rc = start_upload(k)) < 0)
        return fail(k, rc);
    pthread_mutex_lock(&k->mu);
    if (k->next_part > k->etags_cap) {
        int nc = k->etags_cap ? k->etags_cap * 2 : 64;
        char **ne = realloc(k->etags, (size_t)nc * sizeof *ne);
        if (!ne) {
            rc = dr_error_set(DR_ENOMEM, "out of memory");
            record_err_locked(k, rc);
        } else {
            memset(ne + k->etags_cap, 0, (size_t)(nc - k->etags_cap) * sizeof *ne);
            k->etags = ne;
            k->etags_cap = nc;
        }
    }
    if (rc == 0) {
        k->queue[(k->qhead + k->qlen) % k->max_bufs] = (job){k->cur, k->cur_len, k->next_part++};
        k->qlen++;
        k->inflight++;
        k->cur = NULL;
        k->cur_len = k->cur_cap = 0;
        pthread_cond_signal(&k->cv_work);
    }
    pthread_mutex_unlock(&k->mu);
    return rc < 0 ? fail(k, rc) : 0;
}

static int check_state(s3_sink *k)
{
    if (k->state == ST_FAILED)
        return dr_error_set(k->err ? k->err : DR_EIO, "%s", k->err ? k->errmsg : "writer failed");
    if (k->state == ST_FINISHED)
        return dr_error_set(DR_EIO, "cannot write '%s': writer already finished", k->what);
    return 0;
}

static int s3_sink_write(dr_sink *base, const void *data, size_t len)
{
    s3_sink *k = (s3_sink *)base;
    const char *p = data;
    int rc = check_state(k);
    if (rc < 0)
        return rc;
    while (len) {
        if (k->cur && k->cur_len == k->part_size && (rc = queue_part(k)) < 0)
            return rc;
        if (!k->cur && (rc = take_buf(k)) < 0)
            return rc;
        size_t n = k->part_size - k->cur_len;
        if (n > len)
            n = len;
        if (k->cur_len + n > k->cur_cap) {
            /* the first buffer grows as bytes come: small objects take little memory */
            size_t nc = k->cur_cap * 2;
            while (nc < k->cur_len + n)
                nc *= 2;
            if (nc > k->part_size)
                nc = k->part_size;
            char *nb = realloc(k->cur, nc);
            if (!nb)
                return fail(k, dr_error_set(DR_ENOMEM, "out of memory"));
            k->cur = nb;
            k->cur_cap = nc;
        }
        memcpy(k->cur + k->cur_len, p, n);
        k->cur_len += n;
        k->total += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* DR_EIO when the object exists, 0 when it does not, another code when that is unknown. */
static int check_absent(s3_sink *k)
{
    s3_req r = {.op = "put", .method = "HEAD", .key = k->key};
    int rc = s3_request(k->st, &r);
    s3_req_free(&r);
    if (rc == 0)
        return dr_error_set(DR_EIO, "cannot put '%s': already exists (objects are immutable)",
                            k->what);
    if (rc == DR_ENOTFOUND) {
        dr_error_clear();
        return 0;
    }
    return rc;
}

static int complete(s3_sink *k)
{
    int rc = 0;
    dr_buf body = {0};
    s3_req r = {.op = "complete upload of",
                .method = "POST",
                .key = k->key,
                .upload = 1,
                .ctype = "application/xml",
                .body_error = 1};
    dr_buf q = {0};
    if ((rc = dr_buf_printf(&body, "<CompleteMultipartUpload>")) < 0)
        goto out;
    for (int i = 0; i < k->next_part - 1; i++) {
        if (!k->etags[i]) {
            rc = dr_error_set(DR_EPROTO, "cannot complete upload of '%s': part %d missing", k->what,
                              i + 1);
            goto out;
        }
        if ((rc = dr_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
                                i + 1, k->etags[i])) < 0)
            goto out;
    }
    if ((rc = dr_buf_printf(&body, "</CompleteMultipartUpload>")) < 0 ||
        (rc = dr_buf_printf(&q, "uploadId=")) < 0 || (rc = s3_uri_encode(&q, k->upload_id, 0)) < 0)
        goto out;
    r.query = q.data;
    r.body = body.data;
    r.body_len = body.len;
    rc = s3_request(k->st, &r);
    if (rc == DR_ENOTFOUND && strstr(r.resp.data ? r.resp.data : "", "NoSuchUpload")) {
        /* an attempt whose answer was lost may have completed it: then the object is there */
        uint64_t size = 0;
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", dr_error_msg());
        if (k->st->base.ops->head(&k->st->base, k->key + strlen(k->st->prefix), &size) == 0 &&
            size == k->total) {
            dr_error_clear();
            rc = 0;
        } else {
            rc = dr_error_set(DR_ENOTFOUND, "%s", saved);
        }
    }
out:
    s3_req_free(&r);
    dr_buf_free(&body);
    dr_buf_free(&q);
    return rc;
}

static void stop_threads(s3_sink *k, int cancel)
{
    pthread_mutex_lock(&k->mu);
    k->stop = 1;
    if (cancel)
        atomic_store(&k->abort, 1);
    pthread_cond_broadcast(&k->cv_work);
    pthread_mutex_unlock(&k->mu);
    for (int i = 0; i < k->nthreads; i++)
        pthread_join(k->threads[i], NULL);
    k->nthreads = 0;
}

static int s3_sink_finish(dr_sink *base)
{
    s3_sink *k = (s3_sink *)base;
    int rc = check_state(k);
    if (rc < 0)
        return rc;
    if (!k->upload_id) {
        /* smaller than one part: a single PUT, refused by servers that know If-None-Match when
         * the name exists */
        s3_req r = {.op = "put",
                    .method = "PUT",
                    .key = k->key,
                    .body = k->cur,
                    .body_len = k->cur_len,
                    .upload = 1,
                    .hdr = "If-None-Match: *"};
        rc = s3_request(k->st, &r);
        s3_req_free(&r);
        if (rc < 0)
            return fail(k, rc);
        k->state = ST_FINISHED;
        return 0;
    }
    if (k->cur && k->cur_len && (rc = queue_part(k)) < 0)
        return rc;
    pthread_mutex_lock(&k->mu);
    while (k->inflight)
        pthread_cond_wait(&k->cv_done, &k->mu);
    rc = k->err;
    pthread_mutex_unlock(&k->mu);
    if (rc < 0)
        return fail(k, rc);
    stop_threads(k, 0);
    if ((rc = check_absent(k)) < 0 || (rc = complete(k)) < 0)
        return fail(k, rc);
    k->state = ST_FINISHED;
    dr_debug("s3: put '%s' (%llu bytes, %d parts)", k->what, (unsigned long long)k->total,
             k->next_part - 1);
    return 0;
}

static void s3_sink_free(dr_sink *base)
{
    s3_sink *k = (s3_sink *)base;
    if (k->threads)
        stop_threads(k, k->state != ST_FINISHED);
    if (k->state != ST_FINISHED && k->upload_id) {
        /* keep the caller's error: aborting is housekeeping */
        char saved[1024];
        int code = dr_error_code();
        snprintf(saved, sizeof saved, "%s", dr_error_msg());
        dr_buf q = {0};
        s3_req r = {.op = "abort upload of", .method = "DELETE", .key = k->key};
        if (dr_buf_printf(&q, "uploadId=") == 0 && s3_uri_encode(&q, k->upload_id, 0) == 0) {
            r.query = q.data;
            if (s3_request(k->st, &r) < 0)
                dr_warn("%s (dr_store_cleanup removes it later)", dr_error_msg());
        }
        s3_req_free(&r);
        dr_buf_free(&q);
        if (code)
            dr_error_set(code, "%s", saved);
        else
            dr_error_clear();
    }
    for (int i = 0; i < k->nfree; i++)
        free(k->free_bufs[i]);
    for (int i = 0; i < k->qlen; i++)
        free(k->queue[(k->qhead + i) % k->max_bufs].buf);
    for (int i = 0; i < k->etags_cap; i++)
        free(k->etags[i]);
    free(k->etags);
    free(k->cur);
    free(k->free_bufs);
    free(k->queue);
    free(k->threads);
    free(k->upload_id);
    free(k->key);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv_work);
    pthread_cond_destroy(&k->cv_done);
    free(k);
}

static const dr_sink_ops s3_sink_ops = {s3_sink_write, s3_sink_finish, s3_sink_free};

int s3_put(dr_store *base, const char *name, dr_sink **out)
{
    s3_store *s = (s3_store *)base;
    int rc = 0;
    s3_sink *k = calloc(1, sizeof *k);
    if (!k)
        return dr_error_set(DR_ENOMEM, "out of memory");
    k->base.ops = &s3_sink_ops;
    k->st = s;
    k->part_size = s->part_size;
    k->max_bufs = s->parallel + 1;
    k->next_part = 1;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv_work, NULL);
    pthread_cond_init(&k->cv_done, NULL);
    atomic_init(&k->abort, 0);
    if (!(k->key = s3_key(s, name)) ||
        !(k->free_bufs = calloc((size_t)k->max_bufs, sizeof *k->free_bufs)) ||
        !(k->queue = calloc((size_t)k->max_bufs, sizeof *k->queue))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    s3_display(s, k->key, k->what, sizeof k->what);
    if ((rc = check_absent(k)) < 0)
        goto out;
    /* the first buffer starts small and grows up to a part */
    k->cur_cap = 64 * 1024 < k->part_size ? 64 * 1024 : k->part_size;
    if (!(k->cur = malloc(k->cur_cap))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    k->nbufs = 1;
out:
    if (rc < 0) {
        k->state = ST_FINISHED; /* nothing to abort */
        s3_sink_free(&k->base);
        return rc;
    }
    *out = &k->base;
    return 0;
}
