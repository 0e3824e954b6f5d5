/*
 * Fuzz target: the Kubernetes encryption prefix of an etcd value (dr_k8s_enc_key,
 * policies/enckeys.c), read from every value of a standby by the check step and of a restored
 * etcd by a drill. Checks: a result is "provider:name", terminated, made of the input's own
 * bytes, and the input starts "k8s:enc:"; counted twice (dr_k8s_enc_counts), the value is one
 * name seen twice exactly when it has one, and the line and JSON forms are terminated.
 */
#include "fuzz.h"
#include "policies/policies.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[64], line[96];
    static dr_k8s_enc_counts c;
    dr_buf b = {0};
    fuzz_quiet();
    int is = dr_k8s_enc_key(data, size, out, sizeof out);
    if (is) {
        if (size < 8 || memcmp(data, "k8s:enc:", 8) != 0 ||
            strnlen(out, sizeof out) >= sizeof out || !strchr(out, ':'))
            abort();
    }
    memset(&c, 0, sizeof c);
    dr_k8s_enc_counts_add(&c, data, size);
    dr_k8s_enc_counts_add(&c, data, size);
    char big[300];
    int named = dr_k8s_enc_key(data, size, big, sizeof big);
    if (c.values != 2 || c.other || c.n != (size_t)named || (named && c.k[0].n != 2) ||
        (named && strcmp(c.k[0].name, big)) || (is && !named))
        abort();
    dr_k8s_enc_counts_line(&c, line, sizeof line);
    if (strnlen(line, sizeof line) >= sizeof line)
        abort();
    if (dr_k8s_enc_counts_json(&c, &b) == 0 && strnlen(b.data, b.len + 1) != b.len)
        abort();
    dr_buf_free(&b);
    return 0;
}
