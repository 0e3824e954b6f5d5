/*
 * The daemon's config model: the option table (config keys and flags, one row per setting) and
 * the walk that turns a YAML tree into validated records (dr_conf).
 *
 * Must never: read files or the environment, accept a key it does not know, accept a secret
 * inline (keys, passwords and tokens live in files or the environment, named here), or report an
 * error without "file:line:column".
 */
#include "policies/policies.h"
#include "drd/core/core.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(f) offsetof(dr_conf, f)
#define E(f) offsetof(dr_etcd_opts, f)
#define R(f) offsetof(dr_repo_opts, f)
#define J(f) offsetof(dr_conf_job, f)
#define K(f) offsetof(dr_retention, f)
#define FO(f) offsetof(dr_conf_failover, f)
#define P(f) offsetof(dr_conf_peer, f)

const dr_option dr_options[] = {
    {DR_SCOPE_TOP, "listen", NULL, DR_OPT_STR, T(listen),
     .help = "HOST:PORT, [IPV6]:PORT or "
             ":PORT of the status server "
             "(none: no server)"},
    {DR_SCOPE_TOP, "state_dir", NULL, DR_OPT_STR, T(state_dir), .required = 1,
     .help = "directory for job state and catalogs"},
    {DR_SCOPE_TOP, "grace", NULL, DR_OPT_MS, T(grace_ms), 0, 3600000,
     .help = "on SIGTERM, how long running jobs may take to finish (default 30s)"},

    {DR_SCOPE_CLUSTER, "endpoints", "", DR_OPT_URLS, E(endpoints), .required = 1,
     .help = "etcd endpoints http(s)://host:port, a list or comma-separated"},
    {DR_SCOPE_CLUSTER, "cacert", "cacert", DR_OPT_FILE, E(cacert), .help = "CA bundle (PEM)"},
    {DR_SCOPE_CLUSTER, "cert", "cert", DR_OPT_FILE, E(cert), .help = "client certificate (PEM)"},
    {DR_SCOPE_CLUSTER, "key", "key", DR_OPT_FILE, E(key), .secret = "etcd client key",
     .help = "client key (PEM)"},
    {DR_SCOPE_CLUSTER, "timeout", "--timeout", DR_OPT_MS, E(timeout_ms), 1, 3600000,
     .help = "per-request deadline (default 10s)"},
    {DR_SCOPE_CLUSTER, "max_recv_bytes", "--etcd-max-recv-bytes", DR_OPT_BYTES, E(max_recv_bytes),
     DR_ETCD_MAX_RECV_MIN, DR_ETCD_MAX_RECV_MAX,
     .help = "largest answer taken from etcd (default 2MiB; raise with the server's "
             "--max-request-bytes)"},

    {DR_SCOPE_STORE, "url", "store", DR_OPT_STR, R(store_url), .required = 1,
     .help = "file:///path or s3://bucket/prefix"},
    {DR_SCOPE_STORE, "s3_endpoint", "s3-endpoint", DR_OPT_STR, R(store.s3_endpoint),
     .help = "S3 endpoint HOST:PORT"},
    {DR_SCOPE_STORE, "s3_region", "s3-region", DR_OPT_STR, R(store.s3_region),
     .help = "region for signing (default us-east-1)"},
    {DR_SCOPE_STORE, "s3_cacert", "s3-cacert", DR_OPT_FILE, R(store.s3_cacert),
     .help = "CA bundle for https to the endpoint"},
    {DR_SCOPE_STORE, "s3_insecure_http", "s3-insecure-http", DR_OPT_BOOL, R(store.s3_insecure_http),
     .help = "plain http to the endpoint (trusted networks only)"},
    {DR_SCOPE_STORE, "s3_part_size", "s3-part-size", DR_OPT_MIB, R(store.part_size), 5, 4096,
     .help = "multipart part size in MiB (default 8)"},
    {DR_SCOPE_STORE, "s3_credentials", NULL, DR_OPT_FILE, R(store.s3_credentials),
     .secret = "S3 credentials file",
     .help = "AWS credentials file (default: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then "
             "AWS_SHARED_CREDENTIALS_FILE)"},
    {DR_SCOPE_STORE, "key_file", "key-file", DR_OPT_FILE, R(key_file), .secret = "keyring",
     .help = "keyring (drd key generate)"},
    {DR_SCOPE_STORE, "no_encryption", "no-encryption", DR_OPT_BOOL, R(no_encryption),
     .help = "write unencrypted objects (explicit opt-out)"},
    {DR_SCOPE_STORE, "allow_plaintext", "allow-plaintext", DR_OPT_BOOL, R(allow_plaintext),
     .help = "with key_file, also read unencrypted objects"},
    {DR_SCOPE_STORE, "catalog", "catalog", DR_OPT_STR, R(catalog_path),
     .help = "local catalog file (default: <state_dir>/catalog-<store>.db)"},
    {DR_SCOPE_STORE, "timeout", "timeout", DR_OPT_MS, R(store.timeout_ms), 1, 3600000,
     .help = "per request without progress (default 30s)"},

    {DR_SCOPE_REPLICATE, "name", "name", DR_OPT_STR, J(name), .required = 1,
     .help = "job name (filtered mode: the cursor key's name)"},
    {DR_SCOPE_REPLICATE, "mode", "mode", DR_OPT_ENUM, J(mode), .choices = "exact|filtered",
     .help = "exact (default) or filtered"},
    {DR_SCOPE_REPLICATE, "source", "source", DR_OPT_STR, J(source), .required = 1,
     .help = "the primary: a cluster's name (on the command line: --source and --source-*)"},
    {DR_SCOPE_REPLICATE, "target", "target", DR_OPT_STR, J(target), .required = 1,
     .help = "the standby: a cluster's name (on the command line: --target and --target-*)"},
    {DR_SCOPE_REPLICATE, "prefixes", "prefix", DR_OPT_LIST, J(prefixes),
     .help = "filtered: replicate keys under these prefixes (default all)"},
    {DR_SCOPE_REPLICATE, "exclude", "exclude", DR_OPT_LIST, J(excludes),
     .help = "filtered: skip keys under these prefixes"},
    {DR_SCOPE_REPLICATE, "dest_prefix", "dest-prefix", DR_OPT_STR, J(dest_prefix),
     .help = "filtered: rewrite the one prefix to this on the target"},
    {DR_SCOPE_REPLICATE, "max_txn_ops", "max-txn-ops", DR_OPT_I64, J(max_txn_ops), 2, 1000000,
     .help = "the target's --max-txn-ops (default 128)"},
    {DR_SCOPE_REPLICATE, "window", "window", DR_OPT_INT, J(window), 1, 1024,
     .help = "transactions in flight (default 8)"},
    {DR_SCOPE_REPLICATE, "max_lag", "max-lag", DR_OPT_MS, J(max_lag_ms), 0, 86400000,
     .help = "/readyz fails when the standby lags more (default: not checked)"},
    {DR_SCOPE_REPLICATE, "verify", NULL, DR_OPT_MS, J(verify_ms), 0, 86400000,
     .help = "compare primary and standby this often (HashKV at one revision both hold; "
             "default 5m in exact mode, 0: never; filtered mode compares key by key)"},

    {DR_SCOPE_SNAPSHOT, "name", NULL, DR_OPT_STR, J(name), .required = 1, .help = "job name"},
    {DR_SCOPE_SNAPSHOT, "cluster", NULL, DR_OPT_STR, J(cluster), .required = 1,
     .help = "the etcd to snapshot: a cluster's name"},
    {DR_SCOPE_SNAPSHOT, "store", NULL, DR_OPT_STR, J(store), .required = 1,
     .help = "where snapshots go: a store's name"},
    {DR_SCOPE_SNAPSHOT, "schedule", NULL, DR_OPT_SCHED, J(schedule), .required = 1,
     .help = "cron, CRON_TZ=Zone cron, @daily..., or @every D"},
    {DR_SCOPE_SNAPSHOT, "segments", "segment-period", DR_OPT_MS, J(segments_ms), 100, 86400000,
     .help = "also write revision segments, cut this often (drd snapshot follow; "
             "a continuous job of kind segments)"},
    {DR_SCOPE_SNAPSHOT, "compression", "compression", DR_OPT_ENUM, J(compression),
     .choices = "none|zstd", .help = "zstd (default) or none"},
    {DR_SCOPE_SNAPSHOT, "retention", NULL, DR_OPT_MAP, J(retention), .sub = DR_SCOPE_RETENTION,
     .help = "prune after each snapshot (keys below; none: keep everything)"},

    {DR_SCOPE_RETENTION, "keep_last", "keep-last", DR_OPT_INT, K(keep_last), 0, 100000,
     .help = "the N newest snapshots"},
    {DR_SCOPE_RETENTION, "hourly", "keep-hourly", DR_OPT_INT, K(keep_hourly), 0, 100000,
     .help = "the newest of each of the last N hours"},
    {DR_SCOPE_RETENTION, "daily", "keep-daily", DR_OPT_INT, K(keep_daily), 0, 100000,
     .help = "... days"},
    {DR_SCOPE_RETENTION, "weekly", "keep-weekly", DR_OPT_INT, K(keep_weekly), 0, 100000,
     .help = "... ISO weeks"},
    {DR_SCOPE_RETENTION, "monthly", "keep-monthly", DR_OPT_INT, K(keep_monthly), 0, 100000,
     .help = "... months"},

    {DR_SCOPE_DRILL, "name", NULL, DR_OPT_STR, J(name), .required = 1, .help = "job name"},
    {DR_SCOPE_DRILL, "store", NULL, DR_OPT_STR, J(store), .required = 1,
     .help = "the store whose newest snapshot is restored and checked"},
    {DR_SCOPE_DRILL, "schedule", NULL, DR_OPT_SCHED, J(schedule), .required = 1,
     .help = "as for snapshots"},

    {DR_SCOPE_TOP, "failover", NULL, DR_OPT_MAP, T(failover), .sub = DR_SCOPE_FAILOVER,
     .help = "the two sites and the runbooks of drd failover and failback (keys below)"},
    {DR_SCOPE_FAILOVER, "primary", NULL, DR_OPT_STR, FO(primary), .required = 1,
     .help = "the primary cluster until a runbook promotes the other (epoch 0)"},
    {DR_SCOPE_FAILOVER, "standby", NULL, DR_OPT_STR, FO(standby), .required = 1,
     .help = "the standby cluster"},
    {DR_SCOPE_FAILOVER, "replicate", NULL, DR_OPT_STR, FO(replicate), .required = 1,
     .help = "the replicate job from primary to standby (its mode and filters; reversed after a "
             "promotion)"},
    {DR_SCOPE_FAILOVER, "planned", NULL, DR_OPT_FILE, FO(planned),
     .help = "runbook of drd failover --planned (policies/runbooks/planned-switchover.yaml)"},
    {DR_SCOPE_FAILOVER, "emergency", NULL, DR_OPT_FILE, FO(emergency),
     .help = "runbook of drd failover --emergency (policies/runbooks/emergency-failover.yaml)"},
    {DR_SCOPE_FAILOVER, "failback", NULL, DR_OPT_FILE, FO(failback),
     .help = "runbook of drd failback (policies/runbooks/failback.yaml)"},
    {DR_SCOPE_FAILOVER, "unreachable_for", NULL, DR_OPT_MS, FO(unreachable_ms), 1000, 3600000,
     .help = "emergency: the primary must fail every probe for this long (default 30s)"},
    {DR_SCOPE_FAILOVER, "encryption_config", NULL, DR_OPT_FILE, FO(encryption_config),
     .secret = "EncryptionConfiguration",
     .help = "the standby's EncryptionConfiguration (check steps compare its key names)"},
    {DR_SCOPE_FAILOVER, "encryption_scan", NULL, DR_OPT_MS, FO(encryption_scan_ms), 0, 604800000,
     .help = "drd run: count the encryption keys the standby's values need this often, compared "
             "with encryption_config (default 10m; 0s: never)"},
    {DR_SCOPE_PEER, "url", NULL, DR_OPT_STR, P(url), .required = 1,
     .help = "http://HOST:PORT: the other site's drd status server (its listen)"},
    {DR_SCOPE_PEER, "interval", NULL, DR_OPT_MS, P(interval_ms), 1000, 3600000,
     .help = "probe /healthz and /readyz this often (default 5s)"},
    {DR_SCOPE_PEER, "timeout", NULL, DR_OPT_MS, P(timeout_ms), 100, 60000,
     .help = "an answer later than this counts as none (default 3s)"},
    /* volumes: the flags of drd replicate volume push (role push) and serve (role serve) */
    {DR_SCOPE_VOLUME, "name", "name", DR_OPT_STR, J(name), .required = 1,
     .help = "the volume's name, the same on both sides ([A-Za-z0-9._-], 1 to 64)"},
    {DR_SCOPE_VOLUME, "role", NULL, DR_OPT_ENUM, J(role), .choices = "push|serve", .required = 1,
     .help = "push: this site's directory to the other site on a schedule; serve: receive it"},
    {DR_SCOPE_VOLUME, "source", "source", DR_OPT_STR, J(vol_source),
     .help = "push: the directory to send (a PVC's mount; only read)"},
    {DR_SCOPE_VOLUME, "to", "to", DR_OPT_STR, J(to),
     .help = "push: HOST:PORT of the other site's serve"},
    {DR_SCOPE_VOLUME, "schedule", NULL, DR_OPT_SCHED, J(schedule),
     .help = "push: as for snapshots; a sync still running when the next is due makes that one "
             "missed"},
    {DR_SCOPE_VOLUME, "bwlimit", "bwlimit", DR_OPT_BYTES, J(bwlimit), 1024, 0,
     .help = "push: cap the bytes sent per second (e.g. 50M, 512KiB)"},
    {DR_SCOPE_VOLUME, "checksum", "checksum", DR_OPT_BOOL, J(checksum),
     .help = "push: compare every file by sha256, not by size and time only"},
    {DR_SCOPE_VOLUME, "listen", "listen", DR_OPT_STR, J(listen),
     .help = "serve: HOST:PORT or :PORT to accept syncs on"},
    {DR_SCOPE_VOLUME, "root", "root", DR_OPT_STR, J(root),
     .help = "serve: where the copies are kept, ROOT/NAME (must exist)"},
    {DR_SCOPE_VOLUME, "keep", "keep", DR_OPT_INT, J(keep), 1, 10000,
     .help = "serve: complete copies kept per volume (default 3)"},
    {DR_SCOPE_VOLUME, "no_sync", "no-sync", DR_OPT_BOOL, J(no_sync),
     .help = "serve: publish copies without flushing them to disk first"},
    {DR_SCOPE_VOLUME, "psk_file", "psk-file", DR_OPT_FILE, J(psk_file),
     .secret = "volume pre-shared key",
     .help = "pre-shared key (drd key generate --psk), the same file on both sides"},
    {DR_SCOPE_VOLUME, "cert", "cert", DR_OPT_FILE, J(cert),
     .help = "or certificates: this side's (PEM), with key and cacert"},
    {DR_SCOPE_VOLUME, "key", "key", DR_OPT_FILE, J(key), .secret = "volume TLS key",
     .help = "this side's private key (PEM)"},
    {DR_SCOPE_VOLUME, "cacert", "cacert", DR_OPT_FILE, J(cacert),
     .help = "the CA the peer's certificate must be signed by"},
    {DR_SCOPE_VOLUME, "timeout", "timeout", DR_OPT_MS, J(timeout_ms), 1000, 86400000,
     .help = "give up on a peer silent this long (default 120s)"},
    {0, NULL, NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL},
};

