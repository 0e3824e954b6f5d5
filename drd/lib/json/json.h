/*
 * drd json: reading small JSON documents (manifests, reports) on jansson. The only module that
 * includes <jansson.h>. Writing JSON is done with dr_buf_json_str (core), which needs no library.
 * Must never be used for unbounded input: callers pass documents they read with a size cap.
 */
#ifndef DRD_JSON_H
#define DRD_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct dr_json dr_json;

/* Parses a JSON object. DR_EPROTO (with line and column) when it is not valid JSON or not an
 * object. Caller frees with dr_json_free. */
int dr_json_parse(const char *text, size_t len, dr_json **out);
void dr_json_free(dr_json *j);
/* Lookups by a dotted path of object members ("revision.end"). */
/* The string at path, or NULL when absent or not a string (borrowed from j). */
const char *dr_json_str(const dr_json *j, const char *path);
/* The integer at path: 0, DR_ENOTFOUND (absent) or DR_EPROTO (not an integer, names path). */
int dr_json_i64(const dr_json *j, const char *path, int64_t *out);
/* Calls cb for every member of the object at path whose value is a string, in document order.
 * Absent path: no calls, returns 0. cb returning non-zero stops and is returned. */
typedef int (*dr_json_str_cb)(void *ctx, const char *key, const char *value);
int dr_json_each_str(const dr_json *j, const char *path, dr_json_str_cb cb, void *ctx);

/* Calls cb for every member of the object at path, in document order, with its integer value.
 * Absent path: no calls, returns 0. DR_EPROTO naming the member when one is not an integer, or
 * naming path when it is not an object. cb returning non-zero stops and is returned. */
typedef int (*dr_json_i64_cb)(void *ctx, const char *key, int64_t value);
int dr_json_each_i64(const dr_json *j, const char *path, dr_json_i64_cb cb, void *ctx);

#endif
