/*
 * Key counts per Kubernetes resource, by skipping through the keyspace (see kube.h).
 *
 *   cursor = "/registry/" --(first key at or after cursor under the prefix)--> "/registry/pods/a"
 *   --> count "/registry/pods/" --> cursor = prefix end of "/registry/pods/" ("/registry/pods0")
 *   a segment with a dot is a group: the same one level down, "/registry/<group>/<resource>/";
 *   at the top level one window per possible first character (see scan_registry)
 * Must never count a key twice or lose one: other is the total at rev minus the buckets.
 */
#include "drd/lib/kube/kube.h"
#include "drd/core/core.h"

#include <string.h>

#define REGISTRY "/registry/"

size_t dr_kube_resource(const void *key, size_t len, char *out, size_t cap)
{
    const char *k = key;
    size_t pl = strlen(REGISTRY);
    if (len <= pl || memcmp(k, REGISTRY, pl) != 0)
        return 0;
    const char *seg = k + pl, *end = k + len;
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    if (!slash)
        return 0;
    if (memchr(seg, '.', (size_t)(slash - seg))) { /* a group: its next segment too */
        const char *s2 = memchr(slash + 1, '/', (size_t)(end - slash - 1));
        if (!s2)
            return 0;
        slash = s2;
    }
    size_t n = (size_t)(slash - seg);
    if (n >= cap || !dr_key_counts_name_ok(seg, n))
        return 0;
    memcpy(out, seg, n);
    out[n] = 0;
    return n;
}

typedef struct scan {
    dr_etcd *e;
    int64_t rev;
    dr_key_counts *kc;
    int steps;
} scan;

/* The first key in [from, end) at the revision: 1 and *key, or 0 when there is none. */
static int first_key(scan *s, const dr_buf *from, const uint8_t *end, size_t elen, dr_buf *key)
{
    dr_etcd_range_req req = {.key = from->data,
                             .key_len = from->len,
                             .range_end = end,
                             .range_end_len = elen,
                             .limit = 1,
                             .revision = s->rev,
                             .keys_only = 1};
    dr_etcd_range_res res;
    int rc = dr_etcd_range(s->e, &req, &res);
    if (rc < 0)
        return rc;
    key->len = 0;
    if (res.n_kvs && (rc = dr_buf_append(key, res.kvs[0].key, res.kvs[0].key_len)) == 0)
        rc = 1;
    dr_etcd_range_res_free(&res);
    return rc;
}

/* The keys under key[0..slash] (a prefix ending in '/') at the revision. */
static int count_prefix(scan *s, const char *prefix, size_t len, int64_t *n)
{
    dr_buf end = {0}; /* the prefix with its '/' made '0': the first key past all of it */
    int rc = dr_buf_append(&end, prefix, len);
    if (rc < 0)
        return rc;
    end.data[len - 1] = '0';
    dr_etcd_range_req req = {.key = prefix,
                             .key_len = len,
                             .range_end = end.data,
                             .range_end_len = len,
                             .revision = s->rev,
                             .count_only = 1};
    dr_etcd_range_res res;
    if ((rc = dr_etcd_range(s->e, &req, &res)) == 0) {
        *n = res.count;
        dr_etcd_range_res_free(&res);
    }
    dr_buf_free(&end);
    return rc;
}

/* Buckets under the prefix of plen bytes that from starts with ("/registry/", or
 * "/registry/<group>/" with group set), of the keys in [from, end). */
static int scan_range(scan *s, size_t plen, const dr_buf *from, const dr_buf *end, int group)
{
    dr_buf cursor = {0}, key = {0};
    int rc = dr_buf_append(&cursor, from->data, from->len);
    while (rc == 0 && s->kc->n < DR_KEY_COUNTS_MAX && s->steps++ < 4 * DR_KEY_COUNTS_MAX) {
        if ((rc = first_key(s, &cursor, (const uint8_t *)end->data, end->len, &key)) <= 0)
            break;
        rc = 0;
        const char *seg = key.data + plen;
        const char *slash = memchr(seg, '/', key.len - plen);
        size_t n = slash ? (size_t)(slash - seg) : 0, upto = slash ? (size_t)(slash - key.data) : 0;
        cursor.len = 0;
        if (!slash) { /* a key that names no resource: past it alone */
            if ((rc = dr_buf_append(&cursor, key.data, key.len)) == 0)
                rc = dr_buf_append(&cursor, "", 1);
            continue;
        }
        if (dr_key_counts_name_ok(seg, n)) {
            if (!group && memchr(seg, '.', n)) {
                dr_buf gfrom = {0}, gend = {0};
                if ((rc = dr_buf_append(&gfrom, key.data, upto + 1)) == 0 &&
                    (rc = dr_buf_append(&gend, key.data, upto + 1)) == 0) {
                    gend.data[upto] = '0';
                    rc = scan_range(s, upto + 1, &gfrom, &gend, 1);
                }
                dr_buf_free(&gfrom);
                dr_buf_free(&gend);
            } else {
                int64_t c = 0;
                const char *name = key.data + strlen(REGISTRY);
                if ((rc = count_prefix(s, key.data, upto + 1, &c)) == 0)
                    rc = dr_key_counts_add(s->kc, name, (size_t)(slash - name), c);
            }
        }
        /* past the whole prefix (counted, or naming no resource: other) */
        if (rc == 0 && (rc = dr_buf_append(&cursor, key.data, upto + 1)) == 0)
            cursor.data[upto] = '0';
    }
    dr_buf_free(&cursor);
    dr_buf_free(&key);
    return rc < 0 ? rc : 0;
}

/* The top level, one window per first character a resource name may have: etcd 3.4 walks its
 * whole index range for every Range (to count it), so finding the next resource in
 * [cursor, "/registry0") would cost every key after the cursor; within a window it costs only the
 * keys of resources with the same first character. Keys starting otherwise name no resource:
 * they are never visited and count in other. */
static int scan_registry(scan *s)
{
    static const char first[] = "-.0123456789abcdefghijklmnopqrstuvwxyz";
    size_t plen = strlen(REGISTRY);
    dr_buf from = {0}, end = {0};
    int rc = 0;
    for (const char *c = first; rc == 0 && *c && s->kc->n < DR_KEY_COUNTS_MAX; c++) {
        from.len = end.len = 0;
        if ((rc = dr_buf_printf(&from, "%s%c", REGISTRY, *c)) == 0 &&
            (rc = dr_buf_printf(&end, "%s%c", REGISTRY, *c + 1)) == 0)
            rc = scan_range(s, plen, &from, &end, 0);
    }
    dr_buf_free(&from);
    dr_buf_free(&end);
    return rc;
}

int dr_kube_count(dr_etcd *e, int64_t rev, dr_key_counts *kc)
{
    int64_t total = 0;
    scan s = {.e = e, .rev = rev, .kc = kc};
    memset(kc, 0, sizeof *kc);
    int rc = dr_etcd_count_all(e, rev, &total);
    if (rc == 0)
        rc = scan_registry(&s);
    if (rc < 0) {
        dr_key_counts_free(kc);
        return rc;
    }
    kc->other = 0;
    kc->other = total - dr_key_counts_total(kc); /* outside /registry/, or past the caps */
    return 0;
}
