/*
 * drd replicate volume serve|push|status|promote: volume replication (replicate/volume).
 * Flags are parsed here; secrets come from files only (--psk-file, --key), never from flags.
 */
#include "drd/app/cmd.h"
#include "drd/core/core.h"
#include "replicate/volume/volume.h"

#include <stdio.h>
#include <string.h>

#define TLS_HELP                                                                                   \
    "  --psk-file F         pre-shared key (drd key generate --psk), the same file on both "       \
    "sides\n"                                                                                      \
    "  --cert F --key F --cacert F   or certificates: this side's, and the CA the peer's must "    \
    "be\n"                                                                                         \
    "                       signed by (both sides verify each other)\n"                            \
    "  --timeout D          give up on a peer silent this long (default 120s)\n"

const char usage_volume_serve[] =
    "usage: drd replicate volume serve --listen ADDR --root DIR (--psk-file F | --cert F --key F\n"
    "                                  --cacert F) [--keep N] [--status-listen ADDR]\n\n"
    "The destination of volume replication: accepts syncs from 'drd replicate volume push', one\n"
    "at a time, into DIR/NAME/current, and publishes each complete sync as a point-in-time copy\n"
    "DIR/NAME/copies/<time> with DIR/NAME/latest pointing at it. Runs until SIGTERM.\n\n"
    "  --listen ADDR        host:port to accept syncs on\n"
    "  --root DIR           where the volumes are kept (must exist)\n" TLS_HELP
    "  --keep N             complete copies kept per volume (default 3)\n"
    "  --status-listen A    serve /metrics and /healthz on A (host:port)\n"
    "  --no-sync            publish copies without flushing them to disk first (as rsync\n"
    "                       leaves its data: a crash of drd loses nothing, a power loss may lose\n"
    "                       or damage the newest copy); faster on slow disks\n";

const char usage_volume_push[] =
    "usage: drd replicate volume push --source DIR --to ADDR --name NAME (--psk-file F |\n"
    "                                 --cert F --key F --cacert F) [--bwlimit RATE] [--checksum]\n"
    "                                 [--dry-run] [--verbose]\n\n"
    "One sync of DIR to the destination's volume NAME: changed files go as librsync deltas, new\n"
    "ones whole (compressed), files gone from DIR are deleted there. Exits 0 once the\n"
    "destination has published the copy.\n\n"
    "  --source DIR         the tree to send (a PVC's mount; only read)\n"
    "  --to ADDR            host:port of 'drd replicate volume serve'\n"
    "  --name NAME          the volume's name at the destination ([A-Za-z0-9._-], 1 to "
    "64)\n" TLS_HELP "  --bwlimit RATE       cap the bytes sent per second (e.g. 10MiB, 500K)\n"
    "  --checksum           compare every file by sha256, not by size and time only\n"
    "  --dry-run            list what would change, change nothing\n"
    "  --verbose            list each change\n";

const char usage_volume_status[] =
    "usage: drd replicate volume status --root DIR [--name NAME] [--json]\n\n"
    "The last sync of each volume under DIR (a serve --root): time, duration, bytes, files\n"
    "changed, the latest complete copy, and whether a sync started since was not completed.\n";

const char usage_volume_promote[] =
    "usage: drd replicate volume promote --root DIR --name NAME --to DIR2\n\n"
    "Copies the latest complete copy of NAME into DIR2 (absent or empty), keeping holes, modes,\n"
    "times, links and owners (as root): what a failover does for each volume. Refuses when no\n"
    "sync has completed.\n";

enum {
    V_LISTEN = 3000,
    V_ROOT,
    V_PSK,
    V_CERT,
    V_KEY,
    V_CACERT,
    V_KEEP,
    V_STATUS,
    V_SOURCE,
    V_TO,
    V_NAME,
    V_BW,
    V_CHECKSUM,
    V_DRY,
    V_VERBOSE,
    V_JSON,
    V_TIMEOUT,
    V_MAXSYNCS,
    V_NOSYNC,
};

