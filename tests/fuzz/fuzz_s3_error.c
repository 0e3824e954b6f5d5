/*
 * Fuzz target: S3 error bodies and the small answers read by element name (s3_xml_root_is,
 * s3_xml_text, drd/lib/objstore/s3_parse.c): <Error><Code>, the UploadId of a multipart start,
 * and the timestamps of listings (s3_parse_iso_ms) on the input as text.
 */
#include "drd/lib/objstore/s3_parse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char code[64], id[1024];
    fuzz_quiet();
    (void)s3_xml_root_is((const char *)data, size, "Error");
    if (s3_xml_text((const char *)data, size, "Code", code, sizeof code) == 0 &&
        strlen(code) >= sizeof code)
        abort();
    (void)s3_xml_text((const char *)data, size, "UploadId", id, sizeof id);
    char *t = fuzz_strndup(data, size);
    (void)s3_parse_iso_ms(t);
    free(t);
    dr_error_clear();
    return 0;
}