/* The job sections: a new kind of job is one row here and its keys above. */
static const struct {
    const char *key;
    dr_job_kind kind;
    dr_opt_scope scope;
    int scheduled;
} sections[] = {
    {"replicate", DR_JOB_REPLICATE, DR_SCOPE_REPLICATE, 0},
    {"snapshots", DR_JOB_SNAPSHOT, DR_SCOPE_SNAPSHOT, 1},
    {"drills", DR_JOB_DRILL, DR_SCOPE_DRILL, 1},
    {"volumes", DR_JOB_VOLUME, DR_SCOPE_VOLUME, 1},
};
#define NSECTIONS (sizeof sections / sizeof sections[0])

const char *dr_job_kind_name(dr_job_kind k)
{
    static const char *const names[] = {"replicate", "snapshot", "drill", "volume",
                                        "segments",  "verify",   "probe", "point",
                                        "peer",      "epoch",    "keys"};
    _Static_assert(sizeof names / sizeof names[0] == DR_JOB_KINDS, "a name per job kind");
    return k < DR_JOB_KINDS ? names[k] : "?";
}

DR_PRINTF(3, 4)
static int at(const dr_conf *c, const dr_yaml_node *n, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dr_error_set(DR_EUSAGE, "%s:%d:%d: %s", c->file, n ? n->line : 1, n ? n->col : 1, msg);
}

