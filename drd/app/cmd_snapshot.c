/*
 * drd snapshot save|follow|list|show|verify|get|delete|prune, drd catalog rebuild, drd key
 * generate|rotate: flag parsing and output. The work is in snapshot/ and drd/lib/repo.
 * Secrets (S3 keys) come only from the environment or a credentials file, never from flags.
 */
#include "drd/app/cmd.h"
#include "drd/app/store_args.h"
#include "drd/core/core.h"
#include "drd/lib/catalog/catalog.h"
#include "drd/lib/tlsnet/tlsnet.h"
#include "snapshot/snapshot.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

const char usage_snapshot_list[] =
    "usage: drd snapshot list --store URL [--key-file F [--allow-plaintext]] [--json]\n\n"
    "Lists full snapshots and segments, oldest first, with their status: ok, damaged (the\n"
    "manifest cannot be read), refused (not usable with this keyring: plaintext, unknown key,\n"
    "forged manifest) or unchecked (encrypted, no keyring given); warns about gaps in the\n"
    "segment chain.\n\n" STORE_HELP KEY_READ_HELP
    "  --json               one JSON array of manifests, each with \"status\" (and \"problem\")\n";

const char usage_snapshot_show[] =
    "usage: drd snapshot show --store URL ID|latest [--key-file F [--allow-plaintext]]\n\n"
    "Prints the manifest of one snapshot or segment (and, on stderr, why this reader would\n"
    "refuse it).\n\n" STORE_HELP KEY_READ_HELP;

const char usage_snapshot_verify[] =
    "usage: drd snapshot verify --store URL (ID|latest | --all) [--sample PERCENT] [--key-file "
    "F]\n\n"
    "Reads objects back completely: stored size and sha256, every encrypted chunk, the archive,\n"
    "the content's sha256 against the manifest, segment revisions; --all also checks the\n"
    "segment chain. --sample verifies that percentage of the objects (at least one; always\n"
    "the newest full snapshot). Damaged and refused objects count as failures.\n\n" STORE_HELP
        KEY_READ_HELP;

const char usage_snapshot_get[] =
    "usage: drd snapshot get --store URL ID|latest --out FILE [--key-file F]\n\n"
    "Writes the plain etcd snapshot that 'etcdctl snapshot status' and 'etcdctl snapshot\n"
    "restore' accept. FILE appears only when every check passed.\n\n" STORE_HELP KEY_READ_HELP
    "  --out FILE           where to write (mode 0600)\n";

const char usage_snapshot_delete[] =
    "usage: drd snapshot delete --store URL ID [--key-file F [--allow-plaintext]]\n\n"
    "Deletes one snapshot or segment (manifest first). Its data goes too only when its manifest\n"
    "is authentic for this reader and no other manifest names the same data.\n\n" STORE_HELP
        KEY_READ_HELP;

const char usage_snapshot_prune[] =
    "usage: drd snapshot prune --store URL [--key-file F] [--keep-last N] [--keep-hourly N]\n"
    "          [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--dry-run]\n\n"
    "Deletes full snapshots outside the retention policy (grandfather-father-son) and segments\n"
    "that no kept point needs; never what a restore of a kept point needs. Prints every decision\n"
    "with its reason; --dry-run deletes nothing. Also removes data left by interrupted "
    "runs. Only objects this reader trusts are counted or deleted (an encrypted store needs\n"
    "--key-file): planted manifests can neither push real snapshots out nor be "
    "pruned.\n\n" STORE_HELP KEY_READ_HELP;

const char usage_catalog_rebuild[] =
    "usage: drd catalog rebuild --store URL\n\n"
    "Recreates the local catalog from the store alone.\n\n" STORE_HELP;

const char usage_key_generate[] =
    "usage: drd key generate --out FILE [--name NAME]\n"
    "       drd key generate --psk --out FILE\n\n"
    "Writes a new keyring with one random 256-bit master key (mode 0600). Keep a copy somewhere\n"
    "safe and apart from the backups: without it nothing can be restored.\n\n"
    "With --psk, writes a pre-shared key for volume replication instead (32 random bytes as 64\n"
    "hex digits, mode 0600): the same file goes to both sides (drd replicate volume serve and\n"
    "push --psk-file). An existing file is never replaced.\n";

const char usage_key_rotate[] =
    "usage: drd key rotate --keyring FILE [--name NAME]\n\n"
    "Adds a new master key to the keyring and makes it current; older keys stay, so objects\n"
    "written with them remain readable.\n";

