/*
 * drd object store: URL dispatch to the drivers, object name checks, and the whole-object helpers
 * (put_buf, get_buf) built on the streaming calls.
 * Must never put credentials into a message: a URL carrying userinfo is refused without echoing it.
 */
#include "drd/lib/objstore/objstore_int.h"

#include <stdlib.h>
#include <string.h>

int dr_store_open(const char *url, const dr_store_opts *o, dr_store **out)
{
    static const dr_store_opts defaults = {0};
    const char *sep = url ? strstr(url, "://") : NULL;
    *out = NULL;
    if (!o)
        o = &defaults;
    if (!url || !*url)
        return dr_error_set(DR_EUSAGE, "missing store URL (file:///path or s3://bucket/prefix)");
    if (!sep)
        return dr_error_set(
            DR_EUSAGE, "malformed store URL '%s': want file:///path or s3://bucket/prefix", url);
    size_t sl = (size_t)(sep - url);
    const char *rest = sep + 3;
    if (sl == 4 && strncmp(url, "file", 4) == 0)
        return dr_store_file_open(url, rest, o->create, out);
    if (sl == 2 && strncmp(url, "s3", 2) == 0)
        return dr_store_s3_open(url, rest, o, out);
    if (memchr(url, '@', strlen(url)))
        return dr_error_set(DR_EUSAGE, "unknown store URL scheme (want file:// or s3://)");
    return dr_error_set(DR_EUSAGE, "unknown store URL scheme in '%s' (want file:// or s3://)", url);
}

void dr_store_close(dr_store *s)
{
    if (s)
        s->ops->close(s);
}

const char *dr_store_url(const dr_store *s)
{
    return s->url;
}

void dr_store_test_set_list_page(dr_store *s, int n)
{
    s->list_page = n;
}

/* Names are '/'-separated relative paths: no empty, "." or ".." component, no control bytes,
 * and not under ".tmp/" (the file driver's temp dir; refused by both drivers alike). */
static int check_name(const dr_store *s, const char *name)
{
    int rc = 0;
    size_t n = name ? strlen(name) : 0;
    if (!n) {
        rc = dr_error_set(DR_EUSAGE, "empty object name in store '%s'", s->url);
        goto out;
    }
    if (n > 900) {
        rc = dr_error_set(DR_EUSAGE, "object name too long (%zu bytes) in store '%s'", n, s->url);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            rc = dr_error_set(DR_EUSAGE, "object name with a control byte or '\\' in store '%s'",
                              s->url);
            goto out;
        }
    }
    for (const char *p = name;;) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 0 || (cl == 1 && p[0] == '.') || (cl == 2 && p[0] == '.' && p[1] == '.')) {
            rc = dr_error_set(DR_EUSAGE,
                              "invalid object name '%s' (empty, '.' or '..' path component)", name);
            goto out;
        }
        if (p == name && cl == 4 && strncmp(p, ".tmp", 4) == 0) {
            rc = dr_error_set(DR_EUSAGE, "object name '%s' is reserved (.tmp/ holds temp files)",
                              name);
            goto out;
        }
        if (!e)
            break;
        p = e + 1;
    }
out:
    return rc;
}

int dr_store_put(dr_store *s, const char *name, dr_sink **out)
{
    int rc = check_name(s, name);
    *out = NULL;
    if (rc < 0)
        return rc;
    return s->ops->put(s, name, out);
}

int dr_store_put_buf(dr_store *s, const char *name, const void *data, size_t len)
{
    dr_sink *k = NULL;
    int rc = dr_store_put(s, name, &k);
    if (rc < 0)
        goto out;
    if ((rc = dr_sink_write(k, data, len)) < 0)
        goto out;
    rc = dr_sink_finish(k);
out:
    dr_sink_free(k);
    return rc;
}

int dr_store_get(dr_store *s, const char *name, uint64_t off, uint64_t len, dr_source **out)
{
    int rc = check_name(s, name);
    *out = NULL;
    if (rc < 0)
        return rc;
    return s->ops->get(s, name, off, len, out);
}

int dr_store_get_buf(dr_store *s, const char *name, size_t max, char **data, size_t *len)
{
    dr_source *src = NULL;
    dr_buf b = {0};
    char chunk[64 * 1024];
    int rc = dr_store_get(s, name, 0, 0, &src);
    *data = NULL;
    if (len)
        *len = 0;
    if (rc < 0)
        goto out;
    for (;;) {
        size_t n = 0;
        if ((rc = dr_source_read(src, chunk, sizeof chunk, &n)) < 0 || !n)
            break;
        if (b.len + n > max) {
            rc = dr_error_set(DR_EIO, "object '%s' in store '%s' is larger than %zu bytes", name,
                              s->url, max);
            goto out;
        }
        if ((rc = dr_buf_append(&b, chunk, n)) < 0)
            goto out;
    }
    if (rc < 0)
        goto out;
    if ((rc = dr_buf_append(&b, "", 0)) < 0) /* NUL-terminated, also when empty */
        goto out;
    *data = b.data;
    if (len)
        *len = b.len;
    b.data = NULL;
out:
    dr_source_free(src);
    dr_buf_free(&b);
    return rc;
}

int dr_store_head(dr_store *s, const char *name, uint64_t *size)
{
    int rc = check_name(s, name);
    if (rc < 0)
        return rc;
    return s->ops->head(s, name, size);
}

int dr_store_delete(dr_store *s, const char *name)
{
    int rc = check_name(s, name);
    if (rc < 0)
        return rc;
    return s->ops->del(s, name);
}

int dr_store_list(dr_store *s, const char *prefix, dr_store_list_cb cb, void *ctx)
{
    return s->ops->list(s, prefix ? prefix : "", cb, ctx);
}

int dr_store_cleanup(dr_store *s, const char *prefix, int64_t older_than_ms, int *n)
{
    int dummy = 0;
    return s->ops->cleanup(s, prefix ? prefix : "", older_than_ms < 0 ? 0 : older_than_ms,
                           n ? n : &dummy);
}
