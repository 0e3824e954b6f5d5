/*
 * Cryptographically secure random bytes from OpenSSL's DRBG (seeded from the kernel).
 * Must never fall back to a weaker generator: a failure is an error.
 */
#include "drd/lib/crypto/crypto.h"
#include "crypto_int.h"

#include <limits.h>
#include <openssl/rand.h>

int dr_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        int k = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(p, k) != 1)
            return dr_crypto_ossl_err("random bytes");
        p += k;
        n -= (size_t)k;
    }
    return 0;
}
