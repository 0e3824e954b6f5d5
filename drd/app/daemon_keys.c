/*
 * The API server encryption keys that a failover would need (docs/daemon.md, job "keys"): the
 * values of the cluster a promotion would make the primary, counted per provider and key name
 * (one paged scan at one revision, restore/enckeys.c: memory is one page and a fixed table, never
 * the keyspace), against the key names its EncryptionConfiguration offers
 * (failover.encryption_config). A key in use that the file lacks would leave that many objects
 * unreadable after the promotion: the daemon's alarm (/readyz, drd_encryption_key_missing).
 *
 * Must never print or keep a key's secret: the EncryptionConfiguration is read as a secret, for
 * its key names only, and its text is wiped once parsed.
 */
#include "drd/app/daemon.h"
#include "drd/core/core.h"
#include "drd/lib/yaml/yaml.h"
#include "restore/restore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int offered_cb(void *arg, const char *name)
{
    drd_enc_keys *k = arg;
    for (size_t i = 0; i < k->c.n; i++)
        if (!strcmp(k->c.k[i].name, name))
            k->offered[i] = 1;
    return 0;
}

/* Marks in k the names the EncryptionConfiguration at path offers. */
static int read_offered(const char *path, drd_enc_keys *k)
{
    dr_yaml_doc *doc = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = dr_fs_read_secret(path, "EncryptionConfiguration", 1 << 20, &text, &len);
    if (rc == 0)
        rc = dr_yaml_parse(path, text, len, &doc);
    if (text)
        dr_secure_zero(text, len);
    free(text);
    if (rc == 0)
        rc = dr_k8s_enc_config_keys(doc, offered_cb, k);
    dr_yaml_free(doc);
    return rc;
}

int drd_enc_keys_check(const drd_config *cfg, int cluster_i, drd_enc_keys *k)
{
    const dr_conf *c = cfg->c;
    const char *name = c->clusters[cluster_i].name, *ec = c->failover.encryption_config;
    dr_etcd *e = NULL;
    memset(k, 0, sizeof *k);
    snprintf(k->cluster, sizeof k->cluster, "%s", name);
    int rc = dr_etcd_open(&e, &c->clusters[cluster_i].etcd);
    if (rc == 0)
        rc = dr_enc_keys_scan(e, NULL, 0, 0, &k->c, &k->rev);
    dr_etcd_close(e);
    if (rc < 0)
        return dr_error_wrap(rc, "encryption key scan of %s", name);
    if (!ec)
        return 0;
    if ((rc = read_offered(ec, k)) < 0)
        return rc;
    k->compared = 1;
    snprintf(k->config, sizeof k->config, "%s", ec);
    for (size_t i = 0; i < k->c.n; i++)
        if (!k->offered[i])
            k->missing += k->c.k[i].n;
    if (k->missing) {
        char why[2048];
        drd_enc_keys_missing(k, why, sizeof why);
        rc = dr_error_set(DR_ENOTFOUND, "%s", why);
    }
    return rc;
}

void drd_enc_keys_missing(const drd_enc_keys *k, char *out, size_t cap)
{
    dr_buf keys = {0};
    for (size_t i = 0; i < k->c.n; i++)
        if (!k->offered[i])
            dr_buf_printf(&keys, "%s%s (%" PRId64 " objects)", keys.len ? ", " : "", k->c.k[i].name,
                          k->c.k[i].n);
    snprintf(out, cap,
             "%s's EncryptionConfiguration (%s) lacks %s: %" PRId64
             " objects would be unreadable after the promotion; add the keys there (and to the "
             "API servers of %s) first",
             k->cluster, k->config, keys.data ? keys.data : "", k->missing, k->cluster);
    dr_buf_free(&keys);
}

/* A label value: backslash, double quote and newline escaped (the text format's rule). */
static void label(dr_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' || s[i] == '"')
            dr_buf_printf(b, "\\%c", s[i]);
        else if (s[i] == '\n')
            dr_buf_printf(b, "\\n");
        else
            dr_buf_append(b, &s[i], 1);
    }
}

