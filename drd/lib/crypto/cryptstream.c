/*
 * Encrypted objects (docs/format.md "Encryption"): an encrypting sink and a decrypting source.
 *
 *   header  = "DRDCRYPT" | version u8 (1) | chunk size u32 BE | name length u8 | key name
 *             | wrap nonce (12) | wrapped data key (32) | wrap tag (16)
 *   chunk i = AES-256-GCM(data key, nonce = 0x00000000 | i as u64 BE,
 *                         aad = SHA-256(header) | i as u64 BE | final u8) ciphertext | tag (16)
 *
 * A chunk holding exactly chunk-size plaintext bytes is never the final one; the final chunk
 * holds 0 to chunk-size - 1 bytes (empty when the plaintext is empty or a multiple of the chunk
 * size). So the reader knows from the length it read whether a chunk must carry the final flag,
 * and the flag, being authenticated, makes truncation at any point fail.
 *
 * Must never release plaintext whose tag has not verified, never keep more than one chunk in
 * memory, and never print key material.
 */
#include "drd/lib/crypto/crypto.h"
#include "crypto_int.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "DRDCRYPT"
#define MAGIC_LEN 8
#define VERSION 1
#define PREFIX_LEN (MAGIC_LEN + 1 + 4 + 1) /* magic, version, chunk size, name length */
#define NONCE_LEN 12
#define TAG_LEN 16
#define WRAPPED_LEN (DR_CRYPT_KEY_LEN + TAG_LEN)
#define HEADER_LEN(nl) (PREFIX_LEN + (nl) + NONCE_LEN + WRAPPED_LEN)
#define AAD_LEN (32 + 8 + 1)
#define CHUNK_MIN 1
#define CHUNK_MAX (16u * 1024 * 1024) /* what a reader accepts; bounds its memory */

_Static_assert(HEADER_LEN(DR_KEY_NAME_MAX) <= DR_CRYPT_HEADER_MAX, "header fits the prefix max");
_Static_assert(DR_CRYPT_CHUNK >= CHUNK_MIN && DR_CRYPT_CHUNK <= CHUNK_MAX, "chunk size");

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses the header up to the key name. Returns 0 (name and *hlen, the full header length, set),
 * 1 when len is too short to tell, or DR_EPROTO. */
static int parse_prefix(const uint8_t *p, size_t len, uint32_t *chunk,
                        char name[DR_KEY_NAME_MAX + 1], size_t *hlen)
{
    if (memcmp(p, MAGIC, len < MAGIC_LEN ? len : MAGIC_LEN) != 0)
        return dr_error_set(DR_EPROTO, "not a drd encrypted object (no DRDCRYPT magic)");
    if (len < PREFIX_LEN)
        return 1;
    if (p[MAGIC_LEN] != VERSION)
        return dr_error_set(DR_EPROTO,
                            "encrypted object has format version %u; this drd reads version %d",
                            p[MAGIC_LEN], VERSION);
    uint32_t cs = get_be32(p + MAGIC_LEN + 1);
    if (cs < CHUNK_MIN || cs > CHUNK_MAX)
        return dr_error_set(DR_EPROTO, "encrypted object has an invalid chunk size %u", cs);
    size_t nl = p[PREFIX_LEN - 1];
    if (nl < 1 || nl > DR_KEY_NAME_MAX)
        return dr_error_set(DR_EPROTO, "encrypted object has an invalid key name length %zu", nl);
    if (len < PREFIX_LEN + nl)
        return 1;
    if (!dr_crypto_name_ok((const char *)p + PREFIX_LEN, nl))
        return dr_error_set(DR_EPROTO, "encrypted object has an invalid master key name");
    memcpy(name, p + PREFIX_LEN, nl);
    name[nl] = 0;
    *chunk = cs;
    *hlen = HEADER_LEN(nl);
    return 0;
}

