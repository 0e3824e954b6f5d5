/*
 * Key counts per Kubernetes resource: the manifest field "key_counts" of a full snapshot (what
 * a drill holds the restored data to), its canonical form and hash, and reading it back.
 * Must never accept counts that do not add up to the manifest's key_count, more buckets than
 * DR_KEY_COUNTS_MAX, or a name a terminal could be fooled by: they come from the store.
 */
#include "drd/lib/json/json.h"
#include "drd/lib/catalog/catalog.h"
#include "repo_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dr_key_counts_name_ok(const char *name, size_t len)
{
    int slashes = 0;
    if (len == 0 || len >= DR_KEY_COUNT_NAME_MAX || name[0] == '/' || name[len - 1] == '/')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '/')
            slashes++;
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return 0;
    }
    return slashes <= 1;
}

/* The index of name, or where it goes (*found 0). */
static size_t find(const dr_key_counts *kc, const char *name, size_t len, int *found)
{
    size_t lo = 0, hi = kc->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(kc->v[mid].name, name, len);
        if (c == 0 && kc->v[mid].name[len] != 0)
            c = 1;
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The room kc->v has for n buckets: 8, 16, 32, ... */
static size_t room(size_t n)
{
    size_t c = 8;
    while (c < n)
        c *= 2;
    return c;
}

int dr_key_counts_add(dr_key_counts *kc, const char *name, size_t len, int64_t n)
{
    int found;
    if (!dr_key_counts_name_ok(name, len)) {
        kc->other += n;
        return 0;
    }
    size_t i = find(kc, name, len, &found);
    if (found) {
        kc->v[i].n += n;
        return 0;
    }
    if (kc->n == DR_KEY_COUNTS_MAX) {
        kc->other += n;
        return 0;
    }
    if (kc->n == 0 || room(kc->n) == kc->n) { /* full: double (256 buckets are 34 KiB) */
        dr_key_count *v = realloc(kc->v, room(kc->n + 1) * sizeof *v);
        if (!v)
            return dr_error_set(DR_ENOMEM, "out of memory");
        kc->v = v;
    }
    memmove(&kc->v[i + 1], &kc->v[i], (kc->n - i) * sizeof *kc->v);
    memcpy(kc->v[i].name, name, len);
    kc->v[i].name[len] = 0;
    kc->v[i].n = n;
    kc->n++;
    return 0;
}

int64_t dr_key_counts_get(const dr_key_counts *kc, const char *name)
{
    int found;
    size_t i = find(kc, name, strlen(name), &found);
    return found ? kc->v[i].n : 0;
}

int64_t dr_key_counts_total(const dr_key_counts *kc)
{
    int64_t t = kc->other;
    for (size_t i = 0; i < kc->n; i++)
        t += kc->v[i].n;
    return t;
}

int dr_key_counts_equal(const dr_key_counts *a, const dr_key_counts *b)
{
    if (a->n != b->n || a->other != b->other)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].n != b->v[i].n || strcmp(a->v[i].name, b->v[i].name) != 0)
            return 0;
    return 1;
}

void dr_key_counts_free(dr_key_counts *kc)
{
    free(kc->v);
    memset(kc, 0, sizeof *kc);
}

int dr_key_counts_json(const dr_key_counts *kc, dr_buf *b)
{
    int rc = dr_buf_printf(b, "{\"resources\": {");
    for (size_t i = 0; i < kc->n; i++)
        rc |= dr_buf_printf(b, "%s\"%s\": %" PRId64, i ? ", " : "", kc->v[i].name, kc->v[i].n);
    rc |= dr_buf_printf(b, "}, \"other\": %" PRId64 "}", kc->other);
    return rc ? dr_error_set(DR_ENOMEM, "out of memory") : 0;
}

/* "name n\n" per bucket in order, then "\nother n\n": names hold no space or newline. */
static int canonical_sha256(const dr_key_counts *kc, uint8_t out[32])
{
    dr_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < kc->n; i++)
        rc |= dr_buf_printf(&b, "%s %" PRId64 "\n", kc->v[i].name, kc->v[i].n);
    rc |= dr_buf_printf(&b, "\nother %" PRId64 "\n", kc->other);
    rc = rc ? dr_error_set(DR_ENOMEM, "out of memory") : dr_sha256_buf(b.data, b.len, out);
    dr_buf_free(&b);
    return rc;
}

int dr_manifest_set_key_counts(dr_manifest *m, const dr_key_counts *kc)
{
    int rc = canonical_sha256(kc, m->key_counts_sha256);
    if (rc == 0) {
        m->key_counts = kc;
        m->has_key_counts = 1;
    }
    return rc;
}

static int add_parsed(void *ctx, const char *key, int64_t n)
{
    dr_key_counts *kc = ctx;
    size_t len = strlen(key);
    int found;
    if (!dr_key_counts_name_ok(key, len) || n < 0 || kc->n == DR_KEY_COUNTS_MAX)
        return dr_error_set(DR_EPROTO, "manifest: 'key_counts.resources' is out of range");
    find(kc, key, len, &found);
    if (found)
        return dr_error_set(DR_EPROTO, "manifest: 'key_counts.resources' names one twice");
    return dr_key_counts_add(kc, key, len, n);
}