static const char *kind_word(const dr_yaml_node *n)
{
    return n->kind == DR_YAML_MAP ? "a map" : n->kind == DR_YAML_SEQ ? "a list" : "a string";
}

static int own(dr_conf *c, char *s)
{
    const char **v = realloc(c->owned.v, (c->owned.n + 1) * sizeof *v);
    if (!v) {
        free(s);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    c->owned.v = v;
    v[c->owned.n++] = s;
    return 0;
}

static const dr_yaml_node *find_key(const dr_yaml_node *map, const char *key)
{
    if (!map || map->kind != DR_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->items[2 * i]->value, key) == 0)
            return map->items[2 * i + 1];
    return NULL;
}

/* "a, b, c" of the keys a scope knows, for unknown-key messages. */
static void known_keys(dr_opt_scope scope, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (const dr_option *o = dr_options; o->key && len + 1 < cap; o++)
        if (o->scope == scope) {
            int n = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", o->key);
            len += n > 0 ? (size_t)n : 0;
        }
}

static int is_secret_key(const char *k)
{
    static const char *const words[] = {"secret", "password",   "passwd",
                                        "token",  "access_key", "private"};
    char low[64];
    size_t i;
    for (i = 0; k[i] && i + 1 < sizeof low; i++)
        low[i] = (char)tolower((unsigned char)k[i]);
    low[i] = 0;
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
        if (strstr(low, words[w]))
            return 1;
    return 0;
}

