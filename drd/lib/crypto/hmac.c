/*
 * HMAC-SHA256 (S3 SigV4 request signing) on OpenSSL's EVP_MAC interface.
 * Must never put the key or the message into an error message or a log line.
 */
#include "drd/lib/crypto/crypto.h"
#include "crypto_int.h"

#include <openssl/evp.h>

int dr_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32])
{
    size_t n = 0;
    /* OpenSSL wants non-NULL pointers even for empty inputs */
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, klen ? key : "", klen, mlen ? msg : "", mlen,
                   out, 32, &n) ||
        n != 32)
        return dr_crypto_ossl_err("hmac-sha256");
    return 0;
}
