/*
 * The API server's encryption keys a keyspace needs: the values under some prefixes read a page
 * at a time at one revision (memory: one page), their k8s:enc:<provider>:v<N>:<key>: prefixes
 * counted (dr_k8s_enc_counts). Shared by drills, the runbook's check step and the daemon.
 */
#include "drd/lib/etcd/etcd.h"
#include "policies/policies.h"
#include "restore.h"

#include <stdlib.h>
#include <string.h>

static int scan_prefix(dr_etcd *e, const char *prefix, int64_t *rev, dr_k8s_enc_counts *c)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    uint8_t *end = malloc(plen + 1);
    size_t end_len = 0;
    dr_buf last = {0};
    int rc = end ? 0 : dr_error_set(DR_ENOMEM, "out of memory");
    if (rc == 0)
        dr_etcd_prefix_end(prefix ? prefix : "", plen, end, &end_len);
    while (rc == 0) {
        dr_etcd_range_req q = {.key = last.len ? (const void *)last.data
                                      : plen   ? (const void *)prefix
                                               : "\0",
                               .key_len = last.len ? last.len
                                          : plen   ? plen
                                                   : 1,
                               .range_end = end,
                               .range_end_len = end_len,
                               .revision = *rev,
                               .limit = DR_ENC_SCAN_PAGE};
        dr_etcd_range_res res;
        if ((rc = dr_etcd_range(e, &q, &res)) < 0)
            break;
        if (!*rev)
            *rev = res.header.revision; /* every further page at the first one's revision */
        for (size_t i = 0; i < res.n_kvs; i++)
            dr_k8s_enc_counts_add(c, res.kvs[i].value, res.kvs[i].value_len);
        int more = res.more && res.n_kvs;
        if (more) {
            last.len = 0;
            rc = dr_buf_append(&last, res.kvs[res.n_kvs - 1].key, res.kvs[res.n_kvs - 1].key_len);
            /* the next page starts just after it: key + NUL is its successor (a page may hold
             * one key when the values are big, so an inclusive start would never move) */
            if (rc == 0)
                rc = dr_buf_append(&last, "", 1);
        }
        dr_etcd_range_res_free(&res);
        if (!more)
            break;
    }
    dr_buf_free(&last);
    free(end);
    return rc;
}

int dr_enc_keys_scan(dr_etcd *e, const char *const *prefixes, size_t n_prefixes, int64_t rev,
                     dr_k8s_enc_counts *c, int64_t *at_rev)
{
    int rc = 0;
    if (!n_prefixes)
        rc = scan_prefix(e, NULL, &rev, c);
    for (size_t i = 0; i < n_prefixes && rc == 0; i++)
        rc = scan_prefix(e, prefixes[i], &rev, c);
    if (rc == 0 && at_rev)
        *at_rev = rev;
    return rc;
}