static int scalar(const dr_conf *c, const dr_yaml_node *v, const char *where, const char *what)
{
    if (v->kind != DR_YAML_SCALAR)
        return at(c, v, "%s: expected %s, found %s", where, what, kind_word(v));
    if (!v->value[0] || (v->plain && (!strcmp(v->value, "null") || !strcmp(v->value, "~"))))
        return at(c, v, "%s: expected %s, found nothing", where, what);
    return 0;
}

static int parse_map(dr_conf *c, const dr_yaml_node *map, dr_opt_scope scope, void *rec,
                     const char *where);

static int set_opt(dr_conf *c, const dr_option *o, void *rec, const dr_yaml_node *v,
                   const char *where, dr_conf_job *job)
{
    char *field = (char *)rec + o->offset;
    int rc = 0;
    switch (o->type) {
    case DR_OPT_URLS:
    case DR_OPT_LIST: {
        size_t count = v->kind == DR_YAML_SEQ ? v->n : 1;
        const dr_yaml_node *one[1] = {v};
        const dr_yaml_node *const *items =
            v->kind == DR_YAML_SEQ ? (const dr_yaml_node *const *)v->items : one;
        if (v->kind == DR_YAML_SEQ && count == 0)
            return at(c, v, "%s: the list is empty", where);
        for (size_t i = 0; i < count; i++)
            if ((rc = scalar(c, items[i], where, "a string or a list of strings")) < 0)
                return rc;
        if (o->type == DR_OPT_LIST) {
            dr_conf_list *l = (dr_conf_list *)field;
            free(l->v);
            if (!(l->v = calloc(count, sizeof *l->v)))
                return dr_error_set(DR_ENOMEM, "out of memory");
            for (size_t i = 0; i < count; i++)
                l->v[i] = items[i]->value;
            l->n = count;
            return 0;
        }
        dr_buf b = {0};
        for (size_t i = 0; i < count && rc == 0; i++)
            rc = dr_buf_printf(&b, "%s%s", i ? "," : "", items[i]->value);
        if (rc < 0 || (rc = own(c, b.data)) < 0)
            return rc;
        *(const char **)field = b.data;
        return 0;
    }
    case DR_OPT_MAP:
        if (job && o->sub == DR_SCOPE_RETENTION)
            job->has_retention = 1;
        if (o->sub == DR_SCOPE_FAILOVER)
            c->has_failover = 1;
        return parse_map(c, v, o->sub, field, where);
    default:
        break;
    }
    /* a scalar: the YAML shape here, the value by the parser the flags use too */
    static const char *const what[] = {
        [DR_OPT_STR] = "a string",       [DR_OPT_FILE] = "a file name",
        [DR_OPT_BOOL] = "true or false", [DR_OPT_MS] = "a duration",
        [DR_OPT_INT] = "a number",       [DR_OPT_I64] = "a number",
        [DR_OPT_MIB] = "a number",       [DR_OPT_BYTES] = "a size",
        [DR_OPT_ENUM] = "a string",      [DR_OPT_SCHED] = "a schedule"};
    if ((rc = scalar(c, v, where, what[o->type])) < 0)
        return rc;
    if (o->type == DR_OPT_BOOL && !v->plain) /* "true" in quotes is a string */
        return at(c, v, "%s: expected true or false, found '%s'", where, v->value);
    if ((rc = dr_option_parse(o, v->value, where, rec)) < 0)
        return rc == DR_ENOMEM ? rc : at(c, v, "%s", dr_error_msg());
    if (o->type == DR_OPT_FILE) {
        dr_conf_file *f = realloc(c->files, (c->n_files + 1) * sizeof *f);
        if (!f)
            return dr_error_set(DR_ENOMEM, "out of memory");
        c->files = f;
        f[c->n_files++] = (dr_conf_file){v->value, o->key, {v->line, v->col}, o->secret};
    }
    if (o->type == DR_OPT_SCHED && job) {
        job->schedule_at = (dr_conf_pos){v->line, v->col};
        job->scheduled = 1;
    }
    return 0;
}

