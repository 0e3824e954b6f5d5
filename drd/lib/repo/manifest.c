/*
 * Object IDs and manifests: the names that sort by revision and the JSON that describes each
 * object. Must never accept a manifest with a missing required field: a restore trusts it.
 */
#include "drd/lib/json/json.h"
#include "drd/lib/repo/repo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *dr_repo_kind_name(dr_repo_kind k)
{
    return k == DR_KIND_FULL ? "full" : "incr";
}

void dr_repo_make_id(dr_repo_kind kind, int64_t rev_start, int64_t rev_end, int64_t time_ms,
                     char id[DR_REPO_ID_MAX])
{
    time_t t = (time_t)(time_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(id, DR_REPO_ID_MAX, "%019" PRId64 "-%019" PRId64 "-%s-%s", rev_start, rev_end,
             dr_repo_kind_name(kind), ts);
}

int dr_repo_parse_id(const char *id, dr_repo_kind *kind, int64_t *rev_start, int64_t *rev_end,
                     int64_t *time_ms)
{
    char k[8], ts[20];
    long long a, b;
    int n = 0;
    size_t len = strlen(id);
    int digits = len > 40 && id[19] == '-' && id[39] == '-';
    for (int i = 0; digits && i < 39; i++)
        digits = i == 19 || (id[i] >= '0' && id[i] <= '9');
    if (!digits || len >= DR_REPO_ID_MAX ||
        sscanf(id, "%19lld-%19lld-%4[a-z]-%16[0-9TZ]%n", &a, &b, k, ts, &n) != 4 || id[n] != 0 ||
        strlen(ts) != 16 || a < 0 || b < a)
        return dr_error_set(DR_EUSAGE, "'%s' is not a snapshot or segment ID", id);
    dr_repo_kind kk;
    if (!strcmp(k, "full"))
        kk = DR_KIND_FULL;
    else if (!strcmp(k, "incr"))
        kk = DR_KIND_INCR;
    else
        return dr_error_set(DR_EUSAGE, "'%s' is not a snapshot or segment ID", id);
    struct tm tm = {0};
    if (!strptime(ts, "%Y%m%dT%H%M%SZ", &tm))
        return dr_error_set(DR_EUSAGE, "'%s' is not a snapshot or segment ID", id);
    if (kind)
        *kind = kk;
    if (rev_start)
        *rev_start = a;
    if (rev_end)
        *rev_end = b;
    if (time_ms)
        *time_ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static int put_str(dr_buf *b, const char *name, const char *v, int comma)
{
    int rc = dr_buf_printf(b, "%s\n  \"%s\": ", comma ? "," : "", name);
    if (rc == 0)
        rc = dr_buf_json_str(b, v, strlen(v));
    return rc;
}

int dr_manifest_to_json(const dr_manifest *m, dr_buf *b)
{
    int rc = 0;
    rc |= dr_buf_printf(b, "{\n  \"format\": %d", m->format ? m->format : DR_REPO_FORMAT);
    rc |= put_str(b, "id", m->id, 1);
    rc |= put_str(b, "kind", dr_repo_kind_name(m->kind), 1);
    rc |= dr_buf_printf(b,
                        ",\n  \"revision\": {\"start\": %" PRId64 ", \"end\": %" PRId64 "}"
                        ",\n  \"created_ms\": %" PRId64,
                        m->rev_start, m->rev_end, m->created_ms);
    char t[40];
    time_t tt = (time_t)(m->created_ms / 1000);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
    rc |= put_str(b, "created", t, 1);
    rc |= put_str(b, "data", m->data, 1);
    rc |= dr_buf_printf(b,
                        ",\n  \"etcd\": {\"cluster_id\": \"%016" PRIx64
                        "\", \"member_id\": \"%016" PRIx64 "\", \"version\": ",
                        m->cluster_id, m->member_id);
    rc |= dr_buf_json_str(b, m->etcd_version, strlen(m->etcd_version));
    rc |= dr_buf_printf(b, ", \"endpoint\": ");
    rc |= dr_buf_json_str(b, m->etcd_endpoint, strlen(m->etcd_endpoint));
    rc |= dr_buf_printf(b, ", \"compact_revision\": %" PRId64 "}", m->compact_revision);
    rc |= dr_buf_printf(b,
                        ",\n  \"plain\": {\"bytes\": %" PRIu64 ", \"sha256\": \"%s\"}"
                        ",\n  \"stored\": {\"bytes\": %" PRIu64 ", \"sha256\": \"%s\"}",
                        m->plain_bytes, m->plain_sha256, m->stored_bytes, m->stored_sha256);
    rc |= put_str(b, "compression", m->compression, 1);
    rc |= put_str(b, "encryption", m->encryption, 1);
    rc |= put_str(b, "key_id", m->key_id, 1);
    rc |= dr_buf_printf(b, ",\n  \"key_count\": %" PRId64, m->key_count);
    if (m->has_hashkv)
        rc |= dr_buf_printf(b, ",\n  \"hashkv\": %" PRIu32, m->hashkv);
    rc |= dr_buf_printf(b, ",\n  \"events\": %" PRId64 ",\n  \"leases\": %" PRId64, m->events,
                        m->leases);
    rc |= dr_buf_printf(b, ",\n  \"labels\": {");
    const char *p = m->labels;
    int first = 1;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq) {
            rc |= dr_buf_printf(b, "%s", first ? "" : ", ");
            rc |= dr_buf_json_str(b, p, (size_t)(eq - p));
            rc |= dr_buf_printf(b, ": ");
            rc |= dr_buf_json_str(b, eq + 1, n - (size_t)(eq - p) - 1);
            first = 0;
        }
        p += n + (comma ? 1 : 0);
    }
    rc |= dr_buf_printf(b, "}");
    rc |= put_str(b, "drd_version", m->drd_version[0] ? m->drd_version : DRD_VERSION, 1);
    rc |= dr_buf_printf(b, "\n}\n");
    return rc ? dr_error_set(DR_ENOMEM, "out of memory") : 0;
}

