/*
 * The flags of the store commands: one option table, one parser (see store_args.h).
 */
#include "drd/app/store_args.h"
#include "drd/app/cmd.h"
#include "drd/core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The flags that are rows of the option table (policies/config.c): spelling, type, range and
 * messages come from the row, the value goes into the record of the row's scope. --timeout is
 * two rows: the deadline of each etcd request and of each store request. */
static const struct {
    int id;
    dr_opt_scope scope;
    const char *key;
} rows[] = {
    {O_ETCD, DR_SCOPE_CLUSTER, "endpoints"},
    {O_ECA, DR_SCOPE_CLUSTER, "cacert"},
    {O_ECERT, DR_SCOPE_CLUSTER, "cert"},
    {O_EKEY, DR_SCOPE_CLUSTER, "key"},
    {O_EMAXRECV, DR_SCOPE_CLUSTER, "max_recv_bytes"},
    {O_TIMEOUT, DR_SCOPE_CLUSTER, "timeout"},
    {O_TIMEOUT, DR_SCOPE_STORE, "timeout"},
    {O_STORE, DR_SCOPE_STORE, "url"},
    {O_S3EP, DR_SCOPE_STORE, "s3_endpoint"},
    {O_S3REGION, DR_SCOPE_STORE, "s3_region"},
    {O_S3CA, DR_SCOPE_STORE, "s3_cacert"},
    {O_S3HTTP, DR_SCOPE_STORE, "s3_insecure_http"},
    {O_S3PART, DR_SCOPE_STORE, "s3_part_size"},
    {O_CATALOG, DR_SCOPE_STORE, "catalog"},
    {O_KEYFILE, DR_SCOPE_STORE, "key_file"},
    {O_NOENC, DR_SCOPE_STORE, "no_encryption"},
    {O_ALLOWPLAIN, DR_SCOPE_STORE, "allow_plaintext"},
    {O_COMP, DR_SCOPE_SNAPSHOT, "compression"},
    {O_PERIOD, DR_SCOPE_SNAPSHOT, "segments"},
    {O_KLAST, DR_SCOPE_RETENTION, "keep_last"},
    {O_KHOUR, DR_SCOPE_RETENTION, "hourly"},
    {O_KDAY, DR_SCOPE_RETENTION, "daily"},
    {O_KWEEK, DR_SCOPE_RETENTION, "weekly"},
    {O_KMONTH, DR_SCOPE_RETENTION, "monthly"},
};

/* The commands' own flags (no config key): what they mean is the command's business. */
static const struct {
    int id;
    const char *name;
    int has_value;
} own[] = {
    {O_LABEL, "label", 1},
    {O_JSON, "json", 0},
    {O_MAXBYTES, "segment-max-bytes", 1},
    {O_UNTIL, "until-revision", 1},
    {O_ALL, "all", 0},
    {O_SAMPLE, "sample", 1},
    {O_OUT, "out", 1},
    {O_DRY, "dry-run", 0},
    {O_NAME, "name", 1},
    {O_KEYRING, "keyring", 1},
    {O_SNAPSHOT, "snapshot", 1},
    {O_REVISION, "revision", 1},
    {O_TIME, "time", 1},
    {O_DATADIR, "data-dir", 1},
    {O_ICLUSTER, "initial-cluster", 1},
    {O_IPEER, "initial-advertise-peer-urls", 1},
    {O_BUMP, "bump-revision", 1},
    {O_MARKCOMP, "mark-compacted", 0},
    {O_PREFIX, "prefix", 1},
    {O_TARGET, "target", 1},
    {O_OVERWRITE, "overwrite", 0},
    {O_LIMIT, "limit", 1},
    {O_MEMBERS, "members-dir", 1},
    {O_PSK, "psk", 0},
};
#define NROWS (sizeof rows / sizeof rows[0])
#define NOWN (sizeof own / sizeof own[0])

static void *row_rec(args *a, dr_opt_scope scope)
{
    switch (scope) {
    case DR_SCOPE_CLUSTER:
        return &a->etcd;
    case DR_SCOPE_STORE:
        return &a->repo;
    case DR_SCOPE_RETENTION:
        return &a->keep;
    default:
        return &a->job;
    }
}

