/*
 * Fuzz target: the container's archive reader (drd/lib/archive/archive.c over libarchive: tar,
 * optionally zstd) reading every entry to its end from a source that delivers short pieces.
 * Reads at most a bounded number of bytes per input: a compression bomb costs time, not a
 * finding, and the reader itself never buffers an entry.
 */
#include "drd/lib/archive/archive.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

enum { READ_MAX = 64 << 20, ENTRIES_MAX = 10000 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[64 * 1024];
    char name[256];
    uint64_t esize = 0, total = 0;
    dr_archive_reader *r = NULL;
    fuzz_quiet();
    uint32_t seed = size ? data[0] : 0;
    dr_source *in = fuzz_source_new(data, size, seed, seed & 1 ? 700 : 0);
    if (dr_archive_reader_new(in, &r) == 0) {
        int rc = 0;
        for (int e = 0; rc == 0 && e < ENTRIES_MAX && total < READ_MAX; e++) {
            if ((rc = dr_archive_next(r, name, sizeof name, &esize)) < 0)
                break;
            if (strlen(name) >= sizeof name)
                abort();
            size_t n = 0;
            uint64_t got = 0;
            /* the entry as a source, the way the repo reads events entries */
            dr_source *es = dr_archive_entry_source(r);
            while (total < READ_MAX && (rc = dr_source_read(es, buf, sizeof buf, &n)) == 0 && n) {
                got += n;
                total += n;
            }
            /* a complete entry holds exactly the bytes its header announced */
            if (rc == 0 && total < READ_MAX && got != esize)
                abort();
        }
        dr_archive_reader_free(r);
    }
    dr_source_free(in);
    dr_error_clear();
    return 0;
}
