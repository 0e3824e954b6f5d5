/*
 * s3:// driver, internal: reading what comes from outside the process, the S3 server's XML
 * answers (listings, multipart upload lists, error bodies) and the AWS credentials file
 * (s3_parse.c). Separate from the request engine so that tests/fuzz can drive every parser
 * without a server. Every input here is untrusted: a parser returns DR_EPROTO (or skips what it
 * does not understand), never reads outside the bytes given, and never puts a credential into a
 * message.
 */
#ifndef DRD_OBJSTORE_S3_PARSE_H
#define DRD_OBJSTORE_S3_PARSE_H

#include "drd/lib/objstore/objstore.h"

#include <stddef.h>
#include <stdint.h>

/* Text of the first element named name (any depth) of an XML document, into out (truncated to
 * cap - 1 bytes); 0 when found, -1 (no message) when not or when the document is unreadable. */
int s3_xml_text(const char *xml, size_t len, const char *name, char *out, size_t cap);
/* Whether the document's root element is name. */
int s3_xml_root_is(const char *xml, size_t len, const char *name);
/* "2026-01-02T03:04:05.678Z" -> ms since the epoch; 0 when unparsable or out of range. */
int64_t s3_parse_iso_ms(const char *t);

/* One page of a ListObjectsV2 answer: cb for each <Contents> whose Key starts with prefix and is
 * longer (name relative to prefix), in document order; cb's non-zero return stops and is
 * returned. *next_token: NULL when the listing is complete, else the continuation token (caller
 * frees). DR_EPROTO naming what (a store URL) when unreadable or truncated without a token. */
int s3_list_parse(const char *xml, size_t len, const char *what, const char *prefix,
                  dr_store_list_cb cb, void *ctx, char **next_token);

/* One page of a ListMultipartUploads answer: cb for each <Upload> (key, upload id, initiation
 * time in ms as s3_parse_iso_ms gives it, and as written); cb's non-zero return stops and is
 * returned. *key_marker and *id_marker: NULL when the list is complete, else the markers of the
 * next page (caller frees). DR_EPROTO naming what when unreadable or truncated without markers. */
typedef int (*s3_upload_cb)(void *ctx, const char *key, const char *upload_id, int64_t initiated_ms,
                            const char *initiated);
int s3_uploads_parse(const char *xml, size_t len, const char *what, s3_upload_cb cb, void *ctx,
                     char **key_marker, char **id_marker);

/* The keys of profile in the text of an AWS credentials file (INI; text is modified). *id,
 * *secret, *token: new strings (caller wipes and frees) or NULL when absent. DR_ENOMEM only:
 * what is missing is for the caller to judge. */
int s3_creds_parse(char *text, const char *profile, char **id, char **secret, char **token);
/* Overwrites a string (a credential) with zeros and frees it; NULL is fine. */
void s3_wipe_free(char *p);

#endif
