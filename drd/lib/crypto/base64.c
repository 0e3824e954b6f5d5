/*
 * Base64 (RFC 4648, with padding) through OpenSSL's encoder, for bytes that go into text files
 * (the divergent values a failback keeps).
 */
#include "drd/lib/crypto/crypto.h"

#include <openssl/evp.h>

int dr_base64_append(dr_buf *b, const void *p, size_t n)
{
    const unsigned char *in = p;
    unsigned char out[4 * 768 / 3 + 1];
    while (n) {
        size_t k = n > 768 ? 768 : n;
        int m = EVP_EncodeBlock(out, in, (int)k);
        int rc = dr_buf_append(b, out, (size_t)m);
        if (rc < 0)
            return rc;
        in += k;
        n -= k;
    }
    return 0;
}
