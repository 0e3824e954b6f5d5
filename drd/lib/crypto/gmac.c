/*
 * GMAC as a keyed universal hash (crypto.h): AES-128-GCM over additional data only, a zero IV,
 * one cipher context reset for each input.
 * Must never log or keep the key outside the OpenSSL context (the caller's copy is its own).
 */
#include "drd/lib/crypto/crypto.h"
#include "crypto_int.h"

#include <openssl/evp.h>
#include <stdlib.h>

struct dr_gmac {
    EVP_CIPHER_CTX *ctx;
};

static const uint8_t zero_iv[12];

void dr_gmac_free(dr_gmac *g)
{
    if (!g)
        return;
    EVP_CIPHER_CTX_free(g->ctx);
    free(g);
}

int dr_gmac_new(const uint8_t key[16], dr_gmac **out)
{
    dr_gmac *g = calloc(1, sizeof *g);
    *out = NULL;
    if (!g)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if (!(g->ctx = EVP_CIPHER_CTX_new()) ||
        EVP_EncryptInit_ex(g->ctx, EVP_aes_128_gcm(), NULL, key, zero_iv) != 1) {
        dr_gmac_free(g);
        return dr_crypto_ossl_err("gmac init");
    }
    *out = g;
    return 0;
}

int dr_gmac_update(dr_gmac *g, const void *data, size_t len)
{
    while (len) {
        int n = len > (1u << 30) ? 1 << 30 : (int)len, outl = 0;
        if (EVP_EncryptUpdate(g->ctx, NULL, &outl, data, n) != 1)
            return dr_crypto_ossl_err("gmac update");
        data = (const uint8_t *)data + n;
        len -= (size_t)n;
    }
    return 0;
}

int dr_gmac_final(dr_gmac *g, uint8_t tag[16])
{
    uint8_t none[16];
    int outl = 0;
    if (EVP_EncryptFinal_ex(g->ctx, none, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1 ||
        EVP_EncryptInit_ex(g->ctx, NULL, NULL, NULL, zero_iv) != 1)
        return dr_crypto_ossl_err("gmac final");
    return 0;
}
