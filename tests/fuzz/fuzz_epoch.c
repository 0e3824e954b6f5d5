/*
 * Fuzz target: fencing epoch records (dr_epoch_parse, drd/lib/epoch), read from the key
 * /drd/epoch of an etcd and from the object drd-epoch of a store, both writable by others.
 * Checks: a record that parses has epoch >= 1 and terminated, bounded names, and formatting it
 * and parsing that gives the same record (what drd writes, it reads back unchanged).
 */
#include "drd/lib/epoch/epoch.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dr_epoch ep, back;
    dr_buf b = {0};
    fuzz_quiet();
    if (dr_epoch_parse((const char *)data, size, &ep) == 0) {
        if (ep.epoch < 1 || strnlen(ep.primary, sizeof ep.primary) >= sizeof ep.primary ||
            strnlen(ep.run, sizeof ep.run) >= sizeof ep.run)
            abort();
        if (dr_epoch_format(&ep, &b) < 0 || dr_epoch_parse(b.data, b.len, &back) < 0 ||
            memcmp(&ep, &back, sizeof ep) != 0)
            abort();
    }
    dr_buf_free(&b);
    dr_error_clear();
    return 0;
}
