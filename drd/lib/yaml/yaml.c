/*
 * The YAML wrapper: libyaml's event stream into a dr_yaml_node tree with positions. libyaml's
 * errors and marks (0-based) become one "file:line:column: problem" message (1-based).
 * Must never keep libyaml types past a call, or accept what the tree cannot say (aliases, tags).
 */
#include "drd/lib/yaml/yaml.h"
#include "drd/core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64

static void node_free(dr_yaml_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n * (n->kind == DR_YAML_MAP ? 2 : 1); i++)
        node_free(n->items[i]);
    free(n->items);
    free(n->value);
    free(n);
}

void dr_yaml_free(dr_yaml_doc *d)
{
    if (!d)
        return;
    node_free(d->root);
    free(d->file);
    free(d);
}

typedef struct builder {
    const char *name;
    yaml_parser_t parser;
    dr_yaml_node *stack[MAX_DEPTH];
    int pending_key[MAX_DEPTH]; /* map: a key was added, its value not yet */
    int depth;
    dr_yaml_node *root;
} builder;

static int at_error(builder *b, const yaml_mark_t *m, const char *what)
{
    return dr_error_set(DR_EUSAGE, "%s:%zu:%zu: %s", b->name, m->line + 1, m->column + 1, what);
}

/* Attaches a finished node to the open collection (or makes it the root). */
static int attach(builder *b, dr_yaml_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    dr_yaml_node *p = b->stack[b->depth - 1];
    size_t idx = p->kind == DR_YAML_MAP ? 2 * p->n + (size_t)b->pending_key[b->depth - 1] : p->n;
    dr_yaml_node **items = realloc(p->items, (idx + 1) * sizeof *items);
    if (!items)
        return dr_error_set(DR_ENOMEM, "out of memory");
    p->items = items;
    items[idx] = n;
    if (p->kind == DR_YAML_MAP) {
        if (b->pending_key[b->depth - 1]) {
            p->n++;
            b->pending_key[b->depth - 1] = 0;
        } else {
            b->pending_key[b->depth - 1] = 1;
        }
    } else {
        p->n++;
    }
    return 0;
}

static dr_yaml_node *node_new(dr_yaml_kind kind, const yaml_mark_t *m)
{
    dr_yaml_node *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = (int)m->line + 1;
        n->col = (int)m->column + 1;
    }
    return n;
}

int dr_yaml_parse(const char *name, const char *text, size_t len, dr_yaml_doc **out)
{
    builder b;
    yaml_event_t ev;
    int rc = 0, done = 0, docs = 0;
    dr_yaml_doc *d = NULL;
    memset(&b, 0, sizeof b);
    b.name = name;
    *out = NULL;
    if (!yaml_parser_initialize(&b.parser))
        return dr_error_set(DR_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&b.parser, &ev)) {
            const yaml_mark_t *m = b.parser.problem_mark.line || b.parser.problem_mark.column
                                       ? &b.parser.problem_mark
                                       : &b.parser.context_mark;
            char what[256];
            snprintf(what, sizeof what, "%s%s%s",
                     b.parser.problem ? b.parser.problem : "syntax error",
                     b.parser.context ? " " : "", b.parser.context ? b.parser.context : "");
            rc = at_error(&b, m, what);
            goto out;
        }
        dr_yaml_node *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = at_error(&b, &ev.start_mark, "a second document (one config per file)");
            break;
        case YAML_ALIAS_EVENT:
            rc = at_error(&b, &ev.start_mark, "aliases (*name) are not supported: write it out");
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                                        : ev.type == YAML_SEQUENCE_START_EVENT
                                            ? ev.data.sequence_start.anchor
                                            : ev.data.mapping_start.anchor;
            const yaml_char_t *tag = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.tag
                                     : ev.type == YAML_SEQUENCE_START_EVENT
                                         ? ev.data.sequence_start.tag
                                         : ev.data.mapping_start.tag;
            if (anchor || tag) {
                rc = at_error(&b, &ev.start_mark,
                              anchor ? "anchors (&name) are not supported"
                                     : "tags (!name) are not supported");
                break;
            }
            n = node_new(ev.type == YAML_SCALAR_EVENT           ? DR_YAML_SCALAR
                         : ev.type == YAML_SEQUENCE_START_EVENT ? DR_YAML_SEQ
                                                                : DR_YAML_MAP,
                         &ev.start_mark);
            if (!n) {
                rc = dr_error_set(DR_ENOMEM, "out of memory");
                break;
            }
            if (ev.type == YAML_SCALAR_EVENT) {
                n->value = malloc(ev.data.scalar.length + 1);
                if (!n->value) {
                    node_free(n);
                    rc = dr_error_set(DR_ENOMEM, "out of memory");
                    break;
                }
                memcpy(n->value, ev.data.scalar.value, ev.data.scalar.length);
                n->value[ev.data.scalar.length] = 0;
                if (strlen(n->value) != ev.data.scalar.length) {
                    node_free(n);
                    rc = at_error(&b, &ev.start_mark, "a NUL character in a value");
                    break;
                }
                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            }
            if (ev.type != YAML_SCALAR_EVENT && b.depth > 0 &&
                b.stack[b.depth - 1]->kind == DR_YAML_MAP && !b.pending_key[b.depth - 1]) {
                node_free(
                    n); /* "? [a, b]: x": a config key is a plain name (found by fuzz_config) */
                rc = at_error(&b, &ev.start_mark, "a key must be a plain value, not a list or map");
                break;
            }
            if ((rc = attach(&b, n)) < 0) {
                node_free(n);
                break;
            }
            if (ev.type != YAML_SCALAR_EVENT) {
                if (b.depth == MAX_DEPTH) {
                    rc = at_error(&b, &ev.start_mark, "nested too deeply");
                    break;
                }
                b.pending_key[b.depth] = 0;
                b.stack[b.depth++] = n;
            }
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            b.depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc < 0)
            goto out;
    }
    d = calloc(1, sizeof *d);
    if (!d || !(d->file = strdup(name))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    d->root = b.root;
    b.root = NULL;
    *out = d;
    d = NULL;
out:
    /* a map cut short may hold a key without its value: n counts whole pairs only. Deepest
     * first: a pending key may itself be the open collection one level down (a complex key,
     * "? {a: 1}"), whose own pending key must go before it does (found by fuzz_config) */
    for (int i = b.depth - 1; i >= 0; i--)
        if (b.pending_key[i])
            node_free(b.stack[i]->items[2 * b.stack[i]->n]);
    dr_yaml_free(d);
    node_free(b.root);
    yaml_parser_delete(&b.parser);
    return rc;
}

int dr_yaml_load(const char *path, dr_yaml_doc **out)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = dr_fs_read_all(path, 1 << 20, &text, &len);
    if (rc < 0)
        goto out;
    rc = dr_yaml_parse(path, text, len, out);
out:
    free(text);
    return rc;
}
