/*
 * Fuzz target: manifests (drd/lib/repo/manifest.c), the outer manifests/<ID>.json a store lists
 * and the inner one sealed in the container (both read by dr_manifest_from_json), the mac of an
 * outer one checked under the seeds' test keyring, and the input as an ID (dr_repo_parse_id:
 * object names come from the same listing). Checks the manifest's promises: an accepted
 * manifest's ID agrees with its kind and revisions, and a manifest equals itself as its own
 * inner copy.
 */
#include "drd/lib/repo/repo.h"
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dr_manifest m;
    fuzz_quiet();
    if (dr_manifest_from_json((const char *)data, size, &m) == 0) {
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