int cmd_snapshot_save(int argc, char **argv)
{
    static const int allowed[] = {ETCD_FLAGS, STORE_FLAGS, O_KEYFILE, O_NOENC, O_COMP, O_LABEL, 0};
    args a;
    dr_repo *r = NULL;
    dr_etcd *e = NULL;
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = args_open_repo(&a, 1, &r);
    if (rc == 0)
        rc = args_open_etcd(&a, &e);
    if (rc == 0) {
        dr_progress progress = {0};
        dr_progress_reporter *rep = NULL;
        dr_snapshot_save_opts so = {
            .compression = a.comp, .labels = a.labels, .progress = &progress};
        dr_manifest m;
        rc = dr_progress_report_start(&progress, "snapshot save", drd_progress_mode, 0, &rep);
        if (rc == 0)
            rc = dr_snapshot_save(r, e, &so, &m);
        dr_progress_report_stop(rep);
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
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = args_open_repo(&a, 1, &r);
    if (rc == 0)
        rc = args_open_etcd(&a, &e);
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

/* The manifest as JSON, with its key counts (a parsed manifest holds only their hash). */
static int manifest_json(dr_repo *r, const dr_manifest *m, dr_buf *b)
{
    dr_manifest shown = *m;
    dr_key_counts kc = {0};
    if (m->has_key_counts && dr_repo_key_counts(r, m, &kc) == 0)
        shown.key_counts = &kc;
    dr_error_clear();
    int rc = dr_manifest_to_json(&shown, b);
    dr_key_counts_free(&kc);
    return rc;
}

typedef struct list_ctx {
    dr_repo *r;
    int json;
    int keyring; /* a keyring was given: problems are refusals, not just "unchecked" */
    int n, bad;
} list_ctx;

static const char *list_status(const list_ctx *l, const dr_manifest *m, const char *problem)
{
    if (!problem)
        return "ok";
    if (!m)
        return "damaged";
    return l->keyring ? "refused" : "unchecked";
}

static int list_one(void *ctx, const char *id, const dr_manifest *m, const char *problem)
{
    list_ctx *l = ctx;
    const char *status = list_status(l, m, problem);
    char shown[DR_REPO_ID_MAX + 8];
    dr_escape(id, strlen(id), shown, sizeof shown);
    if (strcmp(status, "ok") && strcmp(status, "unchecked")) {
        fprintf(stderr, "drd: warning: %s %s: %s\n", status, shown, problem);
        l->bad++;
    }
    if (l->json) { /* the manifest's fields, with "status" (and "problem") added */
        dr_buf b = {0};
        int rc = 0;
        if (m) {
            rc = manifest_json(l->r, m, &b);
            b.len -= rc == 0 ? strlen("\n}\n") : 0;
        } else {
            rc = dr_buf_printf(&b, "{\n  \"id\": ");
            rc |= dr_buf_json_str(&b, id, strlen(id));
        }
        rc |= dr_buf_printf(&b, ",\n  \"status\": \"%s\"", status);
        if (problem) {
            rc |= dr_buf_printf(&b, ",\n  \"problem\": ");
            rc |= dr_buf_json_str(&b, problem, strlen(problem));
        }
        rc |= dr_buf_printf(&b, "\n}");
        if (rc == 0)
            printf("%s%s", l->n ? "," : "", b.data);
        dr_buf_free(&b);
        if (rc)
            return dr_error_set(DR_ENOMEM, "out of memory");
    } else if (!m) {
        printf("%-4s  %-64s  %12s  %12s  %12s  %-20s  %-11s  %s\n", "?", shown, "-", "-", "-", "-",
               "-", status);
    } else {
        char t[32];
        fmt_time(m->created_ms, t, sizeof t);
        printf("%-4s  %-64s  %12" PRId64 "  %12" PRId64 "  %12" PRIu64 "  %s  %-11s  %s\n",
               dr_repo_kind_name(m->kind), m->id, m->rev_start, m->rev_end, m->stored_bytes, t,
               m->encryption, status);
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
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, O_JSON, 0};
    args a;
    dr_repo *r = NULL;
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
    if (rc == 0)
        rc = dr_repo_sync(r, NULL);
    if (rc == 0) {
        list_ctx l = {.r = r, .json = a.json, .keyring = dr_repo_keyring(r) != NULL};
        if (a.json)
            printf("[");
        else
            printf("%-4s  %-64s  %12s  %12s  %12s  %-20s  %-11s  %s\n", "KIND", "ID", "FROM REV",
                   "TO REV", "STORED B", "CREATED", "ENCRYPTION", "STATUS");
        rc = dr_repo_list(r, list_one, &l);
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
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, 0};
    args a;
    dr_repo *r = NULL;
    int rc = args_parse(argc, argv, allowed, 1, &a);
    if (rc == 0)
        rc = args_need(a.pos, "an ID (or latest)", a.cmd);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
    if (rc == 0 && !strcmp(a.pos, "latest"))
        rc = dr_repo_sync(r, NULL);
    dr_manifest m;
    if (rc == 0)
        rc = dr_repo_manifest(r, a.pos, &m);
    if (rc == 0) {
        dr_buf b = {0};
        rc = manifest_json(r, &m, &b);
        if (rc == 0)
            fputs(b.data, stdout);
        dr_buf_free(&b);
        if (rc == 0 && dr_repo_trust(r, &m) < 0) {
            fprintf(stderr, "drd: warning: %s\n", dr_error_msg());
            dr_error_clear();
        }
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

static int verify_one(void *ctx, const char *id, const dr_manifest *m, const char *problem)
{
    verify_ctx *v = ctx;
    if (problem) { /* damaged, or refused by this reader: a finding, never silently skipped */
        char shown[DR_REPO_ID_MAX + 8];
        dr_escape(id, strlen(id), shown, sizeof shown);
        fprintf(stderr, "drd: FAILED %s: %s\n", shown, problem);
        v->checked++;
        v->failed++;
        return 0;
    }
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
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, O_ALL, O_SAMPLE, 0};
    args a;
    dr_repo *r = NULL;
    int rc = args_parse(argc, argv, allowed, 1, &a);
    if (rc == 0 && !a.all)
        rc = args_need(a.pos, "an ID, latest or --all", a.cmd);
    if (rc == 0 && a.all && a.pos)
        rc = dr_error_set(DR_EUSAGE, "drd %s: give an ID or --all, not both", a.cmd);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
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
        (rc = dr_repo_list(r, verify_one, &v)) < 0)
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
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, O_OUT, 0};
    args a;
    dr_repo *r = NULL;
    int rc = args_parse(argc, argv, allowed, 1, &a);
    if (rc == 0)
        rc = args_need(a.pos, "an ID (or latest)", a.cmd);
    if (rc == 0)
        rc = args_need(a.out, "--out", a.cmd);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
    if (rc == 0 && !strcmp(a.pos, "latest"))
        rc = dr_repo_sync(r, NULL);
    dr_manifest m;
    dr_progress progress = {0};
    dr_progress_reporter *rep = NULL;
    if (rc == 0)
        rc = dr_repo_manifest(r, a.pos, &m);
    if (rc == 0) {
        dr_progress_begin(&progress, "reading and checking", m.stored_bytes);
        dr_repo_set_progress(r, &progress);
        rc = dr_progress_report_start(&progress, "snapshot get", drd_progress_mode, 0, &rep);
    }
    if (rc == 0)
        rc = dr_snapshot_get(r, &m, a.out);
    dr_progress_report_stop(rep);
    if (rc == 0)
        fprintf(stderr, "wrote %s (revision %" PRId64 ", %" PRIu64 " bytes)\n", a.out, m.rev_end,
                m.plain_bytes);
    dr_repo_close(r);
    return rc;
}

int cmd_snapshot_delete(int argc, char **argv)
{
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, 0};
    args a;
    dr_repo *r = NULL;
    int rc = args_parse(argc, argv, allowed, 1, &a);
    if (rc == 0)
        rc = args_need(a.pos, "an ID", a.cmd);
    if (rc == 0 && !strcmp(a.pos, "latest"))
        rc = dr_error_set(DR_EUSAGE, "drd %s: name the ID to delete, not 'latest'", a.cmd);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
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
    static const int allowed[] = {STORE_FLAGS, KEY_READ_FLAGS, O_KLAST, O_KHOUR, O_KDAY,
                                  O_KWEEK,     O_KMONTH,       O_DRY,   0};
    args a;
    dr_repo *r = NULL;
    int deleted = 0;
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0 && !a.keep.keep_last && !a.keep.keep_hourly && !a.keep.keep_daily &&
        !a.keep.keep_weekly && !a.keep.keep_monthly)
        rc = dr_error_set(DR_EUSAGE,
                          "drd %s: give at least one --keep-* (refusing to delete "
                          "everything)",
                          a.cmd);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
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
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = args_open_repo(&a, 0, &r);
    if (rc == 0)
        rc = dr_repo_rebuild(r, &n);
    if (rc == 0)
        printf("catalog rebuilt: %" PRId64 " objects\n", n);
    dr_repo_close(r);
    return rc;
}

int cmd_key_generate(int argc, char **argv)
{
    static const int allowed[] = {O_OUT, O_NAME, O_PSK, 0};
    args a;
    char name[DR_KEY_NAME_MAX + 1];
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = args_need(a.out, "--out", a.cmd);
    if (rc == 0 && a.psk) {
        if (a.name)
            return dr_error_set(DR_EUSAGE, "drd key generate: --name does not apply to --psk");
        rc = dr_tls_psk_generate(a.out);
        if (rc == 0)
            printf("wrote pre-shared key %s (mode 0600)\n", a.out);
        return rc;
    }
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
    int rc = args_parse(argc, argv, allowed, 0, &a);
    if (rc == 0)
        rc = args_need(a.keyring, "--keyring", a.cmd);
    if (rc == 0)
        rc = dr_keyring_rotate(a.keyring, a.name, name);
    if (rc == 0)
        printf("key '%s' added to %s and made current\n", name, a.keyring);
    return rc;
}
