/*
 * Fuzz target: manifests (drd/lib/repo/manifest.c), the outer manifests/<ID>.json a store lists
 * and the inner one sealed in the container (both read by dr_manifest_from_json), and the ID of
 * what it parsed. Must never accept a manifest whose ID disagrees with its kind and revisions.
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
        dr_buf out = {0};
        if (dr_manifest_to_json(&m, &out) != 0)
            abort();
        dr_buf_free(&out);
    }
    dr_error_clear();
    return 0;
}