/* Fills rec from map by scope's keys; where names the map in messages ("clusters.primary"). */
static int parse_map(dr_conf *c, const dr_yaml_node *map, dr_opt_scope scope, void *rec,
                     const char *where)
{
    int rc = 0;
    char sub[256], known[512];
    dr_conf_job *job = scope == DR_SCOPE_REPLICATE || scope == DR_SCOPE_SNAPSHOT ||
                               scope == DR_SCOPE_DRILL || scope == DR_SCOPE_VOLUME
                           ? rec
                           : NULL;
    if (map->kind != DR_YAML_MAP)
        return at(c, map, "%s: expected a map of settings, found %s", where, kind_word(map));
    for (size_t i = 0; i < map->n; i++) {
        const dr_yaml_node *k = map->items[2 * i], *v = map->items[2 * i + 1];
        if (k->kind != DR_YAML_SCALAR)
            return at(c, k, "%s: a key must be a string", where);
        for (size_t j = 0; j < i; j++)
            if (strcmp(map->items[2 * j]->value, k->value) == 0)
                return at(c, k, "%s: '%s' is given twice (first at line %d)", where, k->value,
                          map->items[2 * j]->line);
        const dr_option *o = dr_options;
        while (o->key && !(o->scope == scope && strcmp(o->key, k->value) == 0))
            o++;
        if (!o->key) {
            if (is_secret_key(k->value))
                return at(c, k,
                          "%s: '%s': secrets are never written into the config: name a file "
                          "(key_file, s3_credentials, cacert/cert/key) or use the environment "
                          "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                          where, k->value);
            known_keys(scope, known, sizeof known);
            return at(c, k, "%s: unknown key '%s' (known: %s)", where, k->value, known);
        }
        snprintf(sub, sizeof sub, "%s.%s", where, k->value);
        if ((rc = set_opt(c, o, rec, v, sub, job)) < 0)
            return rc;
    }
    for (const dr_option *o = dr_options; o->key; o++)
        if (o->scope == scope && o->required && !find_key(map, o->key))
            return at(c, map, "%s: '%s' is required (%s)", where, o->key, o->help);
    return 0;
}

static int find_named(const dr_conf *c, const dr_conf_job *j, const char *key, const char *name,
                      int clusters, int *idx)
{
    size_t n = clusters ? c->n_clusters : c->n_stores;
    for (size_t i = 0; i < n; i++)
        if (strcmp(clusters ? c->clusters[i].name : c->stores[i].name, name) == 0) {
            *idx = (int)i;
            return 0;
        }
    char names[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len + 1 < sizeof names; i++) {
        int w = snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                         clusters ? c->clusters[i].name : c->stores[i].name);
        len += w > 0 ? (size_t)w : 0;
    }
    return at(c, find_key(j->node, key), "%s %s: no %s '%s' (%s: %s)", dr_job_kind_name(j->kind),
              j->name, clusters ? "cluster" : "store", name, clusters ? "clusters" : "stores",
              n ? names : "none defined");
}

