/*
 * Fuzz target: one page of an S3 ListMultipartUploads answer (s3_uploads_parse,
 * drd/lib/objstore/s3_parse.c), what a cleanup reads before it aborts stale uploads. Checks that
 * a truncated page comes with at least one marker (or the next request would repeat it).
 */
#include "drd/lib/objstore/s3_parse.h"
#include "fuzz.h"

#include <stdlib.h>

static int each(void *ctx, const char *key, const char *id, int64_t ms, const char *initiated)
{
    (void)ms;
    (*(int *)ctx)++;
    if (!key || !id || !initiated)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *km = NULL, *um = NULL;
    int n = 0;
    fuzz_quiet();
    if (s3_uploads_parse((const char *)data, size, "s3://fuzz/", each, &n, &km, &um) == 0 && km &&
        !*km && !*um)
        abort();
    free(km);
    free(um);
    dr_error_clear();
    return 0;
}
