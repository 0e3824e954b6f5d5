/*
 * drd crypto internals shared by the module's files (never included outside drd/lib/crypto).
 * Must never expose key material beyond the module: keys are handed out only as borrowed
 * pointers into the keyring, which wipes them on free.
 */
#ifndef DRD_CRYPTO_INT_H
#define DRD_CRYPTO_INT_H

#include <stddef.h>
#include <stdint.h>

#define DR_CRYPT_KEY_LEN 32

/* Translates (and clears) OpenSSL's error queue into DR_EGENERIC "what: reason"; returns it.
 * The one place OpenSSL errors become drd errors. */
int dr_crypto_ossl_err(const char *what);

/* Whether s[0..n) is a valid key name: [A-Za-z0-9._-]{1,64}. */
int dr_crypto_name_ok(const char *s, size_t n);

struct dr_keyring;
/* The 32-byte master key of this name, or NULL when absent (borrowed, owned by the ring). */
const uint8_t *dr_keyring_key(const struct dr_keyring *k, const char *name);

#endif
