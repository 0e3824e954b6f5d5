/*
 * Kubernetes encryption at rest, as drd's check steps see it: which provider and key name a value
 * stored by the API server needs ("k8s:enc:<provider>:v<N>:<key name>:<ciphertext>"), and which
 * key names an EncryptionConfiguration offers. A standby whose configuration lacks a key in use
 * has unreadable Secrets after a failover; the check step refuses that (drd/app/runbook.c).
 *
 * Pure: no I/O. dr_k8s_enc_key reads untrusted bytes (any etcd value): bounded, fuzzed
 * (tests/fuzz/fuzz_enckey.c).
 */
#include "policies/policies.h"
#include "drd/core/core.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int dr_k8s_enc_key(const void *val, size_t len, char *out, size_t cap)
{
    const char *v = val, *p;
    size_t n;
    if (len < 8 || memcmp(v, "k8s:enc:", 8) != 0 || cap < 8)
        return 0;
    p = v + 8;
    len -= 8;
    /* provider: letters and digits */
    for (n = 0; n < len && n < 32 && isalnum((unsigned char)p[n]); n++)
        ;
    if (n == 0 || n >= len || p[n] != ':')
        return 0;
    size_t pl = n;
    const char *ver = p + n + 1;
    size_t left = len - n - 1;
    /* version: "v" and digits */
    for (n = 0; n < left && n < 8 && (n == 0 ? ver[n] == 'v' : isdigit((unsigned char)ver[n])); n++)
        ;
    if (n < 2 || n >= left || ver[n] != ':')
        return 0;
    const char *name = ver + n + 1;
    left -= n + 1;
    /* key name: up to the next ':' (Kubernetes allows any name without ':') */
    for (n = 0; n < left && n < 250 && name[n] != ':'; n++)
        if ((unsigned char)name[n] < 0x21 || (unsigned char)name[n] > 0x7e)
            return 0;
    if (n == 0 || n >= left || name[n] != ':')
        return 0;
    int w = snprintf(out, cap, "%.*s:%.*s", (int)pl, p, (int)n, name);
    return w > 0 && (size_t)w < cap;
}

void dr_k8s_enc_counts_add(dr_k8s_enc_counts *c, const void *val, size_t len)
{
    char name[sizeof c->k[0].name];
    c->values++;
    if (!dr_k8s_enc_key(val, len, name, sizeof name))
        return;
    size_t i = 0;
    while (i < c->n && strcmp(c->k[i].name, name))
        i++;
    if (i == c->n && c->n < DR_K8S_ENC_NAMES)
        memcpy(c->k[c->n++].name, name, sizeof name);
    if (i < c->n)
        c->k[i].n++;
    else
        c->other++;
}

int dr_k8s_enc_counts_json(const dr_k8s_enc_counts *c, dr_buf *out)
{
    int rc = dr_buf_printf(out, "{\"values\": %" PRId64 ", \"keys\": {", c->values);
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        if (i && (rc = dr_buf_printf(out, ", ")) < 0)
            break;
        if ((rc = dr_buf_json_str(out, c->k[i].name, strlen(c->k[i].name))) == 0)
            rc = dr_buf_printf(out, ": %" PRId64, c->k[i].n);
    }
    if (rc == 0)
        rc = dr_buf_printf(out, "}, \"other\": %" PRId64 "}", c->other);
    return rc;
}

void dr_k8s_enc_counts_line(const dr_k8s_enc_counts *c, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return;
    out[0] = 0;
    for (size_t i = 0; i < c->n && o < cap; i++) {
        int w = snprintf(out + o, cap - o, "%s%s (%" PRId64 ")", i ? ", " : "", c->k[i].name,
                         c->k[i].n);
        o = w < 0 ? cap : o + (size_t)w;
    }
    if (c->other && o < cap) {
        int w = snprintf(out + o, cap - o, "%s%" PRId64 " of other keys", o ? ", " : "", c->other);
        o = w < 0 ? cap : o + (size_t)w;
    }
    if (!c->n && !c->other)
        snprintf(out, cap, "none");
    else if (o >= cap && cap > 4)
        memcpy(out + cap - 4, "...", 4);
}

static const dr_yaml_node *get(const dr_yaml_node *map, const char *key)
{
    if (!map || map->kind != DR_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (map->items[2 * i]->kind == DR_YAML_SCALAR && !strcmp(map->items[2 * i]->value, key))
            return map->items[2 * i + 1];
    return NULL;
}

int dr_k8s_enc_config_keys(const dr_yaml_doc *doc, dr_k8s_key_cb cb, void *ctx)
{
    const dr_yaml_node *res = get(doc->root, "resources");
    char name[300];
    int rc = 0;
    if (!res || res->kind != DR_YAML_SEQ)
        return dr_error_set(
            DR_EUSAGE, "%s:%d:%d: not an EncryptionConfiguration (no resources list)", doc->file,
            doc->root ? doc->root->line : 1, doc->root ? doc->root->col : 1);
    for (size_t i = 0; i < res->n && rc == 0; i++) {
        const dr_yaml_node *provs = get(res->items[i], "providers");
        if (!provs || provs->kind != DR_YAML_SEQ)
            continue;
        for (size_t j = 0; j < provs->n && rc == 0; j++) {
            const dr_yaml_node *p = provs->items[j];
            if (p->kind != DR_YAML_MAP)
                continue;
            for (size_t k = 0; k < p->n && rc == 0; k++) {
                const char *prov = p->items[2 * k]->value;
                const dr_yaml_node *body = p->items[2 * k + 1];
                const dr_yaml_node *keys = get(body, "keys"), *kname = get(body, "name");
                if (!strcmp(prov, "kms") && kname && kname->kind == DR_YAML_SCALAR) {
                    /* KMS v1 values carry the provider's name; v2 the same name */
                    snprintf(name, sizeof name, "kms:%s", kname->value);
                    rc = cb(ctx, name);
                }
                for (size_t m = 0; keys && keys->kind == DR_YAML_SEQ && m < keys->n && rc == 0;
                     m++) {
                    const dr_yaml_node *kn = get(keys->items[m], "name");
                    if (kn && kn->kind == DR_YAML_SCALAR) {
                        snprintf(name, sizeof name, "%s:%s", prov, kn->value);
                        rc = cb(ctx, name);
                    }
                }
            }
        }
    }
    return rc;
}
