/*
 * Manifest authentication: an HMAC-SHA256 under a key derived from a named master key, so that
 * whoever can write to a store but holds no master key cannot forge or edit what a reader
 * decides on (which object to restore, which to keep or delete).
 * Must never use a master key directly as the MAC key (it wraps data keys), and never leave the
 * derived key in memory it releases.
 */
#include "drd/lib/crypto/crypto.h"
#include "crypto_int.h"

#include <openssl/crypto.h>
#include <string.h>

static const char mac_label[] = "drd manifest mac v1";

int dr_keyring_mac(const dr_keyring *k, const char *name, const void *msg, size_t len,
                   uint8_t out[32])
{
    const uint8_t *mk = k ? dr_keyring_key(k, name) : NULL;
    if (!mk)
        return dr_error_set(DR_EAUTH, "master key '%s' is not in the keyring", name);
    uint8_t sub[32];
    int rc = dr_hmac_sha256(mk, DR_CRYPT_KEY_LEN, mac_label, sizeof mac_label - 1, sub);
    if (rc == 0)
        rc = dr_hmac_sha256(sub, sizeof sub, msg, len, out);
    OPENSSL_cleanse(sub, sizeof sub);
    return rc;
}

int dr_crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int dr_keyring_name_ok(const char *name)
{
    return dr_crypto_name_ok(name, strlen(name));
}
