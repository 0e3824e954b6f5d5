/*
 * drd snapshot save|follow|list|show|verify|get|delete|prune, drd catalog rebuild, drd key
 * generate|rotate: flag parsing and output. The work is in snapshot/ and drd/lib/repo.
 * Secrets (S3 keys) come only from the environment or a credentials file, never from flags.
 */
#include "drd/app/cmd.h"
#include "drd/core/core.h"
#include "drd/lib/catalog/catalog.h"
#include "snapshot/snapshot.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_HELP                                                                                 \
    "  --store URL          file:///path or s3://bucket/prefix\n"                                  \
    "  --s3-endpoint H:P    S3 endpoint (s3:// stores); credentials from AWS_ACCESS_KEY_ID and\n"  \
    "                       AWS_SECRET_ACCESS_KEY or a credentials file "                          \
    "(AWS_SHARED_CREDENTIALS_FILE)\n"                                                              \
    "  --s3-region R        region for signing (default us-east-1)\n"                              \
    "  --s3-cacert F        CA bundle for https to the endpoint\n"                                 \
    "  --s3-insecure-http   plain http to the endpoint (trusted networks only)\n"                  \
    "  --s3-part-size N     multipart part size in MiB (default 8)\n"                              \
    "  --catalog F          local catalog file (default: under $XDG_STATE_HOME/drd)\n"
#define KEY_HELP                                                                                   \
    "  --key-file F         keyring (drd key generate); objects are encrypted with its current "   \
    "key\n"
#define ETCD_HELP                                                                                  \
    "  --etcd URLS          etcd endpoints, comma-separated http(s)://host:port\n"                 \
    "  --etcd-cacert F --etcd-cert F --etcd-key F   TLS to etcd\n"                                 \
    "  --timeout D          per-request deadline (default 10s)\n"

const char usage_snapshot_save[] =
    "usage: drd snapshot save --etcd URLS --store URL (--key-file F | --no-encryption)\n"
    "          [--compression zstd|none] [--label K=V]...\n\n"
    "Takes a full snapshot of etcd, compressed and encrypted, streamed to the store without a\n"
    "temp file. Prints the snapshot ID and exits 0, or prints one error line and exits non-zero.\n"
    "A second save of the same store while one runs refuses (exit 18).\n\n" ETCD_HELP STORE_HELP
        KEY_HELP "  --no-encryption      store plaintext (explicit)\n"
    "  --compression C      zstd (default) or none\n"
    "  --label K=V          recorded in the manifest (repeatable)\n";

const char usage_snapshot_follow[] =
    "usage: drd snapshot follow --etcd URLS --store URL (--key-file F | --no-encryption)\n"
    "          [--segment-period 10s] [--segment-max-bytes 64MiB] [--until-revision R]\n\n"
    "Writes segments of every etcd revision after the newest stored one, for point-in-time\n"
    "restore. Starts with a full snapshot when the store has none or the history it needs was\n"
    "compacted. Resumes after a crash from what the store holds. Runs until SIGTERM (the open\n"
    "segment is committed first) or until a segment reaches --until-revision.\n\n" ETCD_HELP
        STORE_HELP KEY_HELP "  --no-encryption      store plaintext (explicit)\n"
    "  --compression C      zstd (default) or none\n";

const char usage_snapshot_list[] = "usage: drd snapshot list --store URL [--json]\n\n"
                                   "Lists full snapshots and segments, oldest first, and "
                                   "warns about gaps in the segment chain.\n\n" STORE_HELP
                                   "  --json               one JSON array of manifests\n";

const char usage_snapshot_show[] = "usage: drd snapshot show --store URL ID|latest\n\n"
                                   "Prints the manifest of one snapshot or segment.\n\n" STORE_HELP;

const char usage_snapshot_verify[] =
    "usage: drd snapshot verify --store URL (ID|latest | --all) [--sample PERCENT] [--key-file "
    "F]\n\n"
    "Reads objects back completely: stored size and sha256, every encrypted chunk, the archive,\n"
    "the content's sha256 against the manifest, segment revisions; --all also checks the\n"
    "segment chain. --sample verifies that percentage of the objects (at least one; always\n"
    "the newest full snapshot).\n\n" STORE_HELP KEY_HELP;

