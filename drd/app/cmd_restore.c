/*
 * drd restore, drd drill, drd drill list: flag parsing and output. The work is in restore/.
 */
#include "drd/app/cmd.h"
#include "drd/app/store_args.h"
#include "drd/core/core.h"
#include "drd/lib/catalog/catalog.h"
#include "restore/restore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POINT_HELP                                                                                 \
    "  --snapshot ID|latest a full snapshot\n"                                                     \
    "  --revision R         the newest full snapshot at or before R, plus the segments up to R\n"  \
    "  --time T             RFC 3339 (UTC): the newest full snapshot taken at or before T, plus\n" \
    "                       the segments closed at or before T\n"

const char usage_restore[] =
    "usage: drd restore --store URL (--snapshot ID|latest | --revision R | --time RFC3339)\n"
    "          (--data-dir DIR --name NAME --initial-cluster C --initial-advertise-peer-urls U\n"
    "           | --members-dir DIR --initial-cluster C)\n"
    "          [--key-file F] [--bump-revision N --mark-compacted] [--dry-run]\n\n"
    "Restores into a new etcd data dir: reads back and checks every object it needs before it\n"
    "touches anything, restores the snapshot (etcdutl/etcdctl snapshot restore), replays segments\n"
    "up to the point through a throw-away etcd on a private unix socket (one transaction per\n"
    "revision, the revision checked), and moves the result to DIR last. DIR must be absent or\n"
    "empty. Then start etcd with --data-dir DIR and the same --name, --initial-cluster and\n"
    "--initial-advertise-peer-urls.\n\n" POINT_HELP
    "  --data-dir DIR --name NAME --initial-cluster C --initial-advertise-peer-urls U\n"
    "                       the member to restore, as for etcdctl snapshot restore\n"
    "  --members-dir DIR    every member of --initial-cluster into DIR/<name>, from the one\n"
    "                       restored point (a new multi-member cluster; copy each to its host)\n"
    "  --bump-revision N --mark-compacted   as etcdutl (etcd 3.5.x and later only)\n"
    "  --dry-run            check everything and say what would happen; change nothing\n" STORE_HELP
        KEY_READ_HELP;

const char usage_restore_keys[] =
    "usage: drd restore keys --store URL (--snapshot ID|latest | --revision R | --time T)\n"
    "          --prefix P --target URLS [--overwrite] [--dry-run] [--key-file F] [TLS flags]\n\n"
    "Restores the keys under P (one namespace, one resource kind), as they were at the point,\n"
    "into the live etcd at --target. Missing keys are created; with --overwrite changed values\n"
    "are restored and keys the point did not have are deleted. A key written on the target while\n"
    "this runs is left alone and reported. --dry-run prints what would be created, changed and\n"
    "deleted, and writes nothing. Leases are not carried over.\n\n" POINT_HELP
    "  --prefix P           the keys to restore (required, not empty)\n"
    "  --target URLS        the live etcd (http(s)://host:port, comma-separated)\n"
    "  --etcd-cacert F --etcd-cert F --etcd-key F   TLS to the target\n" ETCD_RECV_HELP STORE_HELP
        KEY_READ_HELP;

const char usage_drill[] =
    "usage: drd drill --store URL [--snapshot ID|latest | --revision R | --time T] [--key-file F]\n"
    "          [--json]\n\n"
    "Proves that a backup restores: restores it into a scratch dir, starts a throw-away etcd on\n"
    "a private unix socket, checks revision, key count, keys per Kubernetes resource\n"
    "(/registry/<resource>/) and HashKV against the manifest, reports the restored keys per\n"
    "resource next to those recorded with the snapshot,\n"
    "measures the time from start to the first successful read (RTO), records the result in the\n"
    "catalog and prints a report. Exits non-zero when anything is off. Never touches a production "
    "endpoint.\n\n" POINT_HELP STORE_HELP KEY_READ_HELP
    "  --json               the report as JSON\n";