/* Names label metrics and name files: letters, digits, '-', '_', '.'. */
static int plain_name(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
            return 0;
    return *s != 0 && *s != '.';
}

/* A volume job: the keys of its role only, one kind of TLS credentials. */
static int check_volume(dr_conf *c, dr_conf_job *j)
{
    static const char *const push_only[] = {"source", "to", "schedule", "bwlimit", "checksum"};
    static const char *const serve_only[] = {"listen", "root", "keep", "no_sync"};
    const char *role = j->role ? "serve" : "push";
    const char *const *other = j->role ? push_only : serve_only;
    size_t n_other =
        j->role ? sizeof push_only / sizeof *push_only : sizeof serve_only / sizeof *serve_only;
    for (size_t i = 0; i < n_other; i++)
        if (find_key(j->node, other[i]))
            return at(c, find_key(j->node, other[i]), "volume %s: '%s' does not apply to role %s",
                      j->name, other[i], role);
    const char *need[3] = {j->role ? "listen" : "source", j->role ? "root" : "to",
                           j->role ? NULL : "schedule"};
    for (size_t i = 0; i < 3; i++)
        if (need[i] && !find_key(j->node, need[i]))
            return at(c, j->node, "volume %s: role %s needs '%s'", j->name, role, need[i]);
    int certs = !!j->cert + !!j->key + !!j->cacert;
    if (j->psk_file && certs)
        return at(c, find_key(j->node, "psk_file"),
                  "volume %s: psk_file or cert/key/cacert, not both", j->name);
    if (!j->psk_file && certs != 3)
        return at(c, j->node,
                  "volume %s: needs psk_file, or cert, key and cacert (the peer is verified "
                  "either way)",
                  j->name);
    if (strlen(j->name) > 64)
        return at(c, find_key(j->node, "name"),
                  "volume %s: a volume name has at most 64 characters", j->name);
    if (j->role)
        j->scheduled = 0;
    return 0;
}

/* References and the rules that span keys. */
static int check_job(dr_conf *c, dr_conf_job *j)
{
    int rc = 0;
    if (j->cluster && (rc = find_named(c, j, "cluster", j->cluster, 1, &j->cluster_i)) < 0)
        return rc;
    if (j->store && (rc = find_named(c, j, "store", j->store, 0, &j->store_i)) < 0)
        return rc;
    if (j->source && (rc = find_named(c, j, "source", j->source, 1, &j->source_i)) < 0)
        return rc;
    if (j->target && (rc = find_named(c, j, "target", j->target, 1, &j->target_i)) < 0)
        return rc;
    if (j->kind == DR_JOB_REPLICATE) {
        if (j->source_i == j->target_i)
            return at(c, find_key(j->node, "target"),
                      "replicate %s: source and target are the same cluster", j->name);
        if (j->mode == 0 && (j->prefixes.n || j->excludes.n || j->dest_prefix))
            return at(c, j->node,
                      "replicate %s: prefixes, exclude and dest_prefix need mode: filtered "
                      "(exact mode copies everything)",
                      j->name);
        if (j->verify_ms < 0)
            j->verify_ms = j->mode == 0 ? 300000 : 0;
        if (j->verify_ms && j->verify_ms < 1000)
            return at(c, find_key(j->node, "verify"), "replicate %s: verify must be at least 1s",
                      j->name);
        if (j->dest_prefix && j->prefixes.n != 1)
            return at(c, find_key(j->node, "dest_prefix"),
                      "replicate %s: dest_prefix rewrites exactly one prefix (%zu given)", j->name,
                      j->prefixes.n);
    }
    if (j->kind == DR_JOB_VOLUME && (rc = check_volume(c, j)) < 0)
        return rc;
    if (j->has_retention) {
        const dr_retention *r = &j->retention;
        if (!r->keep_last && !r->keep_hourly && !r->keep_daily && !r->keep_weekly &&
            !r->keep_monthly)
            return at(c, find_key(j->node, "retention"),
                      "snapshot %s: retention keeps nothing (every rule is 0): give at least one "
                      "rule, or leave retention out to keep everything",
                      j->name);
    }
    for (size_t k = 0; c->jobs + k < j; k++)
        if (strcmp(c->jobs[k].name, j->name) == 0)
            return at(c, find_key(j->node, "name"),
                      "job name '%s' is used twice (also a %s job at line %d)", j->name,
                      dr_job_kind_name(c->jobs[k].kind), c->jobs[k].at.line);
    if (!plain_name(j->name))
        return at(c, find_key(j->node, "name"),
                  "job name '%s': use letters, digits, '-', '_' and '.' only (it names "
                  "metrics, locks and state files)",
                  j->name);
    return 0;
}

