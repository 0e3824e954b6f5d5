/*
 * JSON reading on jansson: path lookups over a parsed object.
 * Must never abort on malformed input: every failure is a DR_EPROTO with jansson's position.
 */
#include "drd/lib/json/json.h"
#include "drd/core/core.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dr_json {
    json_t *root;
};

int dr_json_parse(const char *text, size_t len, dr_json **out)
{
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return dr_error_set(DR_EPROTO, "invalid JSON at line %d column %d: %s", err.line,
                            err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return dr_error_set(DR_EPROTO, "invalid JSON: not an object");
    }
    dr_json *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(root);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    j->root = root;
    *out = j;
    return 0;
}

void dr_json_free(dr_json *j)
{
    if (!j)
        return;
    json_decref(j->root);
    free(j);
}

static json_t *lookup(const dr_json *j, const char *path)
{
    json_t *cur = j->root;
    char part[128];
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part)
            return NULL;
        memcpy(part, p, n);
        part[n] = 0;
        cur = json_is_object(cur) ? json_object_get(cur, part) : NULL;
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

const char *dr_json_str(const dr_json *j, const char *path)
{
    json_t *v = lookup(j, path);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int dr_json_i64(const dr_json *j, const char *path, int64_t *out)
{
    json_t *v = lookup(j, path);
    if (!v)
        return dr_error_set(DR_ENOTFOUND, "'%s' is missing", path);
    if (!json_is_integer(v))
        return dr_error_set(DR_EPROTO, "'%s' is not an integer", path);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int dr_json_each_str(const dr_json *j, const char *path, dr_json_str_cb cb, void *ctx)
{
    json_t *obj = lookup(j, path);
    if (!json_is_object(obj))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!json_is_string(v))
            continue;
        int rc = cb(ctx, k, json_string_value(v));
        if (rc)
            return rc;
    }
    return 0;
}

int dr_json_each_i64(const dr_json *j, const char *path, dr_json_i64_cb cb, void *ctx)
{
    json_t *obj = lookup(j, path);
    if (!obj)
        return 0;
    if (!json_is_object(obj))
        return dr_error_set(DR_EPROTO, "'%s' is not an object", path);
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!json_is_integer(v))
            return dr_error_set(DR_EPROTO, "'%s.%s' is not an integer", path, k);
        int rc = cb(ctx, k, (int64_t)json_integer_value(v));
        if (rc)
            return rc;
    }
    return 0;
}
