/*
 * drd crypto: the one place that includes OpenSSL. For now: streaming SHA-256.
 * Must never log key material.
 */
#ifndef DRD_CRYPTO_H
#define DRD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

typedef struct dr_sha256 dr_sha256;

/* New streaming SHA-256 context; caller frees with dr_sha256_free. Returns 0 or DR_ENOMEM. */
int dr_sha256_new(dr_sha256 **out);
int dr_sha256_update(dr_sha256 *h, const void *data, size_t len);
/* Writes 32 bytes to digest; the context can then only be freed. */
int dr_sha256_final(dr_sha256 *h, uint8_t digest[32]);
void dr_sha256_free(dr_sha256 *h);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void dr_hex(const uint8_t *in, size_t n, char *out);

#endif