const char usage_drill_list[] =
    "usage: drd drill list --store URL [--limit N] [--json]\n\n"
    "The history of drills recorded in the catalog, newest first.\n\n" STORE_HELP;

static void print_line(void *ctx, const char *line)
{
    (void)ctx;
    dr_log_line(line);
}

static int pick_point(args *a)
{
    int n = (a->snapshot != NULL) + (a->revision > 0) + (a->time_ms > 0);
    if (n > 1)
        return dr_error_set(DR_EUSAGE, "drd %s: give one of --snapshot, --revision, --time",
                            a->cmd);
    if (n == 0 && strcmp(a->cmd, "drill") != 0)
        return dr_error_set(DR_EUSAGE,
                            "drd %s: say what to restore: --snapshot ID|latest, --revision R or "
                            "--time T",
                            a->cmd);
    if (n == 0)
        a->snapshot = "latest";
    return 0;
}

/* The store and the plan for the point the flags name. */
static int open_plan(args *a, dr_repo **r, dr_restore_plan *p)
{
    int rc = args_open_repo(a, 0, r);
    return rc < 0 ? rc : dr_restore_plan_make(*r, a->snapshot, a->revision, a->time_ms, p);
}

int cmd_restore(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, O_SNAPSHOT, O_REVISION, O_TIME,
                                  O_DATADIR,   O_NAME,         O_ICLUSTER, O_IPEER,    O_BUMP,
                                  O_MARKCOMP,  O_DRY,          O_MEMBERS,  0};
    args a;
    dr_repo *r = NULL;
    dr_restore_plan p = {0};
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = pick_point(&a);
    if (rc == 0 && a.members_dir && (a.data_dir || a.name || a.ipeer))
        rc = dr_error_set(DR_EUSAGE, "drd restore: --members-dir lays out every member of "
                                     "--initial-cluster: no --data-dir, --name or "
                                     "--initial-advertise-peer-urls with it");
    if (rc == 0 && !a.members_dir)
        rc = args_need(a.data_dir, "--data-dir", a.cmd);
    if (rc == 0 && !a.members_dir)
        rc = args_need(a.name, "--name", a.cmd);
    if (rc == 0)
        rc = args_need(a.icluster, "--initial-cluster", a.cmd);
    if (rc == 0 && !a.members_dir)
        rc = args_need(a.ipeer, "--initial-advertise-peer-urls", a.cmd);
    if (rc == 0 && (a.bump > 0) != (a.mark_compacted != 0))
        rc = dr_error_set(DR_EUSAGE,
                          "drd restore: --bump-revision and --mark-compacted go together");
    if (rc == 0)
        rc = open_plan(&a, &r, &p);
    if (rc == 0) {
        dr_restore_opts o = {.data_dir = a.data_dir,
                             .members_dir = a.members_dir,
                             .name = a.name,
                             .initial_cluster = a.icluster,
                             .peer_urls = a.ipeer,
                             .dry_run = a.dry_run,
                             .bump_revision = a.bump,
                             .mark_compacted = a.mark_compacted,
                             .print = print_line};
        dr_restore_result res;
        dr_progress progress = {0};
        dr_progress_reporter *rep = NULL;
        o.progress = &progress;
        rc = dr_progress_report_start(&progress, "restore", drd_progress_mode, 0, &rep);
        if (rc == 0)
            rc = dr_restore_run(r, &p, &o, &res);
        dr_progress_report_stop(rep);
        if (rc == 0 && !a.dry_run)
            printf("%s %" PRId64 "\n", a.members_dir ? a.members_dir : a.data_dir, res.revision);
    }
    dr_restore_plan_free(&p);
    dr_repo_close(r);
    return rc;
}

