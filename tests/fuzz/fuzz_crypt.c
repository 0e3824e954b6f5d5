/*
 * Fuzz target: the encrypted object format (drd/lib/crypto/cryptstream.c), with a fixed test
 * keyring, in two modes chosen by the first byte:
 *  - raw (any first byte but 0xff): the input is an object. dr_crypt_key_name parses its header;
 *    the decrypting source reads it whole in short pieces: headers naming the test key reach
 *    the unwrap and the chunk framing. Nothing may come out of an object that does not
 *    authenticate (the fuzzer cannot forge a GCM tag; only the seeds decrypt).
 *  - round trip (0xff, op, pos u32, plaintext): the plaintext is encrypted, then the object is
 *    cut at pos, has bit pos flipped or a byte appended (op 1, 2, 3; 0 leaves it whole), and read
 *    back. Whole, it must give the plaintext back exactly; changed in any way, it must fail, with
 *    no byte released beyond what authenticated before the damage.
 */
#include "drd/lib/crypto/crypto.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static const dr_keyring *ring;

/* Reads src to its end or first error into out (cap bytes at most); returns the error or 0. */
static int drain(dr_source *src, uint8_t *out, size_t cap, size_t *total)
{
    static uint8_t buf[DR_CRYPT_CHUNK];
    size_t n = 0;
    int rc;
    *total = 0;
    while ((rc = dr_source_read(src, buf, sizeof buf, &n)) == 0 && n) {
        if (out && *total + n <= cap)
            memcpy(out + *total, buf, n);
        *total += n;
    }
    return rc;
}

static void raw(const uint8_t *data, size_t size)
{
    char name[DR_KEY_NAME_MAX + 1];
    if (dr_crypt_key_name(data, size, name) == 0 && strlen(name) > DR_KEY_NAME_MAX)
        abort();
    (void)dr_crypt_is_encrypted(data, size);
    uint32_t seed = size ? data[size - 1] : 0;
    dr_source *in = fuzz_source_new(data, size, seed, seed % 3 ? 4096 : 0);
    dr_source *dec = NULL;
    if (dr_decrypt_source_new(in, ring, &dec) == 0) {
        size_t total = 0;
        if (strcmp(dr_decrypt_source_key(dec), "fuzz-key") != 0)
            abort(); /* the only key that can unwrap anything here */
        /* an authenticated plaintext needs at least header and one tag of ciphertext */
        if (drain(dec, NULL, 0, &total) == 0 && total + 16 > size)
            abort();
        dr_source_free(dec);
    }
    dr_source_free(in);
}

static void round_trip(const uint8_t *data, size_t size)
{
    if (size < 6)
        return;
    int op = data[1] % 4;
    uint32_t pos = (uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 |
                   (uint32_t)data[5] << 24;
    const uint8_t *plain = data + 6;
    size_t plen = size - 6;
    dr_sink *out = NULL, *enc = NULL;
    char *obj = NULL;
    size_t olen = 0;
    if (dr_buf_sink_new(plen + 4096 + plen / 1024, &out) != 0 ||
        dr_encrypt_sink_new(out, ring, &enc) != 0 || dr_sink_write(enc, plain, plen) != 0 ||
        dr_sink_finish(enc) != 0)
        abort();
    dr_buf_sink_take(out, &obj, &olen);
    dr_sink_free(enc);
    dr_sink_free(out);
    uint8_t *o = malloc(olen + 1);
    if (!o)
        abort();
    memcpy(o, obj, olen);
    free(obj);
    pos %= (uint32_t)(op == 2 ? olen * 8 : olen);
    if (op == 1)
        olen = pos; /* cut */
    else if (op == 2)
        o[pos / 8] ^= (uint8_t)(1u << (pos % 8)); /* flip */
    else if (op == 3)
        o[olen++] = (uint8_t)pos; /* append */
    uint8_t *back = malloc(plen + 1);
    if (!back)
        abort();
    dr_source *in = fuzz_source_new(o, olen, pos, pos % 2 ? 777 : 0), *dec = NULL;
    size_t total = 0;
    int rc = dr_decrypt_source_new(in, ring, &dec);
    if (rc == 0) {
        rc = drain(dec, back, plen, &total);
        dr_source_free(dec);
    }
    if (op == 0 && (rc != 0 || total != plen || memcmp(back, plain, plen) != 0))
        abort(); /* an intact object must read back exactly */
    if (op != 0 && rc == 0)
        abort(); /* a changed object must never read back as complete */
    if (op != 0 && total > plen)
        abort();
    dr_source_free(in);
    free(back);
    free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    ring = fuzz_keyring();
    if (size && data[0] == 0xff)
        round_trip(data, size);
    else
        raw(data, size);
    dr_error_clear();
    return 0;
}
