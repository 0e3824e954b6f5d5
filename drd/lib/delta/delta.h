/*
 * drd delta: rsync-style deltas on librsync (the only module that includes <librsync.h>).
 * Three streaming jobs, each fed input in pieces and writing its output into a sink:
 *   signature  basis bytes    -> signature bytes   (the side that holds the old copy)
 *   delta      new bytes      -> delta bytes       (needs the other side's signature, loaded)
 *   patch      delta bytes    -> new bytes         (reads the basis with pread)
 * Memory is bounded by fixed buffers and the loaded signature, whose size is bounded whatever the
 * file size: the block length grows with the file (about sqrt(size), as rsync picks it, and
 * larger still so that a signature never has more than DR_DELTA_MAX_BLOCKS blocks).
 * Must never trust a signature or a delta from a peer: the header of a signature is checked
 * before librsync sees it, its size is capped, and a patch never writes more than announced.
 */
#ifndef DRD_DELTA_H
#define DRD_DELTA_H

#include "drd/core/core.h"

#include <stdint.h>

#define DR_DELTA_MIN_BLOCK 1024
#define DR_DELTA_MAX_BLOCK (16u << 20)
#define DR_DELTA_MAX_BLOCKS 131072u
/* The largest signature a loader accepts: header + DR_DELTA_MAX_BLOCKS blocks of 4 + 32 bytes. */
#define DR_DELTA_MAX_SIG_BYTES (12u + (uint64_t)DR_DELTA_MAX_BLOCKS * 36u)

/* The block length for a basis of size bytes: sqrt(size) rounded up to a multiple of 64, at
 * least 1 KiB, at most 128 KiB unless the file needs more to stay under DR_DELTA_MAX_BLOCKS
 * blocks (then up to DR_DELTA_MAX_BLOCK). */
size_t dr_delta_block_len(uint64_t size);

typedef struct dr_delta_sig dr_delta_sig; /* a loaded, indexed signature */
typedef struct dr_delta_job dr_delta_job;

/* Signature of a basis of basis_size bytes (the size only picks the block length). */
int dr_delta_sig_job_new(uint64_t basis_size, dr_delta_job **out);
/* Loads a signature fed to it (from a peer: checked); after dr_delta_job_finish, *sig is ready
 * for dr_delta_delta_job_new. The caller owns *sig (dr_delta_sig_free), also on failure. */
int dr_delta_load_job_new(dr_delta_sig **sig, dr_delta_job **out);
/* Delta of the bytes fed against sig (borrowed; must outlive the job). */
int dr_delta_delta_job_new(dr_delta_sig *sig, dr_delta_job **out);
/* Applies the delta fed to it to the basis read from basis_fd (borrowed; -1: no basis, any copy
 * command fails), producing at most max_out bytes (more: DR_EPROTO). */
int dr_delta_patch_job_new(int basis_fd, uint64_t max_out, dr_delta_job **out);
/* The same with a basis read through read(arg, pos, buf, len): up to *len bytes of the basis at
 * pos into buf, *len set to the count read (fewer is fine, 0 past the end); 0 or a DR_E* code. */
typedef int (*dr_delta_read_fn)(void *arg, uint64_t pos, void *buf, size_t *len);
int dr_delta_patch_job_new_read(dr_delta_read_fn read, void *arg, uint64_t max_out,
                                dr_delta_job **out);

/* Feeds n bytes; output goes to out (NULL for a load job). Errors: DR_EPROTO for a corrupt or
 * refused stream (message names why), the sink's own errors. */
int dr_delta_job_feed(dr_delta_job *j, const void *in, size_t n, dr_sink *out);
/* Ends the input and drains the job; DR_EPROTO when the stream is truncated. */
int dr_delta_job_finish(dr_delta_job *j, dr_sink *out);
/* Feeds fd from its current offset to its end (then finish is still to be called); *bytes the
 * count read (may be NULL). */
int dr_delta_job_feed_fd(dr_delta_job *j, int fd, dr_sink *out, uint64_t *bytes);
/* For a delta job: literal bytes (sent as is) and matched bytes (copied from the basis). */
void dr_delta_job_stats(const dr_delta_job *j, uint64_t *literal, uint64_t *matched);
/* Output bytes so far. */
uint64_t dr_delta_job_out_bytes(const dr_delta_job *j);
void dr_delta_job_free(dr_delta_job *j);
void dr_delta_sig_free(dr_delta_sig *s);

#endif