int dr_crypt_key_name(const void *head, size_t len, char name[DR_KEY_NAME_MAX + 1])
{
    uint32_t chunk;
    size_t hlen;
    int rc = parse_prefix(head, len, &chunk, name, &hlen);
    if (rc == 1)
        rc = dr_error_set(DR_EPROTO, "encrypted object header is cut short (%zu bytes)", len);
    return rc;
}

int dr_crypt_is_encrypted(const void *head, size_t len)
{
    return len >= MAGIC_LEN && memcmp(head, MAGIC, MAGIC_LEN) == 0;
}

static void chunk_nonce(uint64_t index, uint8_t nonce[NONCE_LEN])
{
    memset(nonce, 0, 4);
    put_be64(nonce + 4, index);
}

static void chunk_aad(const uint8_t hh[32], uint64_t index, int final, uint8_t aad[AAD_LEN])
{
    memcpy(aad, hh, 32);
    put_be64(aad + 32, index);
    aad[40] = final ? 1 : 0;
}

/* AES-256-GCM on a context already keyed: out gets len ciphertext bytes then the tag. in may
 * equal out. */
static int gcm_seal(EVP_CIPHER_CTX *c, const uint8_t nonce[NONCE_LEN], const uint8_t *aad,
                    size_t alen, const uint8_t *in, size_t len, uint8_t *out)
{
    int n = 0;
    if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(c, NULL, &n, aad, (int)alen) != 1 ||
        (len && EVP_EncryptUpdate(c, out, &n, in, (int)len) != 1) ||
        EVP_EncryptFinal_ex(c, out + len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + len) != 1)
        return dr_crypto_ossl_err("aes-256-gcm encrypt");
    return 0;
}

/* Returns 1 when the tag verified (out holds the plaintext), 0 when it did not (out holds
 * garbage the caller must wipe), or a negative code. */
static int gcm_open(EVP_CIPHER_CTX *c, const uint8_t nonce[NONCE_LEN], const uint8_t *aad,
                    size_t alen, const uint8_t *in, size_t len, const uint8_t *tag, uint8_t *out)
{
    int n = 0;
    if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(c, NULL, &n, aad, (int)alen) != 1 ||
        (len && EVP_DecryptUpdate(c, out, &n, in, (int)len) != 1) ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)tag) != 1)
        return dr_crypto_ossl_err("aes-256-gcm decrypt");
    if (EVP_DecryptFinal_ex(c, out + len, &n) != 1) {
        ERR_clear_error();
        return 0;
    }
    return 1;
}

/* ---- encrypting sink ----
 * States: open (buffering up to one chunk; a full chunk is sealed and written at once, the
 * header going out in front of the first) -> sealed (finish wrote the final chunk) ; any failed
 * write to next -> broken (every later call fails). */

typedef struct enc_sink {
    dr_sink base;
    dr_sink *next;       /* borrowed */
    EVP_CIPHER_CTX *ctx; /* keyed with the data key */
    uint8_t header[DR_CRYPT_HEADER_MAX];
    size_t hlen;
    uint8_t hh[32]; /* SHA-256 of the header */
    uint8_t *buf;   /* chunk + TAG_LEN: plaintext, sealed in place */
    size_t chunk, fill;
    uint64_t index;
    int header_sent, sealed, broken;
} enc_sink;

static int enc_seal(enc_sink *s, const uint8_t *in, size_t len, int final)
{
    uint8_t nonce[NONCE_LEN], aad[AAD_LEN];
    int rc = 0;
    chunk_nonce(s->index, nonce);
    chunk_aad(s->hh, s->index, final, aad);
    if ((rc = gcm_seal(s->ctx, nonce, aad, sizeof aad, in, len, s->buf)) < 0)
        goto out;
    if (!s->header_sent) {
        if ((rc = dr_sink_write(s->next, s->header, s->hlen)) < 0)
            goto out;
        s->header_sent = 1;
    }
    if ((rc = dr_sink_write(s->next, s->buf, len + TAG_LEN)) < 0)
        goto out;
    s->index++;
out:
    if (rc < 0)
        s->broken = rc;
    return rc;
}

