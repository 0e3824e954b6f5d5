/*
 * Object IDs and manifests: the names that sort by revision and the JSON that describes each
 * object. Must never accept a manifest with a missing required field: a restore trusts it.
 */
#include "drd/lib/json/json.h"
#include "repo_int.h"

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
    char canon[DR_REPO_ID_MAX];
    if (!strptime(ts, "%Y%m%dT%H%M%SZ", &tm))
        return dr_error_set(DR_EUSAGE, "'%s' is not a snapshot or segment ID", id);
    /* only what dr_repo_make_id writes: no year 0025, no February 30 (fuzz_repo_id) */
    dr_repo_make_id(kk, a, b, (int64_t)timegm(&tm) * 1000, canon);
    if (strcmp(canon, id) != 0)
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
    if (m->key_counts) {
        rc |= dr_buf_printf(b, ",\n  \"key_counts\": ");
        rc |= dr_key_counts_json(m->key_counts, b);
    }
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

static int is_hex64(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 64;
}

/* data/<job>-<13 digits ms>-<12 hex>.drd, job in [a-z]: what dr_repo_writer_new names, so a
 * manifest can point at nothing but a data object (never another manifest, lock or prefix). */
static int data_name_ok(const char *d)
{
    if (strncmp(d, "data/", 5) != 0)
        return 0;
    const char *p = d + 5, *q = p;
    while (*q >= 'a' && *q <= 'z')
        q++;
    if (q == p || *q++ != '-')
        return 0;
    for (int i = 0; i < 13; i++, q++)
        if (*q < '0' || *q > '9')
            return 0;
    if (*q++ != '-')
        return 0;
    for (int i = 0; i < 12; i++, q++)
        if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')))
            return 0;
    return strcmp(q, ".drd") == 0;
}

#define MAC_HEAD ",\n  \"mac\": \""
#define MAC_TAIL "\"\n}\n"

int dr_manifest_seal_json(const dr_manifest *m, const dr_keyring *k, dr_buf *b)
{
    int rc = dr_manifest_to_json(m, b);
    if (rc < 0 || strcmp(m->encryption, "none") == 0)
        return rc;
    /* the mac covers everything before its line: the document without its closing "\n}\n" */
    b->len -= strlen("\n}\n");
    uint8_t d[32], mac[32];
    char hex[65];
    if ((rc = dr_sha256_buf(b->data, b->len, d)) < 0 ||
        (rc = dr_keyring_mac(k, m->key_id, d, sizeof d, mac)) < 0)
        return rc;
    dr_hex(mac, 32, hex);
    if (dr_buf_printf(b, MAC_HEAD "%s" MAC_TAIL, hex) < 0)
        return dr_error_set(DR_ENOMEM, "out of memory");
    return 0;
}

/* The mac line, when the text ends in exactly one: sets m->mac and m->body_sha256. */
static int take_mac(const char *text, size_t len, dr_manifest *m)
{
    size_t hl = strlen(MAC_HEAD), tl = strlen(MAC_TAIL), n = hl + 64 + tl;
    m->mac[0] = 0;
    if (len < n || memcmp(text + len - n, MAC_HEAD, hl) != 0 ||
        memcmp(text + len - tl, MAC_TAIL, tl) != 0)
        return 0;
    memcpy(m->mac, text + len - n + hl, 64);
    m->mac[64] = 0;
    if (!is_hex64(m->mac)) {
        m->mac[0] = 0;
        return 0;
    }
    return dr_sha256_buf(text, len - n, m->body_sha256);
}

int dr_manifest_check_mac(const dr_manifest *m, const dr_keyring *k)
{
    if (!m->mac[0])
        return dr_error_set(DR_EAUTH, "%s: the manifest carries no mac (planted or edited?)",
                            m->id);
    uint8_t mac[32];
    char hex[65];
    int rc = dr_keyring_mac(k, m->key_id, m->body_sha256, 32, mac);
    if (rc < 0)
        return dr_error_wrap(rc, "%s", m->id);
    dr_hex(mac, 32, hex);
    if (!dr_crypto_equal(hex, m->mac, 64))
        return dr_error_set(DR_EAUTH,
                            "%s: the manifest fails authentication under key '%s' (planted or "
                            "edited, or a different key of that name)",
                            m->id, m->key_id);
    return 0;
}

