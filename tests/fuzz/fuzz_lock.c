/*
 * Fuzz target: lock object bodies (repo_lock_parse, drd/lib/repo/lock.c), which any client of
 * the store may write. Checks that the host read back is a terminated string of bounded length.
 */
#include "drd/lib/repo/repo_int.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    repo_lock_info li;
    fuzz_quiet();
    repo_lock_parse((const char *)data, size, &li);
    if (strnlen(li.host, sizeof li.host) >= sizeof li.host)
        abort();
    dr_error_clear();
    return 0;
}