static int enc_usable(enc_sink *s)
{
    if (s->broken)
        return dr_error_set(s->broken, "encrypting sink: an earlier write failed");
    if (s->sealed)
        return dr_error_set(DR_EGENERIC, "encrypting sink: write after finish");
    return 0;
}

static int enc_write(dr_sink *base, const void *data, size_t len)
{
    enc_sink *s = (enc_sink *)base;
    const uint8_t *p = data;
    int rc = enc_usable(s);
    while (rc == 0 && len) {
        if (s->fill == 0 && len >= s->chunk) {
            /* a whole chunk straight from the caller's buffer: no copy */
            rc = enc_seal(s, p, s->chunk, 0);
            p += s->chunk;
            len -= s->chunk;
            continue;
        }
        size_t k = s->chunk - s->fill < len ? s->chunk - s->fill : len;
        memcpy(s->buf + s->fill, p, k);
        s->fill += k;
        p += k;
        len -= k;
        if (s->fill == s->chunk) {
            /* full, hence not final: a final chunk is always shorter */
            rc = enc_seal(s, s->buf, s->chunk, 0);
            s->fill = 0;
        }
    }
    return rc;
}

static int enc_finish(dr_sink *base)
{
    enc_sink *s = (enc_sink *)base;
    int rc = 0;
    if (s->broken)
        return enc_usable(s);
    if (!s->sealed) {
        if ((rc = enc_seal(s, s->buf, s->fill, 1)) < 0)
            return rc;
        s->fill = 0;
        s->sealed = 1;
    }
    return dr_sink_finish(s->next);
}

static void enc_free(dr_sink *base)
{
    enc_sink *s = (enc_sink *)base;
    EVP_CIPHER_CTX_free(s->ctx); /* cleanses the key schedule */
    if (s->buf) {
        OPENSSL_cleanse(s->buf, s->chunk + TAG_LEN);
        free(s->buf);
    }
    free(s);
}

static const dr_sink_ops enc_ops = {enc_write, enc_finish, enc_free};

int dr_encrypt_sink_new(dr_sink *next, const dr_keyring *k, dr_sink **out)
{
    int rc = 0;
    uint8_t dkey[DR_CRYPT_KEY_LEN];
    enc_sink *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &enc_ops;
    s->next = next;
    s->chunk = DR_CRYPT_CHUNK;
    s->buf = malloc(s->chunk + TAG_LEN);
    s->ctx = EVP_CIPHER_CTX_new();
    if (!s->buf || !s->ctx) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    const char *name = dr_keyring_current(k);
    const uint8_t *mk = dr_keyring_key(k, name);
    size_t nl = strlen(name);
    uint8_t *h = s->header;
    memcpy(h, MAGIC, MAGIC_LEN);
    h[MAGIC_LEN] = VERSION;
    put_be32(h + MAGIC_LEN + 1, (uint32_t)s->chunk);
    h[PREFIX_LEN - 1] = (uint8_t)nl;
    memcpy(h + PREFIX_LEN, name, nl);
    size_t aad_len = PREFIX_LEN + nl + NONCE_LEN; /* everything before the wrapped key */
    s->hlen = HEADER_LEN(nl);
    if ((rc = dr_random_bytes(h + PREFIX_LEN + nl, NONCE_LEN)) < 0 ||
        (rc = dr_random_bytes(dkey, sizeof dkey)) < 0)
        goto out;
    if (EVP_EncryptInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, mk, NULL) != 1) {
        rc = dr_crypto_ossl_err("aes-256-gcm init");
        goto out;
    }
    if ((rc = gcm_seal(s->ctx, h + PREFIX_LEN + nl, h, aad_len, dkey, sizeof dkey, h + aad_len)) <
            0 ||
        (rc = dr_sha256_buf(h, s->hlen, s->hh)) < 0)
        goto out;
    if (EVP_EncryptInit_ex(s->ctx, NULL, NULL, dkey, NULL) != 1) {
        rc = dr_crypto_ossl_err("aes-256-gcm init");
        goto out;
    }
    *out = &s->base;
