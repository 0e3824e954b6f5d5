/*
 * The fencing epoch record itself: parse (untrusted bytes: fuzzed by tests/fuzz/fuzz_epoch.c,
 * which compiles this file alone), format, describe, and the rule a stale side applies. No I/O.
 */
#include "drd/lib/epoch/epoch.h"
#include "drd/lib/json/json.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plain(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n || n >= max)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.:", *p))
            return 0;
    return 1;
}

int dr_epoch_parse(const char *text, size_t len, dr_epoch *out)
{
    dr_json *j = NULL;
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (len > DR_EPOCH_MAX_BYTES)
        return dr_error_set(DR_EPROTO, "epoch record: %zu bytes, more than %d", len,
                            DR_EPOCH_MAX_BYTES);
    if ((rc = dr_json_parse(text, len, &j)) < 0)
        return dr_error_wrap(DR_EPROTO, "epoch record");
    const char *primary = dr_json_str(j, "primary"), *cid = dr_json_str(j, "cluster_id"),
               *run = dr_json_str(j, "run");
    if ((rc = dr_json_i64(j, "epoch", &out->epoch)) < 0 || out->epoch < 1) {
        rc = dr_error_set(DR_EPROTO, "epoch record: 'epoch' must be a whole number >= 1");
        goto out;
    }
    if (!primary || !plain(primary, sizeof out->primary)) {
        rc = dr_error_set(DR_EPROTO, "epoch record: 'primary' must be a cluster name");
        goto out;
    }
    char *end = NULL;
    if (!cid || !*cid || strlen(cid) > 16 || strspn(cid, "0123456789abcdef") != strlen(cid)) {
        rc = dr_error_set(DR_EPROTO, "epoch record: 'cluster_id' must be 1 to 16 hex digits");
        goto out;
    }
    out->cluster_id = strtoull(cid, &end, 16);
    if ((rc = dr_json_i64(j, "revision", &out->revision)) < 0 || out->revision < 0 ||
        (rc = dr_json_i64(j, "time_ms", &out->time_ms)) < 0 || out->time_ms < 0) {
        rc = dr_error_set(DR_EPROTO,
                          "epoch record: 'revision' and 'time_ms' must be whole numbers >= 0");
        goto out;
    }
    if (run && run[0] && !plain(run, sizeof out->run)) {
        rc = dr_error_set(DR_EPROTO, "epoch record: 'run' must be a run id");
        goto out;
    }
    snprintf(out->primary, sizeof out->primary, "%s", primary);
    snprintf(out->run, sizeof out->run, "%s", run ? run : "");
out:
    dr_json_free(j);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int dr_epoch_format(const dr_epoch *ep, dr_buf *b)
{
    int rc = dr_buf_printf(b, "{\"epoch\":%" PRId64 ",\"primary\":", ep->epoch);
    if (rc == 0)
        rc = dr_buf_json_str(b, ep->primary, strlen(ep->primary));
    if (rc == 0)
        rc = dr_buf_printf(b,
                           ",\"cluster_id\":\"%" PRIx64 "\",\"revision\":%" PRId64
                           ",\"time_ms\":%" PRId64 ",\"run\":",
                           ep->cluster_id, ep->revision, ep->time_ms);
    if (rc == 0)
        rc = dr_buf_json_str(b, ep->run, strlen(ep->run));
    if (rc == 0)
        rc = dr_buf_printf(b, "}");
    return rc;
}

void dr_epoch_describe(const dr_epoch *ep, char *buf, size_t cap)
{
    if (!ep->epoch)
        snprintf(buf, cap, "epoch 0 (none recorded)");
    else
        snprintf(buf, cap, "epoch %" PRId64 " (primary %s, cluster %" PRIx64 "%s%s)", ep->epoch,
                 ep->primary, ep->cluster_id, ep->run[0] ? ", run " : "", ep->run);
}

void dr_epoch_newest(const dr_epoch *a, const dr_epoch *b, dr_epoch *out)
{
    *out = b->epoch > a->epoch ? *b : *a;
}

int dr_epoch_check_primary(const dr_epoch *newest, const dr_epoch *own, uint64_t cluster_id,
                           const char *who, const char *doing)
{
    char n[256], o[256];
    if (!newest->epoch || newest->cluster_id == cluster_id)
        return 0;
    dr_epoch_describe(newest, n, sizeof n);
    dr_epoch_describe(own, o, sizeof o);
    return dr_error_set(DR_ESTALE,
                        "%s: %s (cluster %" PRIx64 ") is not the primary: %s; %s holds %s\n"
                        "HINT: this side was demoted by a failover; see docs/runbooks.md "
                        "(failback)",
                        doing, who, cluster_id, n, who, o);
}
