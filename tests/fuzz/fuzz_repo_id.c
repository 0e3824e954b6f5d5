/*
 * Fuzz target: object IDs (dr_repo_parse_id, drd/lib/repo/manifest.c), the names a store lists
 * under manifests/ and a user types. Checks that an accepted ID names a range whose own ID
 * parses back to the same kind and revisions, and is exactly the ID drd writes for it.
 */
#include "drd/lib/repo/repo.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *id = fuzz_strndup(data, size);
    dr_repo_kind k, k2;
    int64_t a, b, t, a2, b2;
    fuzz_quiet();
    if (dr_repo_parse_id(id, &k, &a, &b, &t) == 0) {
        char again[DR_REPO_ID_MAX];
        dr_repo_make_id(k, a, b, t, again);
        if (strcmp(again, id) != 0 || dr_repo_parse_id(again, &k2, &a2, &b2, NULL) != 0 ||
            k2 != k || a2 != a || b2 != b)
            abort();
    }
    dr_error_clear();
    free(id);
    return 0;
}