/* failover: its clusters and replicate job exist and agree. */
static int check_failover(dr_conf *c)
{
    dr_conf_failover *f = &c->failover;
    const dr_yaml_node *fo = find_key(c->doc->root, "failover");
    f->primary_i = f->standby_i = f->replicate_i = -1;
    for (size_t i = 0; i < c->n_clusters; i++) {
        if (!strcmp(c->clusters[i].name, f->primary))
            f->primary_i = (int)i;
        if (!strcmp(c->clusters[i].name, f->standby))
            f->standby_i = (int)i;
    }
    for (size_t i = 0; i < c->n_jobs; i++)
        if (c->jobs[i].kind == DR_JOB_REPLICATE && !strcmp(c->jobs[i].name, f->replicate))
            f->replicate_i = (int)i;
    if (f->primary_i < 0)
        return at(c, find_key(fo, "primary"), "failover.primary: no cluster '%s'", f->primary);
    if (f->standby_i < 0)
        return at(c, find_key(fo, "standby"), "failover.standby: no cluster '%s'", f->standby);
    if (f->primary_i == f->standby_i)
        return at(c, find_key(fo, "standby"), "failover: primary and standby are the same cluster");
    if (f->replicate_i < 0)
        return at(c, find_key(fo, "replicate"), "failover.replicate: no replicate job '%s'",
                  f->replicate);
    const dr_conf_job *j = &c->jobs[f->replicate_i];
    if (j->source_i != f->primary_i || j->target_i != f->standby_i)
        return at(c, find_key(fo, "replicate"),
                  "failover.replicate: job '%s' replicates %s -> %s, not %s -> %s", j->name,
                  j->source, j->target, f->primary, f->standby);
    if (!f->unreachable_ms)
        f->unreachable_ms = 30000;
    if (f->encryption_scan_ms < 0)
        f->encryption_scan_ms = 600000;
    if (f->encryption_scan_ms && f->encryption_scan_ms < 1000)
        return at(c, find_key(fo, "encryption_scan"),
                  "failover.encryption_scan must be at least 1s (0s: never)");
    return 0;
}