int dr_manifest_compare_inner(const dr_manifest *o, const dr_manifest *in)
{
    const char *f = NULL;
    if (in->format != o->format)
        f = "format";
    else if (strcmp(in->id, o->id))
        f = "id";
    else if (in->kind != o->kind)
        f = "kind";
    else if (in->rev_start != o->rev_start || in->rev_end != o->rev_end)
        f = "revision";
    else if (in->created_ms != o->created_ms)
        f = "created_ms";
    else if (strcmp(in->data, o->data))
        f = "data";
    else if (in->cluster_id != o->cluster_id || in->member_id != o->member_id ||
             strcmp(in->etcd_version, o->etcd_version) ||
             strcmp(in->etcd_endpoint, o->etcd_endpoint) ||
             in->compact_revision != o->compact_revision)
        f = "etcd";
    else if (in->plain_bytes != o->plain_bytes || strcmp(in->plain_sha256, o->plain_sha256))
        f = "plain";
    else if (strcmp(in->compression, o->compression))
        f = "compression";
    else if (strcmp(in->encryption, o->encryption))
        f = "encryption";
    else if (strcmp(in->key_id, o->key_id))
        f = "key_id";
    else if (in->key_count != o->key_count)
        f = "key_count";
    else if (in->has_hashkv != o->has_hashkv || in->hashkv != o->hashkv)
        f = "hashkv";
    else if (in->has_key_counts != o->has_key_counts ||
             memcmp(in->key_counts_sha256, o->key_counts_sha256, 32) != 0)
        f = "key_counts";
    else if (in->events != o->events || in->leases != o->leases)
        f = "events";
    else if (strcmp(in->labels, o->labels))
        f = "labels";
    if (!f)
        return 0;
    return dr_error_set(DR_ECHECKSUM,
                        "%s: the manifest in the store differs from the one sealed in the object "
                        "in '%s' (edited manifest?)",
                        o->id, f);
}

static int range_err(const char *field)
{
    return dr_error_set(DR_EPROTO, "manifest: '%s' is out of range", field);
}

int dr_manifest_from_json(const char *text, size_t len, dr_manifest *m)
{
    dr_json *j = NULL;
    memset(m, 0, sizeof *m);
    int rc = dr_json_parse(text, len, &j);
    if (rc < 0)
        return dr_error_wrap(DR_EPROTO, "manifest");
    int64_t v = 0;
    char kind[8], hex[24];
    if ((rc = need_i64(j, "format", &v)) < 0)
        goto out;
    if (v != DR_REPO_FORMAT) {
        rc = dr_error_set(DR_EPROTO, "manifest format %lld is not supported (this drd reads %d)",
                          (long long)v, DR_REPO_FORMAT);
        goto out;
    }
    m->format = (int)v;
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
    if (v < 0) {
        rc = range_err("plain.bytes");
        goto out;
    }
    m->plain_bytes = (uint64_t)v;
    if ((rc = need_i64(j, "stored.bytes", &v)) < 0)
        goto out;
    if (v < 0) {
        rc = range_err("stored.bytes");
        goto out;
    }
    m->stored_bytes = (uint64_t)v;
    if (dr_json_i64(j, "hashkv", &v) == 0) {
        if (v < 0 || v > (int64_t)UINT32_MAX) {
            rc = range_err("hashkv");
            goto out;
        }
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
    const char *bad = NULL;
    int enc = !strcmp(m->encryption, "aes-256-gcm");
    if (m->rev_start < 1 || m->rev_end < m->rev_start)
        bad = "revision";
    else if (m->kind == DR_KIND_FULL && m->rev_start != m->rev_end)
        bad = "revision";
    else if (m->created_ms <= 0 || m->created_ms > 32503680000000LL) /* year 3000 */
        bad = "created_ms";
    else if (!data_name_ok(m->data))
        bad = "data";
    else if (m->compact_revision < -1) /* -1: never compacted (etcd HashKV) */
        bad = "etcd.compact_revision";
    else if (!is_hex64(m->plain_sha256))
        bad = "plain.sha256";
    else if (m->stored_sha256[0] && !is_hex64(m->stored_sha256)) /* "": the sealed inner copy */
        bad = "stored.sha256";
    else if (strcmp(m->compression, "zstd") && strcmp(m->compression, "none"))
        bad = "compression";
    else if (!enc && strcmp(m->encryption, "none"))
        bad = "encryption";
    else if (enc ? !dr_keyring_name_ok(m->key_id) : m->key_id[0] != 0)
        bad = "key_id";
    else if (m->kind == DR_KIND_FULL ? m->key_count < 0 : m->key_count != -1)
        bad = "key_count";
    else if (m->events < 0 || m->leases < 0 || (m->kind == DR_KIND_FULL && m->events))
        bad = "events";
    if (bad) {
        rc = range_err(bad);
        goto out;
    }
    dr_repo_kind pk;
    int64_t a, b, t;
    if ((rc = dr_repo_parse_id(m->id, &pk, &a, &b, &t)) < 0 || pk != m->kind || a != m->rev_start ||
        b != m->rev_end || t != m->created_ms / 1000 * 1000) {
        rc = dr_error_set(DR_EPROTO,
                          "manifest: id '%s' does not match its kind, revisions and time", m->id);
        goto out;
    }
    if ((rc = repo_key_counts_hash(j, m)) < 0)
        goto out;
    rc = take_mac(text, len, m);
out:
    dr_json_free(j);
    return rc;
}
