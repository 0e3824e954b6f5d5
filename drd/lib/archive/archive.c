/*
 * The container: tar (pax restricted: ustar headers, pax extended headers only when a field does
 * not fit, e.g. entries of 8 GiB or more) optionally compressed with zstd, on libarchive.
 * libarchive runs zstd in-process (libzstd); a build that would spawn an external zstd program is
 * refused. Every ARCHIVE_* result is turned into a DR_E* code by la_rc(), and an error from our
 * own sink or source is returned with its own code and message, never as a libarchive error.
 * Must never buffer a whole entry, write an archive that claims more or fewer bytes than it
 * holds, or finish the output sink unless the archive is complete.
 *
 * Writer states (any error moves to FAILED, from which only free is valid):
 *   OPEN --entry_begin--> ENTRY --entry_end--> OPEN --finish--> DONE
 * Reader states:
 *   IDLE --next ok--> ENTRY --next ok--> ENTRY ... --next at end--> END;  any error --> FAILED
 */
#include "drd/lib/archive/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output block: what the sink receives per write; the last block is not padded (tar itself pads
 * every record to 512 bytes and ends with two zero records, so the result stays a valid tar). */
enum { WRITE_BLOCK = 64 * 1024 };
/* Input chunk pulled from the source per read callback. */
enum { READ_CHUNK = 256 * 1024 };
enum { TAR_RECORD = 512 };

/* The one place ARCHIVE_* results become DR_E* codes. *stream_rc is the first error our own sink
 * or source returned inside a callback (read through a pointer, after the libarchive call that
 * ran the callback has returned): it wins, with the message it already set. Everything else
 * libarchive reports becomes code (DR_EPROTO when reading: the archive is corrupt or truncated),
 * DR_ENOMEM for allocation failures, DR_ENOTFOUND for the end of the archive. */
static int la_rc(struct archive *a, int r, const int *stream_rc, int code, const char *what)
{
    /* first: libarchive sometimes shrugs off a failed read (e.g. while looking for the second
     * end-of-archive record), but a failed source, like a last chunk that does not
     * authenticate, must never go unnoticed */
    if (stream_rc && *stream_rc < 0)
        return *stream_rc;
    if (r == ARCHIVE_OK)
        return 0;
    if (r == ARCHIVE_EOF)
        return dr_error_set(DR_ENOTFOUND, "%s: end of archive", what);
    const char *msg = a ? archive_error_string(a) : NULL;
    if (a && archive_errno(a) == ENOMEM)
        code = DR_ENOMEM;
    return dr_error_set(code, "%s: %s", what, msg && *msg ? msg : "unknown libarchive error");
}

/* ---- writer ---- */

typedef enum { W_OPEN = 0, W_ENTRY, W_DONE, W_FAILED } wstate;

struct dr_archive_writer {
    struct archive *a;
    dr_sink *out;  /* borrowed */
    dr_sink entry; /* dr_archive_entry_sink's view */
    wstate state;
    int sink_rc;   /* first error of out */
    int aborting;  /* freeing unfinished: nothing more reaches out */
    uint64_t size; /* announced size of the current entry */
    uint64_t written;
    char name[128]; /* current entry, for messages */
};

static la_ssize_t write_cb(struct archive *a, void *client, const void *buf, size_t len)
{
    dr_archive_writer *w = client;
    if (w->aborting || w->sink_rc < 0) {
        archive_set_error(a, EIO, "output abandoned");
        return -1;
    }
    int rc = dr_sink_write(w->out, buf, len);
    if (rc < 0) {
        w->sink_rc = rc;
        archive_set_error(a, EIO, "output stream failed");
        return -1;
    }
    return (la_ssize_t)len;
}

static int writer_fail(dr_archive_writer *w, int rc)
{
    w->state = W_FAILED;
    return rc;
}

static int writer_usable(dr_archive_writer *w, const char *what)
{
    if (w->state == W_FAILED)
        return dr_error_set(DR_EINVAL, "%s: archive writer is unusable after an earlier error",
                            what);
    if (w->state == W_DONE)
        return dr_error_set(DR_EINVAL, "%s: archive is already finished", what);
    return 0;
}

static int entry_sink_write(dr_sink *s, const void *data, size_t len)
{
    dr_archive_writer *w =
        (dr_archive_writer *)(void *)((char *)s - offsetof(dr_archive_writer, entry));
    return dr_archive_entry_write(w, data, len);
}

static int entry_sink_finish(dr_sink *s)
{
    (void)s;
    return 0;
}

static void entry_sink_free(dr_sink *s)
{
    (void)s;
}

