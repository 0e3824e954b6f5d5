/*
 * drd crypto: the one place that includes OpenSSL. Streaming SHA-256, HMAC, GMAC, random bytes, the
 * keyring of named master keys, and the encrypted object format (AES-256-GCM in fixed-size
 * chunks, docs/format.md "Encryption").
 * Must never log, print or put key material into an error message.
 */
#ifndef DRD_CRYPTO_H
#define DRD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "drd/core/core.h"

typedef struct dr_sha256 dr_sha256;

/* New streaming SHA-256 context; caller frees with dr_sha256_free. Returns 0 or DR_ENOMEM. */
int dr_sha256_new(dr_sha256 **out);
int dr_sha256_update(dr_sha256 *h, const void *data, size_t len);
/* A second context in h's state (the same bytes hashed so far), to finish two digests of which
 * one covers more bytes without hashing the common part twice. Caller frees *out. */
int dr_sha256_dup(const dr_sha256 *h, dr_sha256 **out);
/* Writes 32 bytes to digest; the context can then only be freed. */
int dr_sha256_final(dr_sha256 *h, uint8_t digest[32]);
void dr_sha256_free(dr_sha256 *h);
/* One-shot SHA-256. */
int dr_sha256_buf(const void *data, size_t len, uint8_t digest[32]);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void dr_hex(const uint8_t *in, size_t n, char *out);
/* Appends the base64 (RFC 4648, padded) of n bytes to b. */
int dr_base64_append(dr_buf *b, const void *p, size_t n);

/* HMAC-SHA256 (S3 SigV4 signing). */
int dr_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32]);
/* Cryptographically secure random bytes. */
int dr_random_bytes(void *buf, size_t n);

/* GMAC (AES-128-GCM over additional data only, zero IV) as a keyed universal hash, to tell
 * whether two copies of some data are equal by their tags, both computed under one fresh secret
 * key: inputs chosen without knowledge of the key give equal tags with probability at most about
 * (length / 16) / 2^128 unless they are equal. 0.19 ns a byte against SHA-256's 0.88 on this
 * project's machines (AES-NI and carry-less multiply). Not a MAC for tags an adversary sees (the IV
 * never changes), nor a hash anyone may recompute. dr_gmac_final writes the tag and readies g for
 * the next input. */
typedef struct dr_gmac dr_gmac;
int dr_gmac_new(const uint8_t key[16], dr_gmac **out);
int dr_gmac_update(dr_gmac *g, const void *data, size_t len);
int dr_gmac_final(dr_gmac *g, uint8_t tag[16]);
void dr_gmac_free(dr_gmac *g);

/* A pass-through tap: bytes written go on to next unchanged (next may be NULL: the tap is then a
 * terminal sink), counted and hashed with SHA-256. Finishing the tap finishes next. The result
 * is valid after dr_sink_finish (before it the digest is all zero); digest or bytes may be NULL.
 * next is borrowed. */
int dr_hash_sink_new(dr_sink *next, dr_sink **out);
void dr_hash_sink_result(dr_sink *tap, uint8_t digest[32], uint64_t *bytes);

/* ---- keyring: named 256-bit master keys in a file (mode 0600) ----
 * The file is text, one entry per line, '#' comments:
 *     key <name> <64 hex digits>
 *     current <name>
 * Names are [A-Za-z0-9._-]{1,64}. */
typedef struct dr_keyring dr_keyring;
#define DR_KEY_NAME_MAX 64
/* Loads and checks a keyring file. DR_ENOTFOUND (missing), DR_EAUTH (group or others have any
 * permission on it, or another user owns it: dr_fs_check_secret_fd), DR_EINVAL (malformed: names
 * the file and line, never echoes key material), DR_EIO (unreadable, not a regular file, larger
 * than 1 MiB). */