const char usage_snapshot_get[] =
    "usage: drd snapshot get --store URL ID|latest --out FILE [--key-file F]\n\n"
    "Writes the plain etcd snapshot that 'etcdctl snapshot status' and 'etcdctl snapshot\n"
    "restore' accept. FILE appears only when every check passed.\n\n" STORE_HELP KEY_HELP
    "  --out FILE           where to write (mode 0600)\n";

const char usage_snapshot_delete[] =
    "usage: drd snapshot delete --store URL ID\n\n"
    "Deletes one snapshot or segment (manifest first).\n\n" STORE_HELP;

const char usage_snapshot_prune[] =
    "usage: drd snapshot prune --store URL [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
    "          [--keep-weekly N] [--keep-monthly N] [--dry-run]\n\n"
    "Deletes full snapshots outside the retention policy (grandfather-father-son) and segments\n"
    "that no kept point needs; never what a restore of a kept point needs. Prints every decision\n"
    "with its reason; --dry-run deletes nothing. Also removes data left by interrupted "
    "runs.\n\n" STORE_HELP;

const char usage_catalog_rebuild[] =
    "usage: drd catalog rebuild --store URL\n\n"
    "Recreates the local catalog from the store alone.\n\n" STORE_HELP;

const char usage_key_generate[] =
    "usage: drd key generate --out FILE [--name NAME]\n\n"
    "Writes a new keyring with one random 256-bit master key (mode 0600). Keep a copy somewhere\n"
    "safe and apart from the backups: without it nothing can be restored.\n";

const char usage_key_rotate[] =
    "usage: drd key rotate --keyring FILE [--name NAME]\n\n"
    "Adds a new master key to the keyring and makes it current; older keys stay, so objects\n"
    "written with them remain readable.\n";

enum {
    O_ETCD = 2000,
    O_ECA,
    O_ECERT,
    O_EKEY,
    O_TIMEOUT,
    O_STORE,
    O_S3EP,
    O_S3REGION,
    O_S3CA,
    O_S3HTTP,
    O_S3PART,
    O_CATALOG,
    O_KEYFILE,
    O_NOENC,
    O_COMP,
    O_LABEL,
    O_JSON,
    O_PERIOD,
    O_MAXBYTES,
    O_UNTIL,
    O_ALL,
    O_SAMPLE,
    O_OUT,
    O_KLAST,
    O_KHOUR,
    O_KDAY,
    O_KWEEK,
    O_KMONTH,
    O_DRY,
    O_NAME,
    O_KEYRING,
};

static const struct option opts[] = {
    {"etcd", required_argument, NULL, O_ETCD},
    {"etcd-cacert", required_argument, NULL, O_ECA},
    {"etcd-cert", required_argument, NULL, O_ECERT},
    {"etcd-key", required_argument, NULL, O_EKEY},
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
    {0, 0, 0, 0},
};

typedef struct args {
    const char *cmd;
    dr_etcd_opts etcd;
    dr_repo_opts repo;
    dr_compress comp;
    char labels[512];
    int json, all, dry_run;
    int64_t period_ms, max_bytes, until, sample;
    const char *out, *name, *keyring;
    dr_retention keep;
    const char *pos; /* the positional ID */
} args;

static const char *flag_name(int c)
{
    for (const struct option *o = opts; o->name; o++)
        if (o->val == c)
            return o->name;
    return "?";
}

/* Parses argv; allowed lists the flags this command takes (0-terminated). */
static int parse(int argc, char **argv, const int *allowed, int positional, args *a)
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
        case O_MAXBYTES: {
            char *end;
            double d = strtod(optarg, &end);
            int64_t mul = 1;
            if (!strcmp(end, "KiB") || !strcmp(end, "K"))
                mul = 1 << 10;
            else if (!strcmp(end, "MiB") || !strcmp(end, "M"))
                mul = 1 << 20;
            else if (!strcmp(end, "GiB") || !strcmp(end, "G"))
                mul = 1 << 30;
            else if (*end)
                return dr_error_set(DR_EUSAGE, "--segment-max-bytes '%s': expected e.g. 64MiB",
                                    optarg);
            a->max_bytes = (int64_t)(d * (double)mul);
            if (end == optarg || a->max_bytes < 4096)
                return dr_error_set(DR_EUSAGE, "--segment-max-bytes '%s': at least 4KiB", optarg);
            break;
        }
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
        case O_NAME:
            a->name = optarg;
            break;
        case O_KEYRING:
            a->keyring = optarg;
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

