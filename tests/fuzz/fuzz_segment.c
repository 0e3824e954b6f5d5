/*
 * Fuzz target: the segment decoder (dr_seg_reader, drd/lib/repo/segment.c) over a source that
 * delivers short pieces. Checks the decoder's promises: events only inside a revision,
 * revisions increasing, a put's mod_revision equal to its revision, and (with libFuzzer's
 * -malloc_limit_mb) no allocation ahead of the bytes that arrived.
 */
#include "drd/lib/repo/repo.h"
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dr_seg_reader *s = NULL;
    fuzz_quiet();
    uint32_t seed = size ? data[size - 1] : 0;
    dr_source *in = fuzz_source_new(data, size, seed, seed & 1 ? 9 : 0);
    if (dr_seg_reader_new(in, &s) != 0)
        abort();
    int64_t rev, last = 0;
    uint32_t count;
    uint64_t bytes = 0;
    while (dr_seg_next_rev(s, &rev, &count) == 0) {
        if (rev <= last)
            abort();
        last = rev;
        uint32_t i;
        for (i = 0; i < count; i++) {
            dr_seg_event ev;
            if (dr_seg_next_event(s, &ev) != 0)
                break;
            if (ev.type != 'P' && ev.type != 'D' && ev.type != 'L')
                abort();
            if (ev.type == 'P' && ev.mod_revision != rev)
                abort();
            bytes += ev.key_len + ev.value_len;
            if (bytes > size)
                abort(); /* more event bytes than input bytes */
        }
        if (i < count)
            break;
    }
    dr_seg_reader_free(s);
    dr_source_free(in);
    dr_error_clear();
    return 0;
}
