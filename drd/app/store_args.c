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

static const struct option opts[] = {
    {"etcd", required_argument, NULL, O_ETCD},
    {"etcd-cacert", required_argument, NULL, O_ECA},
    {"etcd-cert", required_argument, NULL, O_ECERT},
    {"etcd-key", required_argument, NULL, O_EKEY},
    {"etcd-max-recv-bytes", required_argument, NULL, O_EMAXRECV},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"store", required_argument, NULL, O_STORE},
    {"s3-endpoint", required_argument, NULL, O_S3EP},
    {"s3-region", required_argument, NULL, O_S3REGION},
    {"s3-cacert", required_argument, NULL, O_S3CA},
    {"s3-insecure-http", no_argument, NULL, O_S3HTTP},
    {"s3-part-size", required_argument, NULL, O_S3PART},
    {"catalog", required_argument, NULL, O_CATALOG},
    {"key-file", required_argument, NULL, O_KEYFILE},
    {"no-encryption", no_argument, NULL, O_NOENC},
    {"compression", required_argument, NULL, O_COMP},
    {"label", required_argument, NULL, O_LABEL},
    {"json", no_argument, NULL, O_JSON},
    {"segment-period", required_argument, NULL, O_PERIOD},
    {"segment-max-bytes", required_argument, NULL, O_MAXBYTES},
    {"until-revision", required_argument, NULL, O_UNTIL},
    {"all", no_argument, NULL, O_ALL},
    {"sample", required_argument, NULL, O_SAMPLE},
    {"out", required_argument, NULL, O_OUT},
    {"keep-last", required_argument, NULL, O_KLAST},
    {"keep-hourly", required_argument, NULL, O_KHOUR},
    {"keep-daily", required_argument, NULL, O_KDAY},
    {"keep-weekly", required_argument, NULL, O_KWEEK},
    {"keep-monthly", required_argument, NULL, O_KMONTH},
    {"dry-run", no_argument, NULL, O_DRY},
    {"name", required_argument, NULL, O_NAME},
    {"keyring", required_argument, NULL, O_KEYRING},
    {"snapshot", required_argument, NULL, O_SNAPSHOT},
    {"revision", required_argument, NULL, O_REVISION},
    {"time", required_argument, NULL, O_TIME},
    {"data-dir", required_argument, NULL, O_DATADIR},
    {"initial-cluster", required_argument, NULL, O_ICLUSTER},
    {"initial-advertise-peer-urls", required_argument, NULL, O_IPEER},
    {"bump-revision", required_argument, NULL, O_BUMP},
    {"mark-compacted", no_argument, NULL, O_MARKCOMP},
    {"prefix", required_argument, NULL, O_PREFIX},
    {"target", required_argument, NULL, O_TARGET},
    {"overwrite", no_argument, NULL, O_OVERWRITE},
    {"limit", required_argument, NULL, O_LIMIT},
    {"allow-plaintext", no_argument, NULL, O_ALLOWPLAIN},
    {"members-dir", required_argument, NULL, O_MEMBERS},
    {"psk", no_argument, NULL, O_PSK},
    {0, 0, 0, 0},
};