static int need(const char *v, const char *flag, const char *cmd)
{
    if (!v || !*v)
        return dr_error_set(DR_EUSAGE, "drd %s: %s is required (see drd %s --help)", cmd, flag,
                            cmd);
    return 0;
}

#define STORE_FLAGS O_STORE, O_S3EP, O_S3REGION, O_S3CA, O_S3HTTP, O_S3PART, O_CATALOG, O_TIMEOUT
#define ETCD_FLAGS O_ETCD, O_ECA, O_ECERT, O_EKEY

static int open_repo(args *a, int writer, dr_repo **r)
{
    int rc = need(a->repo.store_url, "--store", a->cmd);
    if (rc < 0)
        return rc;
    if (writer && a->repo.key_file && a->repo.no_encryption)
        return dr_error_set(DR_EUSAGE, "drd %s: --key-file and --no-encryption exclude each other",
                            a->cmd);
    a->repo.need_key = writer;
    return dr_repo_open(&a->repo, r);
}

static int open_etcd(args *a, dr_etcd **e)
{
    int rc = need(a->etcd.endpoints, "--etcd", a->cmd);
    return rc < 0 ? rc : dr_etcd_open(e, &a->etcd);
}

int cmd_snapshot_save(int argc, char **argv)
{
    static const int allowed[] = {ETCD_FLAGS, STORE_FLAGS, O_KEYFILE, O_NOENC, O_COMP, O_LABEL, 0};
    args a;
    dr_repo *r = NULL;
    dr_etcd *e = NULL;
    int rc = parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = open_repo(&a, 1, &r);
    if (rc == 0)
        rc = open_etcd(&a, &e);
    if (rc == 0) {
        dr_snapshot_save_opts so = {.compression = a.comp, .labels = a.labels};
        dr_manifest m;
        rc = dr_snapshot_save(r, e, &so, &m);
        if (rc == 0)
            printf("%s\n", m.id);
    }
    dr_etcd_close(e);
    dr_repo_close(r);
    return rc;
}

int cmd_snapshot_follow(int argc, char **argv)
{
    static const int allowed[] = {ETCD_FLAGS, STORE_FLAGS, O_KEYFILE, O_NOENC, O_COMP,
                                  O_PERIOD,   O_MAXBYTES,  O_UNTIL,   0};
    args a;
    dr_repo *r = NULL;
    dr_etcd *e = NULL;
    int rc = parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = open_repo(&a, 1, &r);
    if (rc == 0)
        rc = open_etcd(&a, &e);
    if (rc == 0) {
        drd_signals_install();
        dr_snapshot_follow_opts fo = {.compression = a.comp,
                                      .segment_period_ms = a.period_ms,
                                      .segment_max_bytes = (uint64_t)a.max_bytes,
                                      .stop = &drd_stop,
                                      .until_revision = a.until};
        rc = dr_snapshot_follow(r, e, &fo);
    }
    dr_etcd_close(e);
    dr_repo_close(r);
    return rc;
}

static void fmt_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

typedef struct list_ctx {
    int json;
    int n;
} list_ctx;

static int list_one(void *ctx, const dr_manifest *m)
{
    list_ctx *l = ctx;
    if (l->json) {
        dr_buf b = {0};
        if (dr_manifest_to_json(m, &b) < 0)
            return -1;
        printf("%s%s", l->n ? "," : "", b.data);
        dr_buf_free(&b);
    } else {
        char t[32];
        fmt_time(m->created_ms, t, sizeof t);
        printf("%-4s  %-64s  %12" PRId64 "  %12" PRId64 "  %12" PRIu64 "  %s  %s\n",
               dr_repo_kind_name(m->kind), m->id, m->rev_start, m->rev_end, m->stored_bytes, t,
               m->encryption);
    }
    l->n++;
    return 0;
}

static void print_warn(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "drd: warning: %s\n", line);
}

static void print_out(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

int cmd_snapshot_list(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, O_JSON, 0};
    args a;
    dr_repo *r = NULL;
    int rc = parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = open_repo(&a, 0, &r);
    if (rc == 0)
        rc = dr_repo_sync(r, NULL);
    if (rc == 0) {
        list_ctx l = {.json = a.json};
        if (a.json)
            printf("[");
        else
            printf("%-4s  %-64s  %12s  %12s  %12s  %-20s  %s\n", "KIND", "ID", "FROM REV", "TO REV",
                   "STORED B", "CREATED", "ENCRYPTION");
        rc = dr_repo_each(r, list_one, &l);
        if (a.json)
            printf("]\n");
        if (rc == 0 && dr_snapshot_check_chain(r, print_warn, NULL) < 0)
            dr_error_clear(); /* listed; the gaps were warned about */
    }
    dr_repo_close(r);
    return rc;
}

