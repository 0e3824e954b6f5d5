/*
 * Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c, docs/fuzzing.md): a source that hands
 * the input out in short pieces (as a network or a decrypting source would), a file holding the
 * input for parsers that take a path, and quiet logging.
 * Must never hide a failure of the code under test: helpers that fail abort() loudly, so that a
 * broken harness is never mistaken for a clean run.
 */
#ifndef DRD_TESTS_FUZZ_H
#define DRD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "drd/core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Drops info and warning lines (a parser warning on every input slows the run and floods the
 * log). */
void fuzz_quiet(void);

/* A source over borrowed data that returns at most 1..max bytes per read, piece sizes drawn from
 * seed (max 0: everything at once). Aborts when out of memory. */
dr_source *fuzz_source_new(const uint8_t *data, size_t len, uint32_t seed, size_t max);

/* A path to a file holding exactly data (a memfd with mode 0600, the same file on every call,
 * rewritten each time); the path is valid until the next call. */
const char *fuzz_file(const uint8_t *data, size_t len);

/* The fixed test keyring of the seeds (key "fuzz-key", bytes 00..1f; borrowed, loaded once):
 * encrypted objects and manifest macs in corpus/ are made under it. */
struct dr_keyring;
const struct dr_keyring *fuzz_keyring(void);

/* data as a NUL-terminated copy (caller frees). */
char *fuzz_strndup(const uint8_t *data, size_t len);

#endif
