/*
 * Fuzz target: the streaming bbolt scanner (snapshot/bolt.c) that finds an etcd snapshot's
 * revision as the snapshot streams by, fed the input in pieces of input-chosen sizes with an
 * input-chosen min_rev. The scanner must end in a result or DR_EPROTO, within its memory bounds.
 */
#include "fuzz.h"
#include "snapshot/bolt.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dr_bolt_scan *s = NULL;
    dr_bolt_result res;
    fuzz_quiet();
    if (size < 2)
        return 0;
    /* the first two bytes choose min_rev and the piece sizes; the rest is the stream */
    int64_t min_rev = data[0] & 0x80 ? (int64_t)(data[0] & 0x7f) : 0;
    uint32_t state = 0x9e3779b9u ^ data[1];
    size_t max = data[1] & 1 ? 1 + (size_t)data[1] * 64 : 0;
    data += 2;
    size -= 2;
    if (dr_bolt_scan_new(min_rev, &s) != 0)
        abort();
    int rc = 0;
    size_t off = 0;
    while (rc == 0 && off < size) {
        size_t k = size - off;
        if (max) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            if (1 + state % max < k)
                k = 1 + state % max;
        }
        rc = dr_bolt_scan_feed(s, data + off, k);
        off += k;
    }
    if (rc == 0 && dr_bolt_scan_result(s, &res) == 0) {
        if (res.db_size > size || res.revision < 1)
            abort();
    }
    dr_bolt_scan_free(s);
    dr_error_clear();
    return 0;
}