static const struct option vol_opts[] = {
    {"listen", required_argument, NULL, V_LISTEN},
    {"root", required_argument, NULL, V_ROOT},
    {"psk-file", required_argument, NULL, V_PSK},
    {"cert", required_argument, NULL, V_CERT},
    {"key", required_argument, NULL, V_KEY},
    {"cacert", required_argument, NULL, V_CACERT},
    {"keep", required_argument, NULL, V_KEEP},
    {"status-listen", required_argument, NULL, V_STATUS},
    {"source", required_argument, NULL, V_SOURCE},
    {"to", required_argument, NULL, V_TO},
    {"name", required_argument, NULL, V_NAME},
    {"bwlimit", required_argument, NULL, V_BW},
    {"checksum", no_argument, NULL, V_CHECKSUM},
    {"dry-run", no_argument, NULL, V_DRY},
    {"verbose", no_argument, NULL, V_VERBOSE},
    {"json", no_argument, NULL, V_JSON},
    {"timeout", required_argument, NULL, V_TIMEOUT},
    {"max-syncs", required_argument, NULL, V_MAXSYNCS}, /* tests: exit after N sessions */
    {"no-sync", no_argument, NULL, V_NOSYNC},
    {0, 0, 0, 0},
};

typedef struct vargs {
    const char *cmd, *listen, *root, *status, *source, *to, *name;
    dr_tls_opts tls;
    int64_t keep, bw, max_syncs;
    int checksum, dry, verbose, json, no_sync;
} vargs;

static int vparse(int argc, char **argv, const int *allowed, vargs *a)
{
    int c, rc;
    memset(a, 0, sizeof *a);
    a->cmd = argv[0];
    a->keep = 3;
    while ((c = drd_getopt(argc, argv, vol_opts, a->cmd)) != -1) {
        if (c < 0)
            return c;
        int ok = 0;
        for (const int *p = allowed; *p; p++)
            ok |= *p == c;
        if (!ok)
            return dr_error_set(DR_EUSAGE,
                                "drd %s: flag '%s' does not apply here (see drd %s --help)", a->cmd,
                                argv[optind - 1], a->cmd);
        switch (c) {
        case V_LISTEN:
            a->listen = optarg;
            break;
        case V_ROOT:
            a->root = optarg;
            break;
        case V_PSK:
            a->tls.psk_file = optarg;
            break;
        case V_CERT:
            a->tls.cert = optarg;
            break;
        case V_KEY:
            a->tls.key = optarg;
            break;
        case V_CACERT:
            a->tls.cacert = optarg;
            break;
        case V_KEEP:
            if ((rc = dr_parse_i64(optarg, "--keep", &a->keep)) < 0)
                return rc;
            if (a->keep < 1 || a->keep > 10000)
                return dr_error_set(DR_EUSAGE, "--keep must be from 1 to 10000");
            break;
        case V_STATUS:
            a->status = optarg;
            break;
        case V_SOURCE:
            a->source = optarg;
            break;
        case V_TO:
            a->to = optarg;
            break;
        case V_NAME:
            a->name = optarg;
            break;
        case V_BW:
            if ((rc = drd_parse_bytes(optarg, "--bwlimit", 1024, INT64_MAX / 2, &a->bw)) < 0)
                return rc;
            break;
        case V_CHECKSUM:
            a->checksum = 1;
            break;
        case V_DRY:
            a->dry = 1;
            break;
        case V_VERBOSE:
            a->verbose = 1;
            break;
        case V_JSON:
            a->json = 1;
            break;
        case V_NOSYNC:
            a->no_sync = 1;
            break;
        case V_TIMEOUT:
            if ((rc = dr_parse_duration_ms(optarg, "--timeout", &a->tls.timeout_ms)) < 0)
                return rc;
            break;
        case V_MAXSYNCS:
            if ((rc = dr_parse_i64(optarg, "--max-syncs", &a->max_syncs)) < 0)
                return rc;
            break;
        }
    }
    if (optind < argc)
        return dr_error_set(DR_EUSAGE, "drd %s: unexpected argument '%s'", a->cmd, argv[optind]);
    return 0;
}

static int need(const char *v, const char *flag, const char *cmd)
{
    return v ? 0 : dr_error_set(DR_EUSAGE, "drd %s: %s is required", cmd, flag);
}

