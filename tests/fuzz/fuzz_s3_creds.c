/*
 * Fuzz target: the AWS credentials file parser (s3_creds_parse, drd/lib/objstore/s3_parse.c)
 * for profiles "default" and "ci". Checks that what it returns was in the file.
 */
#include "drd/lib/objstore/s3_parse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static void check(const uint8_t *data, size_t size, const char *profile)
{
    char *text = fuzz_strndup(data, size), *id, *secret, *token;
    if (s3_creds_parse(text, profile, &id, &secret, &token) != 0)
        abort();
    char *orig = fuzz_strndup(data, size);
    char *got[3] = {id, secret, token};
    for (int i = 0; i < 3; i++)
        if (got[i] && !strstr(orig, got[i]))
            abort();
    free(orig);
    s3_wipe_free(id);
    s3_wipe_free(secret);
    s3_wipe_free(token);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    check(data, size, "default");
    check(data, size, "ci");
    dr_error_clear();
    return 0;
}