static const char *flag_name(int c)
{
    for (const struct option *o = opts; o->name; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

/* Parses argv; allowed lists the flags this command takes (0-terminated). */
int args_parse(int argc, char **argv, const int *allowed, int positional, args *a)
{
    int c, rc = 0;
    memset(a, 0, sizeof *a);
    a->cmd = argv[0];
    a->comp = DR_COMPRESS_ZSTD;
    a->sample = 100;
    while ((c = drd_getopt(argc, argv, opts, a->cmd)) != -1) {
        if (c < 0)
            return c;
        int ok = 0;
        for (const int *p = allowed; *p; p++)
            ok |= *p == c;
        if (!ok)
            return dr_error_set(DR_EUSAGE,
                                "drd %s: flag '--%s' does not apply here (see drd %s --help)",
                                a->cmd, flag_name(c), a->cmd);
        int64_t v = 0;
        switch (c) {
        case O_ETCD:
            a->etcd.endpoints = optarg;
            break;
        case O_ECA:
            a->etcd.cacert = optarg;
            break;
        case O_ECERT:
            a->etcd.cert = optarg;
            break;
        case O_EKEY:
            a->etcd.key = optarg;
            break;
        case O_EMAXRECV:
            if ((rc = drd_parse_bytes(optarg, "--etcd-max-recv-bytes", DR_ETCD_MAX_RECV_MIN,
                                      DR_ETCD_MAX_RECV_MAX, &a->etcd.max_recv_bytes)) < 0)
                return rc;
            break;
        case O_TIMEOUT:
            if ((rc = dr_parse_duration_ms(optarg, "--timeout", &a->etcd.timeout_ms)) < 0)
                return rc;
            a->repo.store.timeout_ms = a->etcd.timeout_ms;
            break;
        case O_STORE:
            a->repo.store_url = optarg;
            break;
        case O_S3EP:
            a->repo.store.s3_endpoint = optarg;
            break;
        case O_S3REGION:
            a->repo.store.s3_region = optarg;
            break;
        case O_S3CA:
            a->repo.store.s3_cacert = optarg;
            break;
        case O_S3HTTP:
            a->repo.store.s3_insecure_http = 1;
            break;
        case O_S3PART:
            if ((rc = dr_parse_i64(optarg, "--s3-part-size", &v)) < 0)
                return rc;
            if (v < 5 || v > 4096)
                return dr_error_set(DR_EUSAGE, "--s3-part-size must be 5..4096 (MiB)");
            a->repo.store.part_size = (size_t)v << 20;
            break;
        case O_CATALOG:
            a->repo.catalog_path = optarg;
            break;
        case O_KEYFILE:
            a->repo.key_file = optarg;
            break;
        case O_NOENC:
            a->repo.no_encryption = 1;
            break;
        case O_ALLOWPLAIN:
            a->repo.allow_plaintext = 1;
            break;
        case O_MEMBERS:
            a->members_dir = optarg;
            break;
        case O_COMP:
            if (!strcmp(optarg, "zstd"))
                a->comp = DR_COMPRESS_ZSTD;
            else if (!strcmp(optarg, "none"))
                a->comp = DR_COMPRESS_NONE;
            else
                return dr_error_set(DR_EUSAGE, "--compression must be zstd or none, not '%s'",
                                    optarg);
            break;
        case O_LABEL: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || strchr(optarg, ','))
                return dr_error_set(DR_EUSAGE, "--label '%s': expected K=V (no commas)", optarg);
            size_t l = strlen(a->labels);
            if (l + strlen(optarg) + 2 > sizeof a->labels)
                return dr_error_set(DR_EUSAGE, "too many labels");
            snprintf(a->labels + l, sizeof a->labels - l, "%s%s", l ? "," : "", optarg);
            break;
        }
        case O_JSON:
            a->json = 1;
            break;
        case O_PERIOD:
            if ((rc = dr_parse_duration_ms(optarg, "--segment-period", &a->period_ms)) < 0)
                return rc;
            if (a->period_ms < 100)
                return dr_error_set(DR_EUSAGE, "--segment-period must be at least 100ms");
            break;
        case O_MAXBYTES:
            if ((rc = drd_parse_bytes(optarg, "--segment-max-bytes", 4096, INT64_MAX / 2,
                                      &a->max_bytes)) < 0)
                return rc;
            break;
        case O_UNTIL:
            if ((rc = dr_parse_i64(optarg, "--until-revision", &a->until)) < 0)
                return rc;
            break;
        case O_ALL:
            a->all = 1;
            break;
        case O_SAMPLE:
            if ((rc = dr_parse_i64(optarg, "--sample", &a->sample)) < 0)
                return rc;
            if (a->sample < 1 || a->sample > 100)
                return dr_error_set(DR_EUSAGE, "--sample must be a percentage from 1 to 100");
            break;
        case O_OUT:
            a->out = optarg;
            break;
        case O_KLAST:
        case O_KHOUR:
        case O_KDAY:
        case O_KWEEK:
        case O_KMONTH:
            if ((rc = dr_parse_i64(optarg, flag_name(c), &v)) < 0)
                return rc;
            if (v > 100000)
                return dr_error_set(DR_EUSAGE, "--%s: %s is too large", flag_name(c), optarg);
            *(c == O_KLAST   ? &a->keep.keep_last
              : c == O_KHOUR ? &a->keep.keep_hourly
              : c == O_KDAY  ? &a->keep.keep_daily
              : c == O_KWEEK ? &a->keep.keep_weekly
                             : &a->keep.keep_monthly) = (int)v;
            break;
        case O_DRY:
            a->dry_run = 1;
            break;
        case O_PSK:
            a->psk = 1;
            break;
        case O_NAME:
            a->name = optarg;
            break;
        case O_KEYRING:
            a->keyring = optarg;
            break;
        case O_SNAPSHOT:
            a->snapshot = optarg;
            break;
        case O_REVISION:
            if ((rc = dr_parse_i64(optarg, "--revision", &a->revision)) < 0)
                return rc;
            if (a->revision < 1)
                return dr_error_set(DR_EUSAGE, "--revision must be at least 1");
            break;
        case O_TIME: {
            struct tm tm = {0};
            const char *end = strptime(optarg, "%Y-%m-%dT%H:%M:%S", &tm);
            if (!end || (strcmp(end, "Z") && strcmp(end, "+00:00")))
                return dr_error_set(DR_EUSAGE,
                                    "--time '%s': expected RFC 3339 in UTC, e.g. "
                                    "2026-11-22T06:00:00Z",
                                    optarg);
            a->time_ms = (int64_t)timegm(&tm) * 1000 + 999;
            break;
        }
        case O_DATADIR:
            a->data_dir = optarg;
            break;
        case O_ICLUSTER:
            a->icluster = optarg;
            break;
        case O_IPEER:
            a->ipeer = optarg;
            break;
        case O_BUMP:
            if ((rc = dr_parse_i64(optarg, "--bump-revision", &a->bump)) < 0)
                return rc;
            break;
        case O_MARKCOMP:
            a->mark_compacted = 1;
            break;
        case O_PREFIX:
            a->prefix = optarg;
            break;
        case O_TARGET:
            a->target = optarg;
            break;
        case O_OVERWRITE:
            a->overwrite = 1;
            break;
        case O_LIMIT:
            if ((rc = dr_parse_i64(optarg, "--limit", &a->limit)) < 0)
                return rc;
            break;
        default:
            return dr_error_set(DR_EUSAGE, "drd %s: unexpected flag", a->cmd);
        }
    }
    if (positional) {
        if (optind < argc)
            a->pos = argv[optind++];
    }
    if (optind < argc)
        return dr_error_set(DR_EUSAGE, "drd %s: unexpected argument '%s'", a->cmd, argv[optind]);
    return 0;
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