static const dr_sink_ops entry_sink_ops = {entry_sink_write, entry_sink_finish, entry_sink_free};

int dr_archive_writer_new(dr_sink *out, dr_compress c, int level, dr_archive_writer **wp)
{
    int rc = 0;
    char lv[16];
    dr_archive_writer *w = NULL;
    *wp = NULL;
    if (c != DR_COMPRESS_NONE && c != DR_COMPRESS_ZSTD)
        return dr_error_set(DR_EUSAGE, "unknown archive compression %d", (int)c);
    if (!(w = calloc(1, sizeof *w)))
        return dr_error_set(DR_ENOMEM, "out of memory");
    w->out = out;
    w->entry.ops = &entry_sink_ops;
    if (!(w->a = archive_write_new())) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = la_rc(w->a, archive_write_set_format_pax_restricted(w->a), NULL, DR_EGENERIC,
                    "cannot set tar format")) < 0)
        goto out;
    if (c == DR_COMPRESS_ZSTD) {
        /* ARCHIVE_WARN here means "Using external zstd program": refused, zstd runs in-process */
        if ((rc = la_rc(w->a, archive_write_add_filter_zstd(w->a), NULL, DR_EGENERIC,
                        "cannot set up zstd")) < 0)
            goto out;
        snprintf(lv, sizeof lv, "%d", level ? level : 1);
        if (archive_write_set_filter_option(w->a, "zstd", "compression-level", lv) != ARCHIVE_OK) {
            rc = dr_error_set(DR_EUSAGE, "invalid zstd compression level %d", level);
            goto out;
        }
    }
    if ((rc = la_rc(w->a, archive_write_set_bytes_per_block(w->a, WRITE_BLOCK), NULL, DR_EGENERIC,
                    "cannot set block size")) < 0 ||
        (rc = la_rc(w->a, archive_write_set_bytes_in_last_block(w->a, 1), NULL, DR_EGENERIC,
                    "cannot set block size")) < 0)
        goto out;
    rc = la_rc(w->a, archive_write_open2(w->a, w, NULL, write_cb, NULL, NULL), &w->sink_rc,
               DR_EGENERIC, "cannot open archive writer");
out:
    if (rc < 0) {
        w->state = W_FAILED;
        dr_archive_writer_free(w);
    } else {
        *wp = w;
    }
    return rc;
}

static int name_ok(const char *name)
{
    if (!name || !*name || name[0] == '/')
        return 0;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return 0;
    return 1;
}

int dr_archive_entry_begin(dr_archive_writer *w, const char *name, uint64_t size, int64_t mtime)
{
    int rc = 0;
    char what[200];
    struct archive_entry *e = NULL;
    if ((rc = writer_usable(w, "cannot begin archive entry")) < 0)
        return rc;
    if (w->state == W_ENTRY)
        return writer_fail(w, dr_error_set(DR_EINVAL,
                                           "cannot begin archive entry: entry '%s' is still open",
                                           w->name));
    if (!name_ok(name))
        return dr_error_set(DR_EINVAL, "invalid archive entry name '%s'", name ? name : "");
    if (size > (uint64_t)INT64_MAX)
        return dr_error_set(DR_EINVAL, "archive entry '%s' is too large", name);
    if (!(e = archive_entry_new())) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_mtime(e, (time_t)mtime, 0);
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(what, sizeof what, "cannot write header of archive entry '%s'", w->name);
    if ((rc = la_rc(w->a, archive_write_header(w->a, e), &w->sink_rc, DR_EGENERIC, what)) < 0) {
        rc = writer_fail(w, rc);
        goto out;
    }
    w->state = W_ENTRY;
    w->size = size;
    w->written = 0;
out:
    archive_entry_free(e);
    return rc;
}

int dr_archive_entry_write(dr_archive_writer *w, const void *data, size_t len)
{
    int rc = 0;
    const char *p = data;
    if ((rc = writer_usable(w, "cannot write archive entry")) < 0)
        return rc;
    if (w->state != W_ENTRY)
        return writer_fail(w, dr_error_set(DR_EINVAL, "cannot write archive entry: no entry open"));
    if (len > w->size - w->written)
        return writer_fail(w, dr_error_set(DR_EINVAL,
                                           "archive entry '%s': writing %zu more bytes than the "
                                           "%llu announced",
                                           w->name, len - (size_t)(w->size - w->written),
                                           (unsigned long long)w->size));
    while (len) {
        /* libarchive writes at most INT_MAX bytes per call and says how many */
        la_ssize_t n = archive_write_data(w->a, p, len);
        if (n <= 0) {
            rc = la_rc(w->a, n < 0 ? (int)n : ARCHIVE_FATAL, &w->sink_rc, DR_EGENERIC,
                       "cannot write archive entry");
            return writer_fail(w, rc);
        }
        p += n;
        len -= (size_t)n;
        w->written += (uint64_t)n;
    }
    return 0;
}