static int need_str(const dr_json *j, const char *path, char *out, size_t cap)
{
    const char *v = dr_json_str(j, path);
    if (!v)
        return dr_error_set(DR_EPROTO, "manifest: '%s' is missing", path);
    if (strlen(v) >= cap)
        return dr_error_set(DR_EPROTO, "manifest: '%s' is too long", path);
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static int need_i64(const dr_json *j, const char *path, int64_t *out)
{
    int rc = dr_json_i64(j, path, out);
    if (rc < 0)
        return dr_error_wrap(DR_EPROTO, "manifest");
    return 0;
}

static int add_label(void *ctx, const char *k, const char *v)
{
    dr_manifest *m = ctx;
    size_t len = strlen(m->labels);
    snprintf(m->labels + len, sizeof m->labels - len, "%s%s=%s", len ? "," : "", k, v);
    return 0;
}

int dr_manifest_from_json(const char *text, size_t len, dr_manifest *m)
{
    dr_json *j = NULL;
    int rc = dr_json_parse(text, len, &j);
    if (rc < 0)
        return dr_error_wrap(DR_EPROTO, "manifest");
    memset(m, 0, sizeof *m);
    int64_t v = 0;
    char kind[8], hex[24];
    if ((rc = need_i64(j, "format", &v)) < 0)
        goto out;
    m->format = (int)v;
    if (m->format != DR_REPO_FORMAT) {
        rc = dr_error_set(DR_EPROTO, "manifest format %d is not supported (this drd reads %d)",
                          m->format, DR_REPO_FORMAT);
        goto out;
    }
    if ((rc = need_str(j, "id", m->id, sizeof m->id)) < 0 ||
        (rc = need_str(j, "kind", kind, sizeof kind)) < 0 ||
        (rc = need_i64(j, "revision.start", &m->rev_start)) < 0 ||
        (rc = need_i64(j, "revision.end", &m->rev_end)) < 0 ||
        (rc = need_i64(j, "created_ms", &m->created_ms)) < 0 ||
        (rc = need_str(j, "data", m->data, sizeof m->data)) < 0 ||
        (rc = need_str(j, "etcd.version", m->etcd_version, sizeof m->etcd_version)) < 0 ||
        (rc = need_i64(j, "etcd.compact_revision", &m->compact_revision)) < 0 ||
        (rc = need_str(j, "plain.sha256", m->plain_sha256, sizeof m->plain_sha256)) < 0 ||
        (rc = need_str(j, "stored.sha256", m->stored_sha256, sizeof m->stored_sha256)) < 0 ||
        (rc = need_str(j, "compression", m->compression, sizeof m->compression)) < 0 ||
        (rc = need_str(j, "encryption", m->encryption, sizeof m->encryption)) < 0 ||
        (rc = need_str(j, "key_id", m->key_id, sizeof m->key_id)) < 0 ||
        (rc = need_i64(j, "key_count", &m->key_count)) < 0 ||
        (rc = need_i64(j, "events", &m->events)) < 0 ||
        (rc = need_i64(j, "leases", &m->leases)) < 0)
        goto out;
    if (!strcmp(kind, "full"))
        m->kind = DR_KIND_FULL;
    else if (!strcmp(kind, "incr"))
        m->kind = DR_KIND_INCR;
    else {
        rc = dr_error_set(DR_EPROTO, "manifest: unknown kind '%s'", kind);
        goto out;
    }
    if ((rc = need_i64(j, "plain.bytes", &v)) < 0)
        goto out;
    m->plain_bytes = (uint64_t)v;
    if ((rc = need_i64(j, "stored.bytes", &v)) < 0)
        goto out;
    m->stored_bytes = (uint64_t)v;
    if (dr_json_i64(j, "hashkv", &v) == 0) {
        m->has_hashkv = 1;
        m->hashkv = (uint32_t)v;
    }
    dr_error_clear();
    if (need_str(j, "etcd.cluster_id", hex, sizeof hex) == 0)
        m->cluster_id = strtoull(hex, NULL, 16);
    if (need_str(j, "etcd.member_id", hex, sizeof hex) == 0)
        m->member_id = strtoull(hex, NULL, 16);
    need_str(j, "etcd.endpoint", m->etcd_endpoint, sizeof m->etcd_endpoint);
    need_str(j, "drd_version", m->drd_version, sizeof m->drd_version);
    dr_error_clear();
    dr_json_each_str(j, "labels", add_label, m);
    dr_repo_kind pk;
    int64_t a, b;
    if ((rc = dr_repo_parse_id(m->id, &pk, &a, &b, NULL)) < 0 || pk != m->kind ||
        a != m->rev_start || b != m->rev_end) {
        rc = dr_error_set(DR_EPROTO, "manifest: id '%s' does not match its kind and revisions",
                          m->id);
        goto out;
    }
out:
    dr_json_free(j);
    return rc;
}