int dr_keyring_load(const char *path, dr_keyring **out);
void dr_keyring_free(dr_keyring *k);
/* Name of the current master key (borrowed). */
const char *dr_keyring_current(const dr_keyring *k);
/* Whether a key of this name is in the ring. */
int dr_keyring_has(const dr_keyring *k, const char *name);
/* Writes a new keyring with one random key (name NULL: "key-<UTC date>-<4 hex>") as current.
 * Refuses (DR_EIO) when path exists; DR_EUSAGE for an invalid name. Mode 0600, durable.
 * name_out (may be NULL) receives the name used. */
int dr_keyring_generate(const char *path, const char *name, char name_out[DR_KEY_NAME_MAX + 1]);
/* Adds a new random key to an existing keyring and makes it current; the old keys stay so that
 * old objects remain readable. Every other line (comments included) is kept, the old 'current'
 * line is replaced. DR_EINVAL when the name is taken, DR_EUSAGE for an invalid name, and the
 * load errors. Rewrites the file durably with mode 0600; two concurrent rotations of one file
 * are not serialized (the last rename wins). name_out may be NULL. */
int dr_keyring_rotate(const char *path, const char *name, char name_out[DR_KEY_NAME_MAX + 1]);

/* Authenticates small documents (the repository's manifests) under a master key: out =
 * HMAC-SHA256(K, msg) with K = HMAC-SHA256(master key `name`, "drd manifest mac v1"), so the MAC
 * key is never the key that wraps data keys. DR_EAUTH when the ring has no key of that name. */
int dr_keyring_mac(const dr_keyring *k, const char *name, const void *msg, size_t len,
                   uint8_t out[32]);
/* Whether name is a valid master key name ([A-Za-z0-9._-]{1,64}): 1 or 0. */
int dr_keyring_name_ok(const char *name);
/* Constant-time comparison of n bytes: 1 when equal. */
int dr_crypto_equal(const void *a, const void *b, size_t n);

/* ---- encrypted streams (format: docs/format.md "Encryption") ----
 * Encrypting sink: a random 256-bit data key per object, wrapped with the keyring's current
 * master key; the plaintext is cut into chunks of DR_CRYPT_CHUNK bytes, each sealed with
 * AES-256-GCM, nonce = chunk index, and the header, chunk index and a final-chunk flag as
 * associated data (reordering, truncation and header edits fail authentication). A full chunk
 * is never the final one: the final chunk holds 0 to DR_CRYPT_CHUNK - 1 bytes. Accepts writes of
 * any size (buffers at most one chunk); the header goes to next in front of the first chunk.
 * Finishing it seals the final chunk and finishes next. The keyring is only used during the
 * call (the data key is wrapped then); next is borrowed. */
#define DR_CRYPT_CHUNK (64 * 1024)
int dr_encrypt_sink_new(dr_sink *next, const dr_keyring *k, dr_sink **out);
/* Decrypting source over an encrypted stream. Reads and authenticates the header during the
 * call, so key errors come from here; the keyring is not used afterwards, in is borrowed.
 * Releases a chunk's plaintext only after its tag verified, and reports end of stream only after
 * the final chunk verified. Memory: one chunk, whatever the stream's length.
 * Errors: DR_EAUTH (the master key named in the header is not in the keyring: names it),
 * DR_ECHECKSUM (authentication failed: corrupt, reordered, truncated, extra data after the
 * final chunk, or a wrong key under the right name), DR_EPROTO (not a drd encrypted object, or
 * an unsupported version). A failed read fails again on every later call. */
int dr_decrypt_source_new(dr_source *in, const dr_keyring *k, dr_source **out);
/* The name of the master key that the decrypting source's header names (and that unwrapped its
 * data key). Borrowed, valid while dec lives. */
const char *dr_decrypt_source_key(dr_source *dec);
/* Reads the master key name from the first bytes of an encrypted object (at least
 * DR_CRYPT_HEADER_MAX, or the whole object when shorter). DR_EPROTO when not one. */
#define DR_CRYPT_HEADER_MAX 256
int dr_crypt_key_name(const void *head, size_t len, char name[DR_KEY_NAME_MAX + 1]);
/* Whether these first bytes look like a drd encrypted object (magic check only): 1 or 0. */
int dr_crypt_is_encrypted(const void *head, size_t len);

#endif