int dr_archive_entry_end(dr_archive_writer *w)
{
    int rc = 0;
    if ((rc = writer_usable(w, "cannot end archive entry")) < 0)
        return rc;
    if (w->state != W_ENTRY)
        return writer_fail(w, dr_error_set(DR_EINVAL, "cannot end archive entry: no entry open"));
    if (w->written != w->size)
        return writer_fail(
            w, dr_error_set(DR_EINVAL, "archive entry '%s': %llu bytes written, %llu announced",
                            w->name, (unsigned long long)w->written, (unsigned long long)w->size));
    if ((rc = la_rc(w->a, archive_write_finish_entry(w->a), &w->sink_rc, DR_EGENERIC,
                    "cannot end archive entry")) < 0)
        return writer_fail(w, rc);
    w->state = W_OPEN;
    return 0;
}

dr_sink *dr_archive_entry_sink(dr_archive_writer *w)
{
    return &w->entry;
}

int dr_archive_writer_finish(dr_archive_writer *w)
{
    int rc = 0;
    if ((rc = writer_usable(w, "cannot finish archive")) < 0)
        return rc;
    if (w->state == W_ENTRY)
        return writer_fail(
            w, dr_error_set(DR_EINVAL, "cannot finish archive: entry '%s' is still open", w->name));
    /* end-of-archive records, the zstd frame's end, the last (unpadded) block */
    if ((rc = la_rc(w->a, archive_write_close(w->a), &w->sink_rc, DR_EGENERIC,
                    "cannot finish archive")) < 0)
        return writer_fail(w, rc);
    if ((rc = dr_sink_finish(w->out)) < 0)
        return writer_fail(w, rc);
    w->state = W_DONE;
    return 0;
}

void dr_archive_writer_free(dr_archive_writer *w)
{
    if (!w)
        return;
    if (w->a) {
        if (w->state != W_DONE) {
            /* Unfinished: close with the output cut off, so nothing more reaches out and out is
             * never finished. The explicit close also releases libarchive 3.6's output block
             * buffer, which archive_write_free leaks when the archive is in its fatal state. */
            w->aborting = 1;
            archive_write_close(w->a);
        }
        archive_write_free(w->a);
    }
    free(w);
}

/* ---- reader ---- */

typedef enum { R_IDLE = 0, R_ENTRY, R_END, R_FAILED } rstate;

struct dr_archive_reader {
    struct archive *a;
    dr_source *in;   /* borrowed */
    dr_source entry; /* dr_archive_entry_source's view */
    rstate state;
    int src_rc; /* first error of in */
    int err;    /* the error that moved us to R_FAILED */
    int entry_done;
    /* offset in the tar stream (after decompression) where the current entry's padded data
     * ends: the end-of-archive marker must follow there */
    int64_t entry_end;
    char *buf;
};

static la_ssize_t read_cb(struct archive *a, void *client, const void **buf)
{
    dr_archive_reader *r = client;
    size_t n = 0;
    int rc = dr_source_read(r->in, r->buf, READ_CHUNK, &n);
    if (rc < 0) {
        if (!r->src_rc)
            r->src_rc = rc;
        archive_set_error(a, EIO, "input stream failed");
        return -1;
    }
    *buf = r->buf;
    return (la_ssize_t)n;
}

static int reader_fail(dr_archive_reader *r, int rc)
{
    r->state = R_FAILED;
    r->err = rc;
    return rc;
}

static int entry_source_read(dr_source *s, void *buf, size_t cap, size_t *n)
{
    dr_archive_reader *r =
        (dr_archive_reader *)(void *)((char *)s - offsetof(dr_archive_reader, entry));
    return dr_archive_read(r, buf, cap, n);
}

static void entry_source_free(dr_source *s)
{
    (void)s;
}

static const dr_source_ops entry_source_ops = {entry_source_read, entry_source_free};