static void print_out(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

int cmd_restore_keys(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, O_SNAPSHOT, O_REVISION, O_TIME,
                                  O_PREFIX,    O_TARGET,       O_ECA,      O_ECERT,    O_EKEY,
                                  O_EMAXRECV,  O_OVERWRITE,    O_DRY,      0};
    args a;
    dr_repo *r = NULL;
    dr_restore_plan p = {0};
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = pick_point(&a);
    if (rc == 0)
        rc = args_need(a.prefix, "--prefix", a.cmd);
    if (rc == 0)
        rc = args_need(a.target, "--target", a.cmd);
    if (rc == 0)
        rc = open_plan(&a, &r, &p);
    if (rc == 0) {
        a.etcd.endpoints = a.target;
        dr_restore_opts o = {.dry_run = a.dry_run, .print = print_out};
        rc = dr_restore_keys(r, &p, a.prefix, &a.etcd, a.overwrite, &o);
    }
    dr_restore_plan_free(&p);
    dr_repo_close(r);
    return rc;
}

/* "1,203" */
static void thousands(int64_t v, char *out, size_t cap)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%" PRId64, v < 0 ? -v : v), o = 0;
    if (v < 0 && o < (int)cap - 1)
        out[o++] = '-';
    for (int i = 0; i < n && o < (int)cap - 1; i++) {
        if (i && (n - i) % 3 == 0 && o < (int)cap - 2)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = 0;
}

/* The buckets of kc by count, largest first (then by name). */
static int by_count(const void *a, const void *b)
{
    const dr_key_count *x = a, *y = b;
    return x->n != y->n ? (x->n < y->n ? 1 : -1) : strcmp(x->name, y->name);
}

dr_key_count *drd_key_counts_sorted(const dr_key_counts *kc)
{
    dr_key_count *v = malloc((kc->n ? kc->n : 1) * sizeof *v);
    if (v && kc->n) {
        memcpy(v, kc->v, kc->n * sizeof *v);
        qsort(v, kc->n, sizeof *v, by_count);
    }
    return v;
}

void drd_key_counts_line(const dr_key_counts *kc, size_t max, char *out, size_t cap)
{
    dr_key_count *v = drd_key_counts_sorted(kc);
    size_t o = 0, shown = 0;
    char num[32];
    out[0] = 0;
    for (size_t i = 0; v && i < kc->n && shown < max && o < cap; i++, shown++) {
        thousands(v[i].n, num, sizeof num);
        o += (size_t)snprintf(out + o, cap - o, "%s%s %s", i ? ", " : "", num, v[i].name);
    }
    int64_t rest = kc->other;
    for (size_t i = shown; v && i < kc->n; i++)
        rest += v[i].n;
    if (o < cap && (rest || !kc->n)) {
        thousands(rest, num, sizeof num);
        snprintf(out + o, cap - o, "%s%s other", shown ? ", " : "", num);
    }
    free(v);
}

/* Restored and recorded keys per resource, side by side, the largest first. */
static void print_key_table(const dr_restore_plan *p, const dr_key_counts *got,
                            const dr_key_counts *want)
{
    dr_key_count *v = drd_key_counts_sorted(got);
    char a[32], b[32];
    printf("keys per resource: restored at revision %" PRId64
           ", recorded with snapshot at revision "
           "%" PRId64 "%s\n",
           p->target, p->base.rev_end,
           want ? "" : " (not recorded: a snapshot taken before drd recorded them)");
    printf("  %-40s %12s %12s\n", "RESOURCE", "RESTORED", "SNAPSHOT");
    for (size_t i = 0; v && i < got->n; i++) {
        thousands(v[i].n, a, sizeof a);
        thousands(want ? dr_key_counts_get(want, v[i].name) : 0, b, sizeof b);
        printf("  %-40s %12s %12s\n", v[i].name, a, want ? b : "-");
    }
    for (size_t i = 0; want && i < want->n; i++) /* recorded, none restored */
        if (!dr_key_counts_get(got, want->v[i].name)) {
            thousands(want->v[i].n, b, sizeof b);
            printf("  %-40s %12s %12s\n", want->v[i].name, "0", b);
        }
    thousands(got->other, a, sizeof a);
    thousands(want ? want->other : 0, b, sizeof b);
    printf("  %-40s %12s %12s\n", "(other keys)", a, want ? b : "-");
    free(v);
}

