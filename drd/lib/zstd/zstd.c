/*
 * drd zstd: contexts kept across chunks (allocating one per chunk costs more than compressing
 * it at level 1). Error codes of libzstd become DR_E* here.
 */
#include "drd/lib/zstd/zstd.h"

#include <stdlib.h>
#include <zstd.h>

struct dr_zstd {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
    int level;
};

int dr_zstd_new(int level, dr_zstd **out)
{
    dr_zstd *z = calloc(1, sizeof *z);
    if (!z || !(z->c = ZSTD_createCCtx()) || !(z->d = ZSTD_createDCtx())) {
        dr_zstd_free(z);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    z->level = level;
    *out = z;
    return 0;
}

void dr_zstd_free(dr_zstd *z)
{
    if (!z)
        return;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    free(z);
}

size_t dr_zstd_bound(size_t n)
{
    return ZSTD_compressBound(n);
}

int dr_zstd_compress(dr_zstd *z, const void *src, size_t n, void *dst, size_t cap, size_t *out)
{
    size_t r = ZSTD_compressCCtx(z->c, dst, cap, src, n, z->level);
    if (ZSTD_isError(r))
        return dr_error_set(DR_EGENERIC, "zstd: %s", ZSTD_getErrorName(r));
    *out = r;
    return 0;
}

int dr_zstd_decompress(dr_zstd *z, const void *src, size_t n, void *dst, size_t cap, size_t *out)
{
    unsigned long long want = ZSTD_getFrameContentSize(src, n);
    if (want == ZSTD_CONTENTSIZE_ERROR)
        return dr_error_set(DR_EPROTO, "not a zstd frame");
    if (want != ZSTD_CONTENTSIZE_UNKNOWN && want > cap)
        return dr_error_set(DR_EPROTO, "zstd frame of %llu bytes, more than %zu", want, cap);
    size_t r = ZSTD_decompressDCtx(z->d, dst, cap, src, n);
    if (ZSTD_isError(r))
        return dr_error_set(DR_EPROTO, "corrupt zstd frame: %s", ZSTD_getErrorName(r));
    *out = r;
    return 0;
}