out:
    OPENSSL_cleanse(dkey, sizeof dkey);
    if (rc < 0)
        enc_free(&s->base);
    return rc;
}

/* ---- decrypting source ----
 * States: header verified (in new) -> reading chunks (plaintext of the last verified chunk
 * served from pbuf) -> done (final chunk verified: end of stream) ; any failure -> failed (the
 * same error on every later read). */

typedef struct dec_source {
    dr_source base;
    dr_source *in; /* borrowed */
    EVP_CIPHER_CTX *ctx;
    uint8_t hh[32];
    size_t chunk;
    uint8_t *cbuf; /* chunk + TAG_LEN of ciphertext as read */
    uint8_t *pbuf; /* chunk of verified plaintext */
    size_t pos, len;
    uint64_t index;
    int done;
    int failed;
    char errmsg[256];
    char key_name[DR_KEY_NAME_MAX + 1]; /* the master key named in the (authenticated) header */
} dec_source;

static int dec_chunk(dec_source *s)
{
    uint8_t nonce[NONCE_LEN], aad[AAD_LEN];
    size_t got = 0, full = s->chunk + TAG_LEN;
    unsigned long long idx = (unsigned long long)s->index;
    int rc = dr_source_read_full(s->in, s->cbuf, full, &got);
    if (rc < 0)
        return rc;
    if (got < TAG_LEN) {
        if (got == 0)
            return dr_error_set(DR_ECHECKSUM,
                                "encrypted object is truncated: it ends after %llu chunks "
                                "without a final chunk",
                                idx);
        return dr_error_set(DR_ECHECKSUM, "encrypted object is truncated inside chunk %llu", idx);
    }
    /* a short read means end of stream: this chunk must be the final one */
    int final = got < full;
    size_t len = got - TAG_LEN;
    chunk_nonce(s->index, nonce);
    chunk_aad(s->hh, s->index, final, aad);
    rc = gcm_open(s->ctx, nonce, aad, sizeof aad, s->cbuf, len, s->cbuf + len, s->pbuf);
    if (rc == 0) {
        OPENSSL_cleanse(s->pbuf, len);
        if (final) {
            /* sealed as a non-final chunk: the object was cut after it */
            chunk_aad(s->hh, s->index, 0, aad);
            rc = gcm_open(s->ctx, nonce, aad, sizeof aad, s->cbuf, len, s->cbuf + len, s->pbuf);
            OPENSSL_cleanse(s->pbuf, len);
            if (rc == 1)
                return dr_error_set(DR_ECHECKSUM,
                                    "encrypted object is truncated: chunk %llu is not the final "
                                    "one",
                                    idx);
        }
        if (rc == 0)
            rc = dr_error_set(DR_ECHECKSUM,
                              "encrypted object: chunk %llu fails authentication (corrupt, "
                              "reordered, truncated or followed by extra data)",
                              idx);
    }
    if (rc < 0)
        return rc;
    s->pos = 0;
    s->len = len;
    s->index++;
    s->done = final;
    return 0;
}

static int dec_read(dr_source *base, void *buf, size_t cap, size_t *n)
{
    dec_source *s = (dec_source *)base;
    int rc = 0;
    if (s->failed)
        return dr_error_set(s->failed, "%s", s->errmsg);
    while (s->pos == s->len && !s->done) {
        if ((rc = dec_chunk(s)) < 0) {
            s->failed = rc;
            snprintf(s->errmsg, sizeof s->errmsg, "%s", dr_error_msg());
            return rc;
        }
    }
    size_t k = s->len - s->pos < cap ? s->len - s->pos : cap;
    memcpy(buf, s->pbuf + s->pos, k);
    s->pos += k;
    *n = k;
    return 0;
}

