/*
 * Fuzz target: manifests (drd/lib/repo/manifest.c), the outer manifests/<ID>.json a store lists
 * and the inner one sealed in the container (both read by dr_manifest_from_json), and the input
 * as an ID (dr_repo_parse_id: object names come from the same listing). Checks the manifest's
 * promise: an accepted manifest's ID agrees with its kind and revisions.
 */
#include "drd/lib/repo/repo.h"
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dr_manifest m;
    fuzz_quiet();
    if (dr_manifest_from_json((const char *)data, size, &m) == 0) {
        dr_repo_kind k;
        int64_t a, b;
        if (dr_repo_parse_id(m.id, &k, &a, &b, NULL) != 0 || k != m.kind || a != m.rev_start ||
            b != m.rev_end)
            abort();
    }
    char *id = fuzz_strndup(data, size);
    (void)dr_repo_parse_id(id, NULL, NULL, NULL, NULL);
    free(id);
    dr_error_clear();
    return 0;
}