/* A peer's URL: http://HOST:PORT, what the daemon connects to (no path, no TLS yet). */
static int check_peer(const dr_conf *c, const dr_yaml_node *map, dr_conf_peer *p, const char *where)
{
    const char *hp = strncmp(p->url, "http://", 7) == 0 ? p->url + 7 : NULL;
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    if (!hp || !colon || colon == hp || !colon[1] ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return at(c, find_key(map, "url"),
                  "%s.url: expected http://HOST:PORT (the other site's listen address), found "
                  "'%s'",
                  where, p->url);
    if (!p->interval_ms)
        p->interval_ms = 5000;
    if (!p->timeout_ms)
        p->timeout_ms = 3000;
    if (p->timeout_ms > p->interval_ms)
        return at(c, find_key(map, "timeout"), "%s.timeout: longer than its interval", where);
    return 0;
}

/* clusters, stores and peers: maps of name: settings. */
static int parse_named(dr_conf *c, const dr_yaml_node *map, dr_opt_scope scope)
{
    const char *sec = scope == DR_SCOPE_CLUSTER ? "clusters"
                      : scope == DR_SCOPE_STORE ? "stores"
                                                : "peers";
    char where[256];
    int rc = 0;
    if (map->kind != DR_YAML_MAP)
        return at(c, map, "%s: expected a map of name: settings, found %s", sec, kind_word(map));
    size_t n = map->n;
    if (scope == DR_SCOPE_CLUSTER) {
        if (!(c->clusters = calloc(n ? n : 1, sizeof *c->clusters)))
            return dr_error_set(DR_ENOMEM, "out of memory");
    } else if (scope == DR_SCOPE_STORE) {
        if (!(c->stores = calloc(n ? n : 1, sizeof *c->stores)))
            return dr_error_set(DR_ENOMEM, "out of memory");
    } else if (!(c->peers = calloc(n ? n : 1, sizeof *c->peers))) {
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const dr_yaml_node *k = map->items[2 * i], *v = map->items[2 * i + 1];
        if (k->kind != DR_YAML_SCALAR || !k->value[0])
            return at(c, k, "%s: a name must be a non-empty string", sec);
        for (size_t j = 0; j < i; j++)
            if (strcmp(map->items[2 * j]->value, k->value) == 0)
                return at(c, k, "%s: '%s' is defined twice", sec, k->value);
        if (!plain_name(k->value))
            return at(c, k,
                      "%s: name '%s': use letters, digits, '-', '_' and '.' only (it labels "
                      "metrics and names catalog files)",
                      sec, k->value);
        snprintf(where, sizeof where, "%s.%s", sec, k->value);
        if (scope == DR_SCOPE_CLUSTER) {
            dr_conf_cluster *cl = &c->clusters[c->n_clusters++];
            cl->name = k->value;
            cl->at = (dr_conf_pos){k->line, k->col};
            rc = parse_map(c, v, DR_SCOPE_CLUSTER, &cl->etcd, where);
        } else if (scope == DR_SCOPE_STORE) {
            dr_conf_store *st = &c->stores[c->n_stores++];
            st->name = k->value;
            st->at = (dr_conf_pos){k->line, k->col};
            rc = parse_map(c, v, DR_SCOPE_STORE, &st->repo, where);
        } else {
            dr_conf_peer *p = &c->peers[c->n_peers++];
            p->name = k->value;
            p->at = (dr_conf_pos){k->line, k->col};
            rc = parse_map(c, v, DR_SCOPE_PEER, p, where);
            if (rc == 0)
                rc = check_peer(c, v, p, where);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_jobs(dr_conf *c, const dr_yaml_node *seq, size_t s)
{
    char where[256];
    int rc = 0;
    if (seq->kind != DR_YAML_SEQ)
        return at(c, seq, "%s: expected a list of jobs, found %s", sections[s].key, kind_word(seq));
    dr_conf_job *jobs = realloc(c->jobs, (c->n_jobs + seq->n + 1) * sizeof *jobs);
    if (!jobs)
        return dr_error_set(DR_ENOMEM, "out of memory");
    c->jobs = jobs;
    for (size_t i = 0; i < seq->n; i++) {
        dr_conf_job *j = &c->jobs[c->n_jobs++];
        memset(j, 0, sizeof *j);
        j->kind = sections[s].kind;
        j->node = seq->items[i];
        j->at = (dr_conf_pos){j->node->line, j->node->col};
        j->cluster_i = j->store_i = j->source_i = j->target_i = -1;
        j->max_txn_ops = 128;
        j->verify_ms = -1; /* the mode's default, below */
        j->window = 8;
        j->compression = DR_COMPRESS_ZSTD;
        j->keep = 3;
        snprintf(where, sizeof where, "%s[%zu]", sections[s].key, i);
        if ((rc = parse_map(c, j->node, sections[s].scope, j, where)) < 0)
            return rc;
    }
    return 0;
}

void dr_conf_free(dr_conf *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_jobs; i++) {
        free(c->jobs[i].prefixes.v);
        free(c->jobs[i].excludes.v);
    }
    for (size_t i = 0; i < c->owned.n; i++)
        free((char *)c->owned.v[i]);
    free(c->owned.v);
    free(c->jobs);
    free(c->clusters);
    free(c->stores);
    free(c->peers);
    free(c->files);
    dr_yaml_free(c->doc);
    free(c);
}

int dr_conf_from_yaml(dr_yaml_doc *doc, dr_conf **out)
{
    int rc = 0;
    dr_conf *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) {
        dr_yaml_free(doc);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    c->doc = doc;
    c->file = doc->file;
    c->grace_ms = 30000;
    c->failover.encryption_scan_ms = -1; /* the default, in check_failover */
    const dr_yaml_node *root = doc->root;
    if (!root || root->kind != DR_YAML_MAP) {
        rc = at(c, root,
                "expected a map of settings (listen, state_dir, clusters, stores, "
                "replicate, snapshots, drills, volumes)%s",
                root ? "" : ", the file is empty");
        goto out;
    }
    /* clusters and stores first: jobs refer to them */
    const dr_yaml_node *n;
    if ((n = find_key(root, "clusters")) && (rc = parse_named(c, n, DR_SCOPE_CLUSTER)) < 0)
        goto out;
    if ((n = find_key(root, "stores")) && (rc = parse_named(c, n, DR_SCOPE_STORE)) < 0)
        goto out;
    if ((n = find_key(root, "peers")) && (rc = parse_named(c, n, DR_SCOPE_PEER)) < 0)
        goto out;
    for (size_t i = 0; i < root->n; i++) {
        const dr_yaml_node *k = root->items[2 * i], *v = root->items[2 * i + 1];
        if (k->kind != DR_YAML_SCALAR) {
            rc = at(c, k, "a key must be a string");
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(root->items[2 * j]->value, k->value) == 0) {
                rc = at(c, k, "'%s' is given twice (first at line %d)", k->value,
                        root->items[2 * j]->line);
                goto out;
            }
        if (!strcmp(k->value, "clusters") || !strcmp(k->value, "stores") ||
            !strcmp(k->value, "peers"))
            continue;
        size_t s = 0;
        while (s < NSECTIONS && strcmp(sections[s].key, k->value))
            s++;
        if (s < NSECTIONS) {
            if ((rc = parse_jobs(c, v, s)) < 0)
                goto out;
            continue;
        }
        const dr_option *o = dr_options;
        while (o->key && !(o->scope == DR_SCOPE_TOP && strcmp(o->key, k->value) == 0))
            o++;
        if (!o->key) {
            rc = at(c, k,
                    "unknown key '%s' (known: listen, state_dir, grace, clusters, stores, "
                    "peers, replicate, snapshots, drills, volumes, failover)",
                    k->value);
            goto out;
        }
        if ((rc = set_opt(c, o, c, v, k->value, NULL)) < 0)
            goto out;
    }
    if (!c->state_dir) {
        rc = at(c, root, "'state_dir' is required (directory for job state and catalogs)");
        goto out;
    }
    if (c->n_jobs == 0) {
        rc = at(c, root, "no jobs: add replicate, snapshots, drills or volumes");
        goto out;
    }
    for (size_t i = 0; i < c->n_jobs; i++)
        if ((rc = check_job(c, &c->jobs[i])) < 0)
            goto out;
    if (c->has_failover && (rc = check_failover(c)) < 0)
        goto out;
    *out = c;
    c = NULL;
out:
    dr_conf_free(c);
    return rc;
}
