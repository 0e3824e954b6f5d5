/*
 * Managing what the repository holds: verify (read everything back and check it against the
 * manifest), get (the plain etcd snapshot file), prune (retention from policies/), and the
 * check of the segment chain for gaps and overlaps.
 * Must never write a file at the caller's path before every check passed, and never delete
 * anything the retention plan keeps.
 */
#include "snapshot/snapshot.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dr_snapshot_verify(dr_repo *repo, const dr_manifest *m)
{
    return dr_repo_verify(repo, m);
}

int dr_snapshot_get(dr_repo *repo, const dr_manifest *m, const char *path)
{
    return dr_repo_get_db(repo, m, path, 0);
}

/* ---- retention ---- */

typedef struct points {
    dr_point *v;
    char (*ids)[DR_REPO_ID_MAX];
    size_t n, cap;
} points;

static int add_point(void *ctx, const dr_manifest *m)
{
    points *p = ctx;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 128;
        dr_point *v = realloc(p->v, nc * sizeof *v);
        if (!v)
            return dr_error_set(DR_ENOMEM, "out of memory");
        p->v = v;
        char(*ids)[DR_REPO_ID_MAX] = realloc(p->ids, nc * sizeof *ids);
        if (!ids)
            return dr_error_set(DR_ENOMEM, "out of memory");
        p->ids = ids;
        p->cap = nc;
    }
    snprintf(p->ids[p->n], DR_REPO_ID_MAX, "%s", m->id);
    p->v[p->n] = (dr_point){.id = NULL,
                            .kind = m->kind == DR_KIND_FULL ? DR_POINT_FULL : DR_POINT_INCR,
                            .rev_start = m->rev_start,
                            .rev_end = m->rev_end,
                            .time_ms = m->created_ms};
    p->n++;
    return 0;
}

static int count_unchecked(void *ctx, const char *id, const dr_manifest *m, const char *problem)
{
    (void)id;
    if (m && problem && strcmp(m->encryption, "none") != 0)
        (*(int *)ctx)++;
    return 0;
}

int dr_snapshot_prune(dr_repo *repo, const dr_retention *policy, int dry_run,
                      dr_snapshot_print print, void *ctx, int *deleted)
{
    points p = {0};
    dr_retention_decision *d = NULL;
    int rc = dr_repo_sync(repo, NULL), ndel = 0, unchecked = 0;
    if (rc < 0)
        goto out;
    /* retention decides on authenticated manifests only: without the keyring it cannot decide */
    if (!dr_repo_keyring(repo) && (rc = dr_repo_list(repo, count_unchecked, &unchecked)) == 0 &&
        unchecked) {
        rc = dr_error_set(DR_EAUTH,
                          "prune needs --key-file: %d objects are encrypted and only manifests "
                          "authenticated by the keyring are counted or deleted",
                          unchecked);
        goto out;
    }
    if (rc < 0)
        goto out;
    if ((rc = dr_repo_each(repo, add_point, &p)) < 0)
        goto out;
    for (size_t i = 0; i < p.n; i++)
        p.v[i].id = p.ids[i];
    if (!(d = calloc(p.n ? p.n : 1, sizeof *d))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = dr_retention_plan(policy, p.v, p.n, d)) < 0)
        goto out;
    char line[512];
    for (size_t i = 0; i < p.n; i++) {
        snprintf(line, sizeof line, "%s %s: %s", d[i].keep ? "keep" : "delete", p.ids[i],
                 d[i].reason);
        print(ctx, line);
    }
    if (dry_run)
        goto out;
    for (size_t i = 0; i < p.n; i++) {
        if (d[i].keep)
            continue;
        if ((rc = dr_repo_delete(repo, p.ids[i])) < 0)
            goto out;
        ndel++;
    }
out:
    if (deleted)
        *deleted = ndel;
    free(d);
    free(p.v);
    free(p.ids);
    return rc;
}

/* ---- chain check ---- */

typedef struct chain {
    dr_snapshot_print print;
    void *ctx;
    int64_t covered; /* every revision up to here is restorable (-1: no full snapshot yet) */
    int64_t seg_end; /* end of the previous segment */
    int problems;
} chain;

static int walk_chain(void *ctx, const dr_manifest *m)
{
    chain *c = ctx;
    char line[512];
    if (m->kind == DR_KIND_FULL) {
        if (m->rev_end > c->covered)
            c->covered = m->rev_end;
        return 0;
    }
    if (c->covered < 0)
        return 0; /* before the oldest full snapshot: nothing restores through it */
    if (m->rev_start <= c->seg_end) {
        snprintf(line, sizeof line,
                 "overlap: %s starts at %" PRId64 ", the previous segment ends at %" PRId64, m->id,
                 m->rev_start, c->seg_end);
        c->print(c->ctx, line);
        c->problems++;
    } else if (m->rev_start > c->covered + 1) {
        snprintf(line, sizeof line,
                 "gap: revisions %" PRId64 "-%" PRId64 " are in no segment (before %s)",
                 c->covered + 1, m->rev_start - 1, m->id);
        c->print(c->ctx, line);
        c->problems++;
    }
    c->seg_end = m->rev_end;
    if (m->rev_end > c->covered)
        c->covered = m->rev_end;
    return 0;
}

int dr_snapshot_check_chain(dr_repo *repo, dr_snapshot_print print, void *ctx)
{
    chain c = {.print = print, .ctx = ctx, .covered = -1, .seg_end = -1};
    int rc = dr_repo_each(repo, walk_chain, &c);
    if (rc < 0)
        return rc;
    if (c.problems)
        return dr_error_set(DR_ECHECKSUM, "the segment chain has %d gap(s) or overlap(s)",
                            c.problems);
    return 0;
}
