/*
 * Fuzz target: the daemon's config (drd run --config): YAML read by drd/lib/yaml into a tree,
 * then the model of policies/config.c (keys, types, schedules, references). A config is written
 * by an operator, but it is a parser of bytes from a file all the same. Checks that a refusal
 * names the file with a position ("fuzz.yaml:line:column: ..."), as every config error must.
 */
#include "drd/lib/yaml/yaml.h"
#include "fuzz.h"
#include "policies/policies.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dr_yaml_doc *doc = NULL;
    dr_conf *c = NULL;
    fuzz_quiet();
    int rc = dr_yaml_parse("fuzz.yaml", (const char *)data, size, &doc);
    if (rc == 0)
        rc = dr_conf_from_yaml(doc, &c); /* takes doc, also on error */
    if (rc == DR_EUSAGE && strncmp(dr_error_msg(), "fuzz.yaml:", 10) != 0)
        abort(); /* a config error without its place */
    dr_conf_free(c);
    dr_error_clear();
    return 0;
}