static int own_flag(void *ctx, const dr_flag *f, const char *v)
{
    args *a = ctx;
    int rc = 0;
    switch (f->id) {
    case O_LABEL: {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v || strchr(v, ','))
            return dr_error_set(DR_EUSAGE, "--label '%s': expected K=V (no commas)", v);
        size_t l = strlen(a->labels);
        if (l + strlen(v) + 2 > sizeof a->labels)
            return dr_error_set(DR_EUSAGE, "too many labels");
        snprintf(a->labels + l, sizeof a->labels - l, "%s%s", l ? "," : "", v);
        return 0;
    }
    case O_JSON:
        a->json = 1;
        return 0;
    case O_MAXBYTES:
        return drd_parse_bytes(v, "--segment-max-bytes", 4096, INT64_MAX / 2, &a->max_bytes);
    case O_UNTIL:
        return dr_parse_i64(v, "--until-revision", &a->until);
    case O_ALL:
        a->all = 1;
        return 0;
    case O_SAMPLE:
        if ((rc = dr_parse_i64(v, "--sample", &a->sample)) < 0)
            return rc;
        if (a->sample < 1 || a->sample > 100)
            return dr_error_set(DR_EUSAGE, "--sample must be a percentage from 1 to 100");
        return 0;
    case O_OUT:
        a->out = v;
        return 0;
    case O_DRY:
        a->dry_run = 1;
        return 0;
    case O_NAME:
        a->name = v;
        return 0;
    case O_KEYRING:
        a->keyring = v;
        return 0;
    case O_SNAPSHOT:
        a->snapshot = v;
        return 0;
    case O_REVISION:
        if ((rc = dr_parse_i64(v, "--revision", &a->revision)) < 0)
            return rc;
        if (a->revision < 1)
            return dr_error_set(DR_EUSAGE, "--revision must be at least 1");
        return 0;
    case O_TIME: {
        struct tm tm = {0};
        const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end || (strcmp(end, "Z") && strcmp(end, "+00:00")))
            return dr_error_set(DR_EUSAGE,
                                "--time '%s': expected RFC 3339 in UTC, e.g. "
                                "2026-11-22T06:00:00Z",
                                v);
        a->time_ms = (int64_t)timegm(&tm) * 1000 + 999;
        return 0;
    }
    case O_DATADIR:
        a->data_dir = v;
        return 0;
    case O_ICLUSTER:
        a->icluster = v;
        return 0;
    case O_IPEER:
        a->ipeer = v;
        return 0;
    case O_BUMP:
        return dr_parse_i64(v, "--bump-revision", &a->bump);
    case O_MARKCOMP:
        a->mark_compacted = 1;
        return 0;
    case O_PREFIX:
        a->prefix = v;
        return 0;
    case O_TARGET:
        a->target = v;
        return 0;
    case O_OVERWRITE:
        a->overwrite = 1;
        return 0;
    case O_LIMIT:
        return dr_parse_i64(v, "--limit", &a->limit);
    case O_MEMBERS:
        a->members_dir = v;
        return 0;
    case O_PSK:
        a->psk = 1;
        return 0;
    }
    return dr_error_set(DR_EUSAGE, "drd %s: unexpected flag", a->cmd);
}

static int is_allowed(const int *allowed, int id)
{
    for (const int *p = allowed; *p; p++)
        if (*p == id)
            return 1;
    return 0;
}

/* Parses argv; allowed lists the flags this command takes (0-terminated). */
int args_parse(int argc, char **argv, const int *allowed, int positional, args *a)
{
    dr_flag flags[NROWS + NOWN];
    size_t n = 0, n_pos = 0;
    int rc = 0;
    memset(a, 0, sizeof *a);
    a->cmd = argv[0];
    a->job.compression = DR_COMPRESS_ZSTD;
    a->sample = 100;
    for (size_t i = 0; i < NROWS; i++) {
        if ((rc = dr_flag_row(&flags[n++], rows[i].scope, rows[i].key, "etcd",
                              row_rec(a, rows[i].scope), is_allowed(allowed, rows[i].id))) < 0)
            return rc;
    }
    for (size_t i = 0; i < NOWN; i++, n++) {
        memset(&flags[n], 0, sizeof flags[n]);
        snprintf(flags[n].name, sizeof flags[n].name, "%s", own[i].name);
        flags[n].id = own[i].id;
        flags[n].has_value = own[i].has_value;
        flags[n].allowed = is_allowed(allowed, own[i].id);
    }
    rc = dr_flags_parse(argc, argv, flags, n, own_flag, a, &a->pos, positional ? 1 : 0, &n_pos);
    a->comp = (dr_compress)a->job.compression;
    a->period_ms = a->job.segments_ms;
    return rc;
}

int args_need(const char *v, const char *flag, const char *cmd)
{
    if (!v || !*v)
        return dr_error_set(DR_EUSAGE, "drd %s: %s is required (see drd %s --help)", cmd, flag,
                            cmd);
    return 0;
}

int args_open_repo(args *a, int writer, dr_repo **r)
{
    int rc = args_need(a->repo.store_url, "--store", a->cmd);
    if (rc < 0)
        return rc;
    if (writer && a->repo.key_file && a->repo.no_encryption)
        return dr_error_set(DR_EUSAGE, "drd %s: --key-file and --no-encryption exclude each other",
                            a->cmd);
    if (a->repo.allow_plaintext && !a->repo.key_file)
        return dr_error_set(DR_EUSAGE,
                            "drd %s: --allow-plaintext needs --key-file (without a keyring only "
                            "plaintext objects are read anyway)",
                            a->cmd);
    a->repo.need_key = writer;
    a->repo.store.create = writer; /* a first save into a new file:// directory creates it */
    if (a->repo.allow_plaintext)
        dr_warn("--allow-plaintext: unencrypted objects are used too; anyone who can write to "
                "the store could have planted them");
    return dr_repo_open(&a->repo, r);
}

int args_open_etcd(args *a, dr_etcd **e)
{
    int rc = args_need(a->etcd.endpoints, "--etcd", a->cmd);
    return rc < 0 ? rc : dr_etcd_open(e, &a->etcd);
}