static void print_report(const char *json, const dr_restore_plan *p, const dr_key_counts *got,
                         const dr_key_counts *want)
{
    /* one screen from the JSON report; the fields are ours, so simple lookups suffice */
    const char *ok = strstr(json, "\"ok\": true") ? "PASSED" : "FAILED";
    char line[1024];
    printf("drill %s\n", ok);
    if (got) {
        drd_key_counts_line(got, 8, line, sizeof line);
        printf("restored: %s\n", line);
        print_key_table(p, got, want);
    }
    /* a report without the section (the drill failed before counting) prints none; the drill's
     * own error, if any, must survive this lookup for main to print */
    int code = dr_error_code();
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", dr_error_msg());
    if (dr_drill_enc_line(json, line, sizeof line) == 0)
        printf("encryption keys: %s\n", line);
    if (code < 0)
        dr_error_set(code, "%s", msg);
    else
        dr_error_clear();
    printf("%s\n", json);
}

int cmd_drill(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, O_SNAPSHOT, O_REVISION,
                                  O_TIME,      O_JSON,         0};
    args a;
    dr_repo *r = NULL;
    dr_restore_plan p = {0};
    char *report = NULL;
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = pick_point(&a);
    if (rc == 0)
        rc = open_plan(&a, &r, &p);
    if (rc == 0) {
        dr_progress progress = {0};
        dr_progress_reporter *rep = NULL;
        dr_key_counts got = {.other = -1}, want = {0};
        rc = dr_progress_report_start(&progress, "drill", drd_progress_mode, 0, &rep);
        if (rc == 0)
            rc = dr_drill_run(r, &p, &progress, &got, &report);
        dr_progress_report_stop(rep);
        int saved = rc;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        int recorded = got.other >= 0 && dr_repo_key_counts(r, &p.base, &want) == 0;
        if (saved < 0) /* the drill's error, not the lookup's */
            dr_error_set(saved, "%s", msg);
        else
            dr_error_clear();
        if (report) {
            if (a.json)
                printf("%s\n", report);
            else
                print_report(report, &p, got.other >= 0 ? &got : NULL, recorded ? &want : NULL);
        }
        dr_key_counts_free(&got);
        dr_key_counts_free(&want);
    }
    free(report);
    dr_restore_plan_free(&p);
    dr_repo_close(r);
    return rc;
}

typedef struct drill_list_ctx {
    int json, n;
} drill_list_ctx;

static int drill_line(void *ctx, const dr_catalog_drill *d)
{
    drill_list_ctx *l = ctx;
    if (l->json) {
        printf("%s%s", l->n ? "," : "", d->report);
    } else {
        char t[32];
        time_t tt = (time_t)(d->started_ms / 1000);
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-20s  %-6s  %10.1f  %12" PRId64 "  %s\n", t, d->ok ? "passed" : "FAILED",
               d->rto_ms >= 0 ? (double)d->rto_ms / 1000.0 : -1.0, d->revision, d->snapshot_id);
    }
    l->n++;
    return 0;
}

int cmd_drill_list(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, O_LIMIT, O_JSON, 0};
    args a;
    dr_repo *r = NULL;
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
    if (rc == 0) {
        drill_list_ctx l = {.json = a.json};
        if (a.json)
            printf("[");
        else
            printf("%-20s  %-6s  %10s  %12s  %s\n", "STARTED", "RESULT", "RTO (s)", "REVISION",
                   "SNAPSHOT");
        rc = dr_catalog_drill_each(dr_repo_catalog(r), (int)a.limit, drill_line, &l);
        if (a.json)
            printf("]\n");
    }
    dr_repo_close(r);
    return rc;
}