int cmd_snapshot_show(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, 0};
    args a;
    dr_repo *r = NULL;
    int rc = parse(argc, argv, allowed, 1, &a);
    if (rc == 0)
        rc = need(a.pos, "an ID (or latest)", a.cmd);
    if (rc == 0)
        rc = open_repo(&a, 0, &r);
    if (rc == 0 && !strcmp(a.pos, "latest"))
        rc = dr_repo_sync(r, NULL);
    dr_manifest m;
    if (rc == 0)
        rc = dr_repo_manifest(r, a.pos, &m);
    if (rc == 0) {
        dr_buf b = {0};
        rc = dr_manifest_to_json(&m, &b);
        if (rc == 0)
            fputs(b.data, stdout);
        dr_buf_free(&b);
    }
    dr_repo_close(r);
    return rc;
}

typedef struct verify_ctx {
    dr_repo *r;
    int64_t sample;
    char newest_full[DR_REPO_ID_MAX];
    int checked, failed;
    uint64_t seed;
} verify_ctx;

static int find_newest_full(void *ctx, const dr_manifest *m)
{
    verify_ctx *v = ctx;
    if (m->kind == DR_KIND_FULL)
        snprintf(v->newest_full, sizeof v->newest_full, "%s", m->id);
    return 0;
}

static int verify_one(void *ctx, const dr_manifest *m)
{
    verify_ctx *v = ctx;
    if (v->sample < 100 && strcmp(m->id, v->newest_full) != 0) {
        v->seed = v->seed * 6364136223846793005ULL + 1442695040888963407ULL;
        if ((int64_t)((v->seed >> 33) % 100) >= v->sample)
            return 0;
    }
    v->checked++;
    /* the store's manifest, not the catalog's copy: verify checks what a restore would read */
    dr_manifest sm;
    if (dr_repo_manifest(v->r, m->id, &sm) < 0 || dr_snapshot_verify(v->r, &sm) < 0) {
        fprintf(stderr, "drd: FAILED %s\n", dr_error_msg());
        dr_error_clear();
        v->failed++;
    } else {
        printf("ok %s\n", m->id);
    }
    return 0;
}

int cmd_snapshot_verify(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, O_KEYFILE, O_ALL, O_SAMPLE, 0};
    args a;
    dr_repo *r = NULL;
    int rc = parse(argc, argv, allowed, 1, &a);
    if (rc == 0 && !a.all)
        rc = need(a.pos, "an ID, latest or --all", a.cmd);
    if (rc == 0 && a.all && a.pos)
        rc = dr_error_set(DR_EUSAGE, "drd %s: give an ID or --all, not both", a.cmd);
    if (rc == 0)
        rc = open_repo(&a, 0, &r);
    if (rc == 0)
        rc = dr_repo_sync(r, NULL);
    if (rc < 0)
        goto out;
    if (!a.all) {
        dr_manifest m;
        if ((rc = dr_repo_manifest(r, a.pos, &m)) < 0 || (rc = dr_snapshot_verify(r, &m)) < 0)
            goto out;
        printf("ok %s\n", m.id);
        goto out;
    }
    verify_ctx v = {.r = r, .sample = a.sample, .seed = (uint64_t)dr_wall_ms()};
    if ((rc = dr_repo_each(r, find_newest_full, &v)) < 0 ||
        (rc = dr_repo_each(r, verify_one, &v)) < 0)
        goto out;
    int chain = dr_snapshot_check_chain(r, print_warn, NULL);
    if (v.checked == 0)
        rc = dr_error_set(DR_ENOTFOUND, "store '%s' holds nothing to verify", a.repo.store_url);
    else if (v.failed)
        rc =
            dr_error_set(DR_ECHECKSUM, "%d of %d objects failed verification", v.failed, v.checked);
    else if (chain < 0)
        rc = chain;
    else
        printf("verified %d objects\n", v.checked);
out:
    dr_repo_close(r);
    return rc;
}