/* The key counts of a parsed manifest document j whose key_count is key_count. */
int repo_key_counts_parse(const dr_json *j, int64_t key_count, dr_key_counts *kc)
{
    int64_t other = 0;
    memset(kc, 0, sizeof *kc);
    int rc = dr_json_i64(j, "key_counts.other", &other);
    if (rc == DR_ENOTFOUND) {
        dr_error_clear();
        return DR_ENOTFOUND; /* no message: the field is optional */
    }
    if (rc < 0)
        return dr_error_wrap(DR_EPROTO, "manifest");
    if (other < 0 || key_count < 0)
        rc = dr_error_set(DR_EPROTO, "manifest: 'key_counts' is out of range");
    if (rc == 0 && (rc = dr_json_each_i64(j, "key_counts.resources", add_parsed, kc)) > 0)
        rc = dr_error_set(DR_EPROTO, "manifest: 'key_counts' is malformed");
    if (rc < 0 && rc != DR_EPROTO && rc != DR_ENOMEM)
        rc = dr_error_wrap(DR_EPROTO, "manifest");
    if (rc == 0) {
        kc->other = other;
        /* each count is at most key_count, so the sum cannot overflow before the check fails */
        int64_t sum = other;
        for (size_t i = 0; i < kc->n && sum <= key_count; i++)
            sum = kc->v[i].n > key_count ? key_count + 1 : sum + kc->v[i].n;
        if (sum != key_count)
            rc = dr_error_set(DR_EPROTO, "manifest: 'key_counts' do not add up to 'key_count'");
    }
    if (rc < 0)
        dr_key_counts_free(kc);
    return rc;
}

int repo_key_counts_hash(const dr_json *j, dr_manifest *m)
{
    dr_key_counts kc;
    int rc = repo_key_counts_parse(j, m->key_count, &kc);
    if (rc == DR_ENOTFOUND)
        return 0;
    if (rc == 0 && m->kind != DR_KIND_FULL)
        rc = dr_error_set(DR_EPROTO, "manifest: 'key_counts' in a segment");
    if (rc == 0)
        rc = dr_manifest_set_key_counts(m, &kc);
    m->key_counts = NULL; /* a parsed manifest keeps the hash only */
    dr_key_counts_free(&kc);
    return rc;
}

int dr_key_counts_from_manifest(const char *text, size_t len, dr_key_counts *kc)
{
    dr_json *j = NULL;
    int64_t key_count = -1;
    memset(kc, 0, sizeof *kc);
    int rc = dr_json_parse(text, len, &j);
    if (rc < 0)
        return dr_error_wrap(DR_EPROTO, "manifest");
    if (dr_json_i64(j, "key_count", &key_count) < 0)
        rc = dr_error_set(DR_EPROTO, "manifest: 'key_count' is missing");
    if (rc == 0 && (rc = repo_key_counts_parse(j, key_count, kc)) == DR_ENOTFOUND)
        rc = dr_error_set(DR_ENOTFOUND, "the manifest records no key counts");
    dr_json_free(j);
    return rc;
}

typedef struct text_ctx {
    char *text;
} text_ctx;

static int take_text(void *ctx, const dr_catalog_entry *e)
{
    text_ctx *t = ctx;
    free(t->text);
    t->text = strdup(e->manifest);
    return t->text ? 0 : dr_error_set(DR_ENOMEM, "out of memory");
}

/* Reads the counts from text and checks them against m's hash. */
static int counts_of(const dr_manifest *m, const char *text, dr_key_counts *kc)
{
    uint8_t sha[32];
    int rc = dr_key_counts_from_manifest(text, strlen(text), kc);
    if (rc == 0 && (rc = canonical_sha256(kc, sha)) == 0 &&
        memcmp(sha, m->key_counts_sha256, sizeof sha) != 0)
        rc = dr_error_set(DR_ECHECKSUM,
                          "%s: the key counts read back differ from the manifest's (an edited "
                          "manifest or catalog?)",
                          m->id);
    if (rc < 0)
        dr_key_counts_free(kc);
    return rc;
}

int dr_repo_key_counts(dr_repo *r, const dr_manifest *m, dr_key_counts *kc)
{
    text_ctx t = {NULL};
    dr_manifest other;
    memset(kc, 0, sizeof *kc);
    if (!m->has_key_counts)
        return dr_error_set(DR_ENOTFOUND, "%s records no key counts", m->id);
    /* the catalog's copy; when it has none or another (a cache out of date), the store's:
     * either way held to m's hash */
    int rc = dr_catalog_get(r->cat, m->id, take_text, &t);
    if (rc == 0)
        rc = counts_of(m, t.text, kc);
    if (rc < 0) {
        free(t.text);
        t.text = NULL;
        dr_error_clear();
        rc = repo_read_manifest(r, m->id, &other, &t.text);
        if (rc == 0)
            rc = counts_of(m, t.text, kc);
    }
    if (rc < 0 && !strstr(dr_error_msg(), m->id))
        dr_error_wrap(rc, "%s", m->id);
    free(t.text);
    return rc;
}
