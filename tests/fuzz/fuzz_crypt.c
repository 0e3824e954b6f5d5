/*
 * Fuzz target: the encrypted object format (drd/lib/crypto/cryptstream.c): the header parse of
 * dr_crypt_key_name, and the decrypting source over a whole object read in short pieces with a
 * fixed test keyring, so that headers naming its key reach the unwrap and the chunk framing.
 * Checks that nothing is released from an object that does not authenticate: a failed read
 * returns an error, never bytes (the fuzzer cannot forge a GCM tag).
 */
#include "drd/lib/crypto/crypto.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

/* the keyring of the seeds (tests/fuzz/corpus/crypt, made by fuzz_seeds) */
static const char KEYRING[] = "key fuzz-key "
                              "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                              "current fuzz-key\n";

static dr_keyring *ring;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[DR_KEY_NAME_MAX + 1];
    static uint8_t buf[DR_CRYPT_CHUNK];
    fuzz_quiet();
    if (!ring && dr_keyring_load(fuzz_file((const uint8_t *)KEYRING, strlen(KEYRING)), &ring) != 0)
        abort();
    if (dr_crypt_key_name(data, size, name) == 0 && strlen(name) > DR_KEY_NAME_MAX)
        abort();
    (void)dr_crypt_is_encrypted(data, size);
    uint32_t seed = size ? data[size - 1] : 0;
    dr_source *in = fuzz_source_new(data, size, seed, seed % 3 ? 4096 : 0);
    dr_source *dec = NULL;
    if (dr_decrypt_source_new(in, ring, &dec) == 0) {
        size_t n = 0;
        uint64_t total = 0;
        int rc;
        while ((rc = dr_source_read(dec, buf, sizeof buf, &n)) == 0 && n)
            total += n;
        /* an authenticated plaintext needs at least header and one tag of ciphertext */
        if (rc == 0 && total + 16 > size)
            abort();
        dr_source_free(dec);
    }
    dr_source_free(in);
    dr_error_clear();
    return 0;
}
