/*
 * Fuzz target: manifests (drd/lib/repo/manifest.c), the outer manifests/<ID>.json a store lists
 * and the inner one sealed in the container (both read by dr_manifest_from_json), the mac of an
 * outer one checked under the seeds' test keyring, and the input as an ID (dr_repo_parse_id:
 * object names come from the same listing), and the key counts per resource read from it
 * (dr_key_counts_from_manifest, what a drill holds the restored data to). Checks the manifest's
 * promises: an accepted manifest's ID agrees with its kind and revisions, and a manifest equals
 * itself as its own inner copy; accepted key counts have at most DR_KEY_COUNTS_MAX buckets with
 * valid names in order and add up to key_count, and a manifest accepted with key counts gives
 * them back.
 */
#include "drd/lib/repo/repo.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static void check_counts(const uint8_t *data, size_t size, const dr_manifest *m, int parsed)
{
    dr_key_counts kc;
    int rc = dr_key_counts_from_manifest((const char *)data, size, &kc);
    if (parsed && m->has_key_counts && rc != 0)
        abort();
    if (rc != 0)
        return;
    if (kc.n > DR_KEY_COUNTS_MAX || kc.other < 0)
        abort();
    for (size_t i = 0; i < kc.n; i++)
        if (!dr_key_counts_name_ok(kc.v[i].name, strlen(kc.v[i].name)) || kc.v[i].n < 0 ||
            (i && strcmp(kc.v[i - 1].name, kc.v[i].name) >= 0))
            abort();
    if (parsed && dr_key_counts_total(&kc) != m->key_count)
        abort();
    dr_key_counts_free(&kc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dr_manifest m;
    fuzz_quiet();
    int parsed = dr_manifest_from_json((const char *)data, size, &m) == 0;
    check_counts(data, size, &m, parsed);
    if (parsed) {
        dr_repo_kind k;
        int64_t a, b;
        if (dr_repo_parse_id(m.id, &k, &a, &b, NULL) != 0 || k != m.kind || a != m.rev_start ||
            b != m.rev_end || dr_manifest_compare_inner(&m, &m) != 0)
            abort();
        (void)dr_manifest_check_mac(&m, fuzz_keyring());
    }
    char *id = fuzz_strndup(data, size);
    (void)dr_repo_parse_id(id, NULL, NULL, NULL, NULL);
    free(id);
    dr_error_clear();
    return 0;
}