static void dec_free(dr_source *base)
{
    dec_source *s = (dec_source *)base;
    EVP_CIPHER_CTX_free(s->ctx);
    free(s->cbuf);
    if (s->pbuf) {
        OPENSSL_cleanse(s->pbuf, s->chunk);
        free(s->pbuf);
    }
    free(s);
}

static const dr_source_ops dec_ops = {dec_read, dec_free};

int dr_decrypt_source_new(dr_source *in, const dr_keyring *k, dr_source **out)
{
    int rc = 0;
    uint8_t h[DR_CRYPT_HEADER_MAX], dkey[DR_CRYPT_KEY_LEN];
    char name[DR_KEY_NAME_MAX + 1];
    uint32_t chunk = 0;
    size_t got = 0, more = 0, hlen = 0;
    dec_source *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->base.ops = &dec_ops;
    s->in = in;
    if ((rc = dr_source_read_full(in, h, PREFIX_LEN, &got)) < 0)
        goto out;
    if (got < MAGIC_LEN) {
        rc = dr_error_set(DR_EPROTO, "not a drd encrypted object (%zu bytes)", got);
        goto out;
    }
    if ((rc = parse_prefix(h, got, &chunk, name, &hlen)) < 0)
        goto out;
    if (got < PREFIX_LEN) {
        rc = dr_error_set(DR_ECHECKSUM, "encrypted object is truncated inside its header");
        goto out;
    }
    /* the name length is known now: read the rest and parse again to get the name */
    more = HEADER_LEN(h[PREFIX_LEN - 1]) - PREFIX_LEN;
    if ((rc = dr_source_read_full(in, h + PREFIX_LEN, more, &got)) < 0)
        goto out;
    if (got < more) {
        rc = dr_error_set(DR_ECHECKSUM, "encrypted object is truncated inside its header");
        goto out;
    }
    if ((rc = parse_prefix(h, PREFIX_LEN + more, &chunk, name, &hlen)) < 0)
        goto out;
    const uint8_t *mk = dr_keyring_key(k, name);
    if (!mk) {
        rc = dr_error_set(
            DR_EAUTH, "encrypted object needs master key '%s', which is not in the keyring", name);
        goto out;
    }
    size_t aad_len = hlen - WRAPPED_LEN;
    if (!(s->ctx = EVP_CIPHER_CTX_new())) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if (EVP_DecryptInit_ex(s->ctx, EVP_aes_256_gcm(), NULL, mk, NULL) != 1) {
        rc = dr_crypto_ossl_err("aes-256-gcm init");
        goto out;
    }
    rc = gcm_open(s->ctx, h + aad_len - NONCE_LEN, h, aad_len, h + aad_len, DR_CRYPT_KEY_LEN,
                  h + aad_len + DR_CRYPT_KEY_LEN, dkey);
    if (rc == 0)
        rc = dr_error_set(DR_ECHECKSUM,
                          "cannot unwrap the object's data key with master key '%s': wrong key "
                          "or corrupt header",
                          name);
    if (rc < 0)
        goto out;
    if ((rc = dr_sha256_buf(h, hlen, s->hh)) < 0)
        goto out;
    if (EVP_DecryptInit_ex(s->ctx, NULL, NULL, dkey, NULL) != 1) {
        rc = dr_crypto_ossl_err("aes-256-gcm init");
        goto out;
    }
    /* allocated only now that the header, chunk size included, is authenticated */
    snprintf(s->key_name, sizeof s->key_name, "%s", name);
    s->chunk = chunk;
    s->cbuf = malloc(s->chunk + TAG_LEN);
    s->pbuf = malloc(s->chunk);
    if (!s->cbuf || !s->pbuf) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    *out = &s->base;
out:
    OPENSSL_cleanse(dkey, sizeof dkey);
    if (rc < 0)
        dec_free(&s->base);
    return rc;
}

const char *dr_decrypt_source_key(dr_source *dec)
{
    return ((dec_source *)dec)->key_name;
}