int cmd_volume_serve(int argc, char **argv)
{
    static const int allowed[] = {V_LISTEN, V_ROOT,   V_PSK,     V_CERT,     V_KEY,    V_CACERT,
                                  V_KEEP,   V_STATUS, V_TIMEOUT, V_MAXSYNCS, V_NOSYNC, 0};
    vargs a;
    int rc = vparse(argc, argv, allowed, &a);
    if (rc == 0)
        rc = need(a.listen, "--listen", a.cmd);
    if (rc == 0)
        rc = need(a.root, "--root", a.cmd);
    if (rc < 0)
        return rc;
    drd_signals_install();
    dr_vol_serve_opts o = {.listen = a.listen,
                           .root = a.root,
                           .tls = a.tls,
                           .keep = (int)a.keep,
                           .status_listen = a.status,
                           .max_syncs = (int)a.max_syncs,
                           .no_sync = a.no_sync,
                           .stop = &drd_stop};
    return dr_vol_serve(&o);
}

int cmd_volume_push(int argc, char **argv)
{
    static const int allowed[] = {V_SOURCE,  V_TO,      V_NAME, V_PSK,      V_CERT,
                                  V_KEY,     V_CACERT,  V_BW,   V_CHECKSUM, V_DRY,
                                  V_VERBOSE, V_TIMEOUT, 0};
    vargs a;
    dr_vol_stats st;
    int rc = vparse(argc, argv, allowed, &a);
    if (rc == 0)
        rc = need(a.source, "--source", a.cmd);
    if (rc == 0)
        rc = need(a.to, "--to", a.cmd);
    if (rc == 0)
        rc = need(a.name, "--name", a.cmd);
    if (rc < 0)
        return rc;
    signal(SIGPIPE, SIG_IGN); /* a server gone mid-write is an error return, not a kill */
    dr_vol_push_opts o = {.source = a.source,
                          .to = a.to,
                          .name = a.name,
                          .tls = a.tls,
                          .bwlimit = (uint64_t)a.bw,
                          .checksum = a.checksum,
                          .dry_run = a.dry,
                          .verbose = a.verbose};
    dr_progress progress = {0};
    dr_progress_reporter *rep = NULL;
    o.progress = &progress;
    rc = dr_progress_report_start(&progress, "volume push", drd_progress_mode, 0, &rep);
    if (rc == 0)
        rc = dr_vol_push(&o, &st);
    dr_progress_report_stop(rep);
    if (rc == 0)
        printf("%s %s to %s%s%s: %llu entries, %llu changed, %llu deleted; sent %llu bytes "
               "(literal %llu, matched %llu, whole files %llu), received %llu, in %lld ms\n",
               a.dry ? "dry run of" : "synced", a.name, a.to, a.dry ? "" : " copy ",
               a.dry ? "" : st.copy, (unsigned long long)st.files,
               (unsigned long long)st.files_changed, (unsigned long long)st.files_deleted,
               (unsigned long long)st.wire_sent, (unsigned long long)st.literal,
               (unsigned long long)st.matched, (unsigned long long)st.whole_bytes,
               (unsigned long long)st.wire_received, (long long)st.duration_ms);
    return rc;
}

int cmd_volume_status(int argc, char **argv)
{
    static const int allowed[] = {V_ROOT, V_NAME, V_JSON, 0};
    vargs a;
    int rc = vparse(argc, argv, allowed, &a);
    if (rc == 0)
        rc = need(a.root, "--root", a.cmd);
    if (rc == 0 && a.name)
        rc = dr_vol_name_check(a.name);
    return rc < 0 ? rc : dr_vol_status(a.root, a.name, a.json);
}

int cmd_volume_promote(int argc, char **argv)
{
    static const int allowed[] = {V_ROOT, V_NAME, V_TO, 0};
    vargs a;
    int rc = vparse(argc, argv, allowed, &a);
    if (rc == 0)
        rc = need(a.root, "--root", a.cmd);
    if (rc == 0)
        rc = need(a.name, "--name", a.cmd);
    if (rc == 0)
        rc = need(a.to, "--to", a.cmd);
    return rc < 0 ? rc : dr_vol_promote(a.root, a.name, a.to);
}