int cmd_snapshot_get(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, O_KEYFILE, O_OUT, 0};
    args a;
    dr_repo *r = NULL;
    int rc = parse(argc, argv, allowed, 1, &a);
    if (rc == 0)
        rc = need(a.pos, "an ID (or latest)", a.cmd);
    if (rc == 0)
        rc = need(a.out, "--out", a.cmd);
    if (rc == 0)
        rc = open_repo(&a, 0, &r);
    if (rc == 0 && !strcmp(a.pos, "latest"))
        rc = dr_repo_sync(r, NULL);
    dr_manifest m;
    if (rc == 0)
        rc = dr_repo_manifest(r, a.pos, &m);
    if (rc == 0)
        rc = dr_snapshot_get(r, &m, a.out);
    if (rc == 0)
        fprintf(stderr, "wrote %s (revision %" PRId64 ", %" PRIu64 " bytes)\n", a.out, m.rev_end,
                m.plain_bytes);
    dr_repo_close(r);
    return rc;
}

int cmd_snapshot_delete(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, 0};
    args a;
    dr_repo *r = NULL;
    int rc = parse(argc, argv, allowed, 1, &a);
    if (rc == 0)
        rc = need(a.pos, "an ID", a.cmd);
    if (rc == 0 && !strcmp(a.pos, "latest"))
        rc = dr_error_set(DR_EUSAGE, "drd %s: name the ID to delete, not 'latest'", a.cmd);
    if (rc == 0)
        rc = open_repo(&a, 0, &r);
    if (rc == 0)
        rc = dr_repo_sync(r, NULL);
    if (rc == 0)
        rc = dr_repo_delete(r, a.pos);
    if (rc == 0)
        printf("deleted %s\n", a.pos);
    dr_repo_close(r);
    return rc;
}

int cmd_snapshot_prune(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, O_KLAST,  O_KHOUR, O_KDAY,
                                  O_KWEEK,     O_KMONTH, O_DRY,   0};
    args a;
    dr_repo *r = NULL;
    int deleted = 0;
    int rc = parse(argc, argv, allowed, 0, &a);
    if (rc == 0 && !a.keep.keep_last && !a.keep.keep_hourly && !a.keep.keep_daily &&
        !a.keep.keep_weekly && !a.keep.keep_monthly)
        rc = dr_error_set(DR_EUSAGE,
                          "drd %s: give at least one --keep-* (refusing to delete "
                          "everything)",
                          a.cmd);
    if (rc == 0)
        rc = open_repo(&a, 0, &r);
    if (rc == 0)
        rc = dr_snapshot_prune(r, &a.keep, a.dry_run, print_out, NULL, &deleted);
    if (rc == 0 && !a.dry_run) {
        int n = 0;
        rc = dr_repo_cleanup(r, NULL, 3600 * 1000, &n);
        printf("deleted %d objects%s\n", deleted, n ? " and data left by interrupted runs" : "");
    }
    dr_repo_close(r);
    return rc;
}

int cmd_catalog_rebuild(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, 0};
    args a;
    dr_repo *r = NULL;
    int64_t n = 0;
    int rc = parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = open_repo(&a, 0, &r);
    if (rc == 0)
        rc = dr_repo_rebuild(r, &n);
    if (rc == 0)
        printf("catalog rebuilt: %" PRId64 " objects\n", n);
    dr_repo_close(r);
    return rc;
}

int cmd_key_generate(int argc, char **argv)
{
    static const int allowed[] = {O_OUT, O_NAME, 0};
    args a;
    char name[DR_KEY_NAME_MAX + 1];
    int rc = parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = need(a.out, "--out", a.cmd);
    if (rc == 0)
        rc = dr_keyring_generate(a.out, a.name, name);
    if (rc == 0)
        printf("wrote keyring %s with key '%s' (mode 0600)\n", a.out, name);
    return rc;
}

int cmd_key_rotate(int argc, char **argv)
{
    static const int allowed[] = {O_KEYRING, O_NAME, 0};
    args a;
    char name[DR_KEY_NAME_MAX + 1];
    int rc = parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = need(a.keyring, "--keyring", a.cmd);
    if (rc == 0)
        rc = dr_keyring_rotate(a.keyring, a.name, name);
    if (rc == 0)
        printf("key '%s' added to %s and made current\n", name, a.keyring);
    return rc;
}