int dr_archive_reader_new(dr_source *in, dr_archive_reader **rp)
{
    int rc = 0;
    dr_archive_reader *r = NULL;
    *rp = NULL;
    if (!(r = calloc(1, sizeof *r)) || !(r->buf = malloc(READ_CHUNK))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    r->in = in;
    r->entry.ops = &entry_source_ops;
    if (!(r->a = archive_read_new())) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    /* ARCHIVE_WARN from the zstd filter means an external program would be used: refused */
    if ((rc = la_rc(r->a, archive_read_support_filter_zstd(r->a), NULL, DR_EGENERIC,
                    "cannot set up zstd")) < 0 ||
        (rc = la_rc(r->a, archive_read_support_filter_none(r->a), NULL, DR_EGENERIC,
                    "cannot set up archive reader")) < 0 ||
        (rc = la_rc(r->a, archive_read_support_format_tar(r->a), NULL, DR_EGENERIC,
                    "cannot set up archive reader")) < 0)
        goto out;
    rc = la_rc(r->a, archive_read_open2(r->a, r, NULL, read_cb, NULL, NULL), &r->src_rc, DR_EPROTO,
               "cannot open archive");
out:
    if (rc < 0) {
        dr_archive_reader_free(r);
    } else {
        *rp = r;
    }
    return rc;
}

int dr_archive_next(dr_archive_reader *r, char *name, size_t cap, uint64_t *size)
{
    int rc = 0;
    struct archive_entry *e = NULL;
    if (r->state == R_FAILED)
        return dr_error_set(r->err, "archive reader is unusable after an earlier error");
    if (r->state == R_END)
        return dr_error_set(DR_ENOTFOUND, "end of archive");
    int la = archive_read_next_header(r->a, &e);
    if (la == ARCHIVE_EOF && !r->src_rc) {
        /* libarchive also accepts a tar that simply stops after an entry; ours always end with
         * the zero records, so a stream that stops without them was cut off */
        if (archive_filter_bytes(r->a, 0) < r->entry_end + TAR_RECORD)
            return reader_fail(r, dr_error_set(DR_EPROTO, "truncated archive: it ends without "
                                                          "the end-of-archive marker"));
        r->state = R_END;
        return la_rc(r->a, la, NULL, DR_EPROTO, "archive");
    }
    if ((rc = la_rc(r->a, la, &r->src_rc, DR_EPROTO, "corrupt archive")) < 0)
        return reader_fail(r, rc);
    const char *pn = archive_entry_pathname(e);
    if (!pn || archive_entry_filetype(e) != AE_IFREG || !archive_entry_size_is_set(e) ||
        archive_entry_size(e) < 0)
        return reader_fail(r, dr_error_set(DR_EPROTO,
                                           "corrupt archive: entry '%s' is not a regular file "
                                           "with a size",
                                           pn ? pn : "?"));
    size_t len = strlen(pn);
    if (len >= cap)
        return reader_fail(r, dr_error_set(DR_EPROTO,
                                           "archive entry name '%.64s' is longer than %zu bytes",
                                           pn, cap ? cap - 1 : 0));
    /* a pax header may claim any size up to 2^63 - 1: the end of its data must still be an
     * offset (no signed overflow below) */
    uint64_t padded = ((uint64_t)archive_entry_size(e) + TAR_RECORD - 1) / TAR_RECORD * TAR_RECORD;
    int64_t at = archive_filter_bytes(r->a, 0);
    if (at < 0 || padded > (uint64_t)(INT64_MAX - at))
        return reader_fail(r, dr_error_set(DR_EPROTO,
                                           "corrupt archive: entry '%.64s' claims %lld bytes", pn,
                                           (long long)archive_entry_size(e)));
    memcpy(name, pn, len + 1);
    *size = (uint64_t)archive_entry_size(e);
    r->entry_end = at + (int64_t)padded;
    r->state = R_ENTRY;
    r->entry_done = 0;
    return 0;
}

int dr_archive_read(dr_archive_reader *r, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (r->state == R_FAILED)
        return dr_error_set(r->err, "archive reader is unusable after an earlier error");
    if (r->state != R_ENTRY)
        return dr_error_set(DR_EINVAL, "cannot read archive: no current entry");
    if (r->entry_done || !cap)
        return 0;
    la_ssize_t got = archive_read_data(r->a, buf, cap);
    int rc = la_rc(r->a, got < 0 ? (int)got : ARCHIVE_OK, &r->src_rc, DR_EPROTO, "corrupt archive");
    if (rc < 0)
        return reader_fail(r, rc);
    if (!got)
        r->entry_done = 1;
    *n = (size_t)got;
    return 0;
}

dr_source *dr_archive_entry_source(dr_archive_reader *r)
{
    return &r->entry;
}

void dr_archive_reader_free(dr_archive_reader *r)
{
    if (!r)
        return;
    archive_read_free(r->a);
    free(r->buf);
    free(r);
}
