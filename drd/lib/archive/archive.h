/*
 * drd archive: the container of snapshots and segments, a tar (POSIX pax/ustar) stream,
 * optionally zstd-compressed, on libarchive. The only module that includes <archive.h>; it
 * turns ARCHIVE_* results into DR_E* codes. Streams in both directions with bounded memory:
 * the writer pushes into a dr_sink, the reader pulls from a dr_source.
 * Must never buffer a whole entry.
 */
#ifndef DRD_ARCHIVE_H
#define DRD_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "drd/core/core.h"

typedef enum { DR_COMPRESS_NONE = 0, DR_COMPRESS_ZSTD = 1 } dr_compress;

typedef struct dr_archive_writer dr_archive_writer;
/* A tar writer into out (borrowed; finished by dr_archive_writer_finish). level: zstd level,
 * 0 = default (1: on etcd databases it stores as small as 3 at a third of the CPU); DR_EUSAGE for a
 * level libzstd refuses. Errors of out come back with their own code and message. After any error
 * the writer is unusable (every call but free fails) and out is never finished, so an incomplete
 * archive never becomes visible. */
int dr_archive_writer_new(dr_sink *out, dr_compress c, int level, dr_archive_writer **w);
/* Starts an entry of exactly size bytes (a regular file, mode 0600, mtime in seconds). name:
 * printable ASCII, not empty, no leading '/' (DR_EINVAL otherwise). */
int dr_archive_entry_begin(dr_archive_writer *w, const char *name, uint64_t size, int64_t mtime);
/* DR_EINVAL (nothing written) when the entry would get more bytes than announced. */
int dr_archive_entry_write(dr_archive_writer *w, const void *data, size_t len);
/* Ends the entry; DR_EINVAL when fewer/more bytes than announced were written. */
int dr_archive_entry_end(dr_archive_writer *w);
/* Writes the end of archive, flushes the compressor and finishes out. */
int dr_archive_writer_finish(dr_archive_writer *w);
/* Frees the writer (not out). An unfinished writer writes nothing more into out and does not
 * finish it. */
void dr_archive_writer_free(dr_archive_writer *w);
/* The writer as a sink for the current entry's bytes (borrowed; finish/free are no-ops on it). */
dr_sink *dr_archive_entry_sink(dr_archive_writer *w);

typedef struct dr_archive_reader dr_archive_reader;
/* A reader over in (borrowed); detects zstd or plain tar. Errors of in (e.g. DR_ECHECKSUM from
 * a decrypting source) come back with their own code and message; after any error the reader is
 * unusable. */
int dr_archive_reader_new(dr_source *in, dr_archive_reader **r);
/* Moves to the next entry (skipping what is left of the current one): 0 and fills name (cap
 * bytes) and *size; DR_ENOTFOUND at the end of the archive; DR_EPROTO (corrupt or truncated
 * archive, including one that stops without its end-of-archive records, or a name of cap bytes
 * or more). */
int dr_archive_next(dr_archive_reader *r, char *name, size_t cap, uint64_t *size);
/* Reads the current entry's data; *n == 0 at its end. DR_EINVAL before the first entry or after
 * the end of the archive. */
int dr_archive_read(dr_archive_reader *r, void *buf, size_t cap, size_t *n);
/* The reader as a source over the current entry (borrowed; free is a no-op on it). */
dr_source *dr_archive_entry_source(dr_archive_reader *r);
void dr_archive_reader_free(dr_archive_reader *r);

#endif
