/*
 * drd yaml: YAML documents (the daemon's config) read into a plain tree of maps, sequences and
 * scalars, each node with its line and column, on libyaml (the only module that includes
 * <yaml.h>). Models (policies/) walk the tree and report "file:line:column: message".
 * Must never resolve anchors, aliases, tags or merge keys: a config means what it says where it
 * says it; they are refused with their position.
 */
#ifndef DRD_YAML_H
#define DRD_YAML_H

#include <stddef.h>

typedef enum { DR_YAML_SCALAR = 0, DR_YAML_MAP, DR_YAML_SEQ } dr_yaml_kind;

typedef struct dr_yaml_node {
    dr_yaml_kind kind;
    int line, col;               /* 1-based, where the node starts */
    char *value;                 /* scalar: the text (NUL-terminated; "" for an empty value) */
    int plain;                   /* scalar: unquoted, so true/false/numbers/null read as such */
    size_t n;                    /* seq: items; map: pairs */
    struct dr_yaml_node **items; /* seq: items[i]; map: key items[2i], value items[2i+1] */
} dr_yaml_node;

typedef struct dr_yaml_doc {
    char *file;         /* the name given for messages */
    dr_yaml_node *root; /* NULL for an empty document */
} dr_yaml_doc;

/* Parses text (len bytes) named name (in messages) into *out (caller frees with dr_yaml_free).
 * DR_EUSAGE "name:line:column: problem" for a syntax error, an alias, anchor or tag, or a second
 * document; DR_ENOMEM. */
int dr_yaml_parse(const char *name, const char *text, size_t len, dr_yaml_doc **out);
/* Reads path (at most 1 MiB) and parses it. DR_ENOTFOUND / DR_EIO naming the file. */
int dr_yaml_load(const char *path, dr_yaml_doc **out);
void dr_yaml_free(dr_yaml_doc *d);

#endif
