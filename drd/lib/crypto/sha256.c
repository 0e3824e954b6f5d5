/*
 * SHA-256 on OpenSSL's EVP interface, hex, and the module's one translation of OpenSSL errors
 * (DR_EGENERIC with the queue's reason). Must never put input bytes into an error message.
 */
#include "drd/lib/crypto/crypto.h"
#include "drd/core/core.h"
#include "crypto_int.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>

struct dr_sha256 {
    EVP_MD_CTX *ctx;
};

int dr_crypto_ossl_err(const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return dr_error_set(DR_EGENERIC, "%s: %s", what, e ? buf : "unknown OpenSSL error");
}

int dr_sha256_new(dr_sha256 **out)
{
    dr_sha256 *h = calloc(1, sizeof *h);
    if (!h)
        return dr_error_set(DR_ENOMEM, "out of memory");
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        dr_sha256_free(h);
        return dr_crypto_ossl_err("sha256 init");
    }
    *out = h;
    return 0;
}

int dr_sha256_update(dr_sha256 *h, const void *data, size_t len)
{
    if (len && EVP_DigestUpdate(h->ctx, data, len) != 1)
        return dr_crypto_ossl_err("sha256 update");
    return 0;
}

int dr_sha256_dup(const dr_sha256 *h, dr_sha256 **out)
{
    dr_sha256 *d = calloc(1, sizeof *d);
    if (!d)
        return dr_error_set(DR_ENOMEM, "out of memory");
    d->ctx = EVP_MD_CTX_new();
    if (!d->ctx || EVP_MD_CTX_copy_ex(d->ctx, h->ctx) != 1) {
        dr_sha256_free(d);
        return dr_crypto_ossl_err("sha256 copy");
    }
    *out = d;
    return 0;
}

int dr_sha256_final(dr_sha256 *h, uint8_t digest[32])
{
    unsigned int n = 32;
    if (EVP_DigestFinal_ex(h->ctx, digest, &n) != 1)
        return dr_crypto_ossl_err("sha256 final");
    return 0;
}

void dr_sha256_free(dr_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int dr_sha256_buf(const void *data, size_t len, uint8_t digest[32])
{
    unsigned int n = 32;
    if (EVP_Digest(len ? data : "", len, digest, &n, EVP_sha256(), NULL) != 1)
        return dr_crypto_ossl_err("sha256");
    return 0;
}

void dr_hex(const uint8_t *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = 0;
}