/* {cluster="west",provider="aesgcm",key="key1"} of name "aesgcm:key1". */
static void key_labels(dr_buf *b, const drd_enc_keys *k, const char *name)
{
    const char *colon = strchr(name, ':');
    size_t pl = colon ? (size_t)(colon - name) : strlen(name);
    dr_buf_printf(b, "{cluster=\"");
    label(b, k->cluster, strlen(k->cluster));
    dr_buf_printf(b, "\",provider=\"");
    label(b, name, pl);
    dr_buf_printf(b, "\",key=\"");
    label(b, colon ? colon + 1 : name, colon ? strlen(colon + 1) : strlen(name));
    dr_buf_printf(b, "\"}");
}

void drd_enc_keys_metrics(const drd_enc_keys *k, dr_buf *b)
{
    dr_buf_printf(b,
                  "# HELP drd_encryption_key_objects Values in the etcd a failover would "
                  "promote, encrypted by the API server with each key, as the last scan "
                  "counted them (provider=\"(other)\": names beyond the first %d).\n"
                  "# TYPE drd_encryption_key_objects gauge\n",
                  DR_K8S_ENC_NAMES);
    for (size_t i = 0; k && i < k->c.n; i++) {
        dr_buf_printf(b, "drd_encryption_key_objects");
        key_labels(b, k, k->c.k[i].name);
        dr_buf_printf(b, " %" PRId64 "\n", k->c.k[i].n);
    }
    if (k && k->c.other) {
        dr_buf_printf(b, "drd_encryption_key_objects");
        key_labels(b, k, "(other):(other)");
        dr_buf_printf(b, " %" PRId64 "\n", k->c.other);
    }
    dr_buf_printf(b, "# HELP drd_encryption_key_missing Of those, the objects whose key the "
                     "cluster's EncryptionConfiguration (failover.encryption_config) lacks: "
                     "unreadable after a promotion (0: it has the key).\n"
                     "# TYPE drd_encryption_key_missing gauge\n");
    for (size_t i = 0; k && k->compared && i < k->c.n; i++) {
        dr_buf_printf(b, "drd_encryption_key_missing");
        key_labels(b, k, k->c.k[i].name);
        dr_buf_printf(b, " %" PRId64 "\n", k->offered[i] ? 0 : k->c.k[i].n);
    }
}

void drd_enc_keys_json(const drd_enc_keys *k, dr_buf *b)
{
    dr_buf_printf(b, ",\"encryption_keys\":{\"cluster\":");
    dr_buf_json_str(b, k->cluster, strlen(k->cluster));
    dr_buf_printf(b, ",\"revision\":%" PRId64 ",\"values\":%" PRId64 ",\"config\":", k->rev,
                  k->c.values);
    if (k->compared)
        dr_buf_json_str(b, k->config, strlen(k->config));
    else
        dr_buf_printf(b, "null");
    dr_buf_printf(b, ",\"keys\":[");
    for (size_t i = 0; i < k->c.n; i++) {
        dr_buf_printf(b, "%s{\"name\":", i ? "," : "");
        dr_buf_json_str(b, k->c.k[i].name, strlen(k->c.k[i].name));
        dr_buf_printf(b, ",\"objects\":%" PRId64 ",\"missing\":%s}", k->c.k[i].n,
                      !k->compared    ? "null"
                      : k->offered[i] ? "false"
                                      : "true");
    }
    dr_buf_printf(b, "],\"other\":%" PRId64 ",\"missing_objects\":%" PRId64 "}", k->c.other,
                  k->missing);
}

void drd_enc_keys_text(const drd_enc_keys *k, dr_buf *b)
{
    char line[1024];
    dr_k8s_enc_counts_line(&k->c, line, sizeof line);
    dr_buf_printf(
        b, "  encryption keys in use on %s at revision %" PRId64 " (%" PRId64 " values read): %s\n",
        k->cluster, k->rev, k->c.values, line);
    if (!k->compared) {
        dr_buf_printf(b, "  not compared: failover.encryption_config is not set\n");
        return;
    }
    if (!k->missing) {
        dr_buf_printf(b, "  all offered by its EncryptionConfiguration %s\n", k->config);
        return;
    }
    dr_buf_printf(b, "  MISSING from its EncryptionConfiguration %s:", k->config);
    for (size_t i = 0, n = 0; i < k->c.n; i++)
        if (!k->offered[i])
            dr_buf_printf(b, "%s %s (%" PRId64 " objects)", n++ ? "," : "", k->c.k[i].name,
                          k->c.k[i].n);
    dr_buf_printf(b, "\n");
}
