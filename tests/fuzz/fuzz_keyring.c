/*
 * Fuzz target: the keyring file parser (dr_keyring_load, drd/lib/crypto/keyring.c) on a
 * private (0600) file holding the input. Checks that a loaded ring has its current key.
 */
#include "drd/lib/crypto/crypto.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dr_keyring *k = NULL;
    fuzz_quiet();
    if (dr_keyring_load(fuzz_file(data, size), &k) == 0) {
        const char *cur = dr_keyring_current(k);
        if (!cur || strlen(cur) > DR_KEY_NAME_MAX || !dr_keyring_has(k, cur))
            abort();
        dr_keyring_free(k);
    }
    dr_error_clear();
    return 0;
}
