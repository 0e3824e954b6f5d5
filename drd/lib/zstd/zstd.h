/*
 * drd zstd: one-shot zstd compression of bounded chunks (the only module that includes
 * <zstd.h>), for data sent over the wire in frames of known maximum size.
 * Must never decompress into more than the caller's buffer: a frame from a peer that claims or
 * produces more is refused.
 */
#ifndef DRD_ZSTD_H
#define DRD_ZSTD_H

#include "drd/core/core.h"

typedef struct dr_zstd dr_zstd;

/* A compression and decompression context (level: zstd level, e.g. 1..19). */
int dr_zstd_new(int level, dr_zstd **out);
void dr_zstd_free(dr_zstd *z);
/* The largest compressed size of n bytes. */
size_t dr_zstd_bound(size_t n);
/* Compresses n bytes into dst (cap >= dr_zstd_bound(n)); *out the compressed size. */
int dr_zstd_compress(dr_zstd *z, const void *src, size_t n, void *dst, size_t cap, size_t *out);
/* Decompresses one frame into dst; DR_EPROTO when it is corrupt or larger than cap. */
int dr_zstd_decompress(dr_zstd *z, const void *src, size_t n, void *dst, size_t cap, size_t *out);

#endif
