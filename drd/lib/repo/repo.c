/*
 * The repository handle: store + keyring + catalog, the catalog sync with the store's manifests,
 * and deletion and cleanup of objects. The store is the truth; the catalog follows it.
 * Must never delete data a manifest still references, and never delete a manifest's data before
 * the manifest itself (a listed snapshot always has its data).
 */
#include "drd/lib/catalog/catalog.h"
#include "drd/lib/json/json.h"
#include "drd/lib/repo/repo.h"
#include "repo_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* $DRD_CATALOG_DIR, else $XDG_STATE_HOME/drd, else $HOME/.local/state/drd; never a shared
 * location such as /tmp (another user could plant a catalog or a symlink there). drd's own dir
 * under XDG_STATE_HOME or HOME is made 0700; dr_catalog_open checks the owner and mode of
 * whichever dir it is. */
static int default_catalog_path(const char *url, char *out, size_t cap)
{
    char dir[3000];
    const char *d = getenv("DRD_CATALOG_DIR");
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (d && *d)
        snprintf(dir, sizeof dir, "%s", d);
    else if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/drd", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.local/state/drd", home);
    else
        return dr_error_set(DR_EUSAGE,
                            "no place for the local catalog: none of DRD_CATALOG_DIR, "
                            "XDG_STATE_HOME and HOME is set\nHINT: set XDG_STATE_HOME (or "
                            "DRD_CATALOG_DIR) to a directory of your own, or give --catalog FILE");
    if (!(d && *d)) {
        int rc = dr_fs_mkdirs(dir, 0700);
        if (rc < 0)
            return rc;
        chmod(dir, 0700); /* drd's own dir; a failure shows in dr_catalog_open's check */
    }
    uint8_t h[32];
    char hex[65];
    int rc = dr_sha256_buf(url, strlen(url), h);
    if (rc < 0)
        return rc;
    dr_hex(h, 8, hex);
    if (snprintf(out, cap, "%s/catalog-%s.db", dir, hex) >= (int)cap)
        return dr_error_set(DR_EUSAGE, "catalog path too long");
    return 0;
}

int dr_repo_open(const dr_repo_opts *o, dr_repo **out)
{
    int rc = 0;
    dr_repo *r = calloc(1, sizeof *r);
    if (!r)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if (o->need_key && !o->key_file && !o->no_encryption) {
        rc = dr_error_set(DR_EUSAGE, "no --key-file: drd encrypts snapshots at rest; give a "
                                     "keyring (drd key generate) or --no-encryption explicitly");
        goto out;
    }
    if (o->key_file && (rc = dr_keyring_load(o->key_file, &r->keys)) < 0)
        goto out;
    r->no_encryption = o->no_encryption && !o->key_file;
    r->allow_plaintext = o->allow_plaintext;
    if ((rc = dr_store_open(o->store_url, &o->store, &r->store)) < 0)
        goto out;
    if (o->catalog_path)
        snprintf(r->catalog_path, sizeof r->catalog_path, "%s", o->catalog_path);
    else if ((rc = default_catalog_path(o->store_url, r->catalog_path, sizeof r->catalog_path)) < 0)
        goto out;
    if ((rc = dr_catalog_open(r->catalog_path, &r->cat)) < 0)
        goto out;
    char *url = NULL;
    if (dr_catalog_meta_get(r->cat, "store", &url) == 0) {
        if (strcmp(url, o->store_url) != 0) {
            /* the same catalog file for another store (hash collision or a copied file) */
            dr_warn("catalog %s belonged to %s: rebuilding it for %s", r->catalog_path, url,
                    o->store_url);
            dr_catalog_clear(r->cat);
        }
        free(url);
    }
    dr_error_clear();
    /* catalogs of repository format 1 hold re-serialized manifests (no mac): start over */
    char *layout = NULL, want[16];
    snprintf(want, sizeof want, "%d", DR_REPO_FORMAT);
    if (dr_catalog_meta_get(r->cat, "format", &layout) < 0 || strcmp(layout, want) != 0)
        dr_catalog_clear(r->cat);
    free(layout);
    dr_error_clear();
    if ((rc = dr_catalog_meta_set(r->cat, "format", want)) < 0)
        goto out;
    rc = dr_catalog_meta_set(r->cat, "store", o->store_url);
out:
    if (rc < 0)
        dr_repo_close(r);
    else
        *out = r;
    return rc;
}

void dr_repo_close(dr_repo *r)
{
    if (!r)
        return;
    dr_catalog_close(r->cat);
    dr_store_close(r->store);
    dr_keyring_free(r->keys);
    free(r);
}

dr_store *dr_repo_store(dr_repo *r)
{
    return r->store;
}

const dr_keyring *dr_repo_keyring(dr_repo *r)
{
    return r->keys;
}

struct dr_catalog *dr_repo_catalog(dr_repo *r)
{
    return r->cat;
}

/* ---- catalog sync ---- */

typedef struct id_list {
    char **ids;
    size_t n, cap;
} id_list;

static int id_push(id_list *l, const char *id, size_t n)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        char **p = realloc(l->ids, nc * sizeof *p);
        if (!p)
            return dr_error_set(DR_ENOMEM, "out of memory");
        l->ids = p;
        l->cap = nc;
    }
    if (!(l->ids[l->n] = strndup(id, n)))
        return dr_error_set(DR_ENOMEM, "out of memory");
    l->n++;
    return 0;
}

static void id_list_free(id_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ids[i]);
    free(l->ids);
    memset(l, 0, sizeof *l);
}

static int collect_manifest(void *ctx, const dr_store_obj *o)
{
    const char *base = o->name + strlen(REPO_MANIFESTS);
    size_t n = strlen(base);
    if (n < 6 || strcmp(base + n - 5, ".json") != 0 || strchr(base, '/'))
        return 0;
    return id_push(ctx, base, n - 5);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct stale_ctx {
    id_list *store;
    id_list gone;
} stale_ctx;

static int find_stale(void *ctx, const dr_catalog_entry *e)
{
    stale_ctx *s = ctx;
    const char *key = e->id;
    if (s->store->n && bsearch(&key, s->store->ids, s->store->n, sizeof(char *), cmp_str))
        return 0;
    return id_push(&s->gone, e->id, strlen(e->id));
}

/* 1: a usable entry; 2: a damaged one (read again at every sync: the cause may be gone). */
static int has_id(void *ctx, const dr_catalog_entry *e)
{
    *(int *)ctx = strcmp(e->kind, REPO_DAMAGED) ? 1 : 2;
    return 0;
}

int repo_read_manifest(dr_repo *r, const char *id, dr_manifest *m, char **text_out)
{
    char name[256], *text = NULL;
    size_t len = 0;
    snprintf(name, sizeof name, REPO_MANIFESTS "%s.json", id);
    int rc = dr_store_get_buf(r->store, name, 1 << 20, &text, &len);
    if (rc < 0)
        return rc;
    if (memchr(text, 0, len))
        rc = dr_error_set(DR_EPROTO, "%s: not a manifest (binary)", name);
    else if ((rc = dr_manifest_from_json(text, len, m)) < 0)
        dr_error_wrap(rc, "%s", name);
    else if (strcmp(m->id, id) != 0)
        rc = dr_error_set(DR_EPROTO, "%s: manifest names a different id '%s'", name, m->id);
    if (rc == 0 && text_out) {
        *text_out = text;
        text = NULL;
    }
    free(text);
    return rc;
}

int repo_catalog_put(dr_repo *r, const dr_manifest *m, const char *text)
{
    dr_catalog_entry e = {.id = m->id,
                          .kind = dr_repo_kind_name(m->kind),
                          .rev_start = m->rev_start,
                          .rev_end = m->rev_end,
                          .created_ms = m->created_ms,
                          .stored_bytes = m->stored_bytes,
                          .manifest = text};
    return dr_catalog_put(r->cat, &e);
}

/* A manifest that cannot be used is kept in the catalog as kind "damaged" with the reason, so
 * that list shows it and everything else goes on with the rest. */
static int put_damaged(dr_repo *r, const char *id, const char *why)
{
    dr_catalog_entry e = {.id = id, .kind = REPO_DAMAGED, .manifest = why};
    return dr_catalog_put(r->cat, &e);
}

/* Errors that say nothing about the manifest itself (the store is unreachable): the sync stops. */
static int transient(int rc)
{
    return rc == DR_EUNAVAILABLE || rc == DR_ETIMEOUT || rc == DR_ETLS || rc == DR_EAUTH ||
           rc == DR_ENOMEM || rc == DR_EINTR;
}

static int sync(dr_repo *r, int rebuild, int64_t *count)
{
    int rc = 0, in_tx = 0, damaged = 0;
    id_list store = {0};
    stale_ctx st = {.store = &store};
    if ((rc = dr_store_list(r->store, REPO_MANIFESTS, collect_manifest, &store)) < 0)
        goto out;
    if (store.n)
        qsort(store.ids, store.n, sizeof(char *), cmp_str);
    if ((rc = dr_catalog_begin(r->cat)) < 0)
        goto out;
    in_tx = 1;
    if (rebuild && (rc = dr_catalog_clear(r->cat)) < 0)
        goto out;
    for (size_t i = 0; i < store.n; i++) {
        int have = 0;
        if (!rebuild) {
            rc = dr_catalog_get(r->cat, store.ids[i], has_id, &have);
            if (rc < 0 && rc != DR_ENOTFOUND)
                goto out;
            rc = 0;
        }
        if (have == 1)
            continue;
        dr_manifest m;
        char *text = NULL;
        rc = repo_read_manifest(r, store.ids[i], &m, &text);
        if (rc == DR_ENOTFOUND) { /* deleted since the listing */
            rc = 0;
            continue;
        }
        if (rc < 0 && transient(rc))
            goto out;
        if (rc < 0) {
            dr_warn("skipping damaged manifest %s: %s", store.ids[i], dr_error_msg());
            damaged++;
            rc = put_damaged(r, store.ids[i], dr_error_msg());
            dr_error_clear();
        } else {
            rc = repo_catalog_put(r, &m, text);
        }
        free(text);
        if (rc < 0)
            goto out;
    }
    if (damaged)
        dr_warn("%d damaged manifest%s skipped (drd snapshot list shows them)", damaged,
                damaged == 1 ? "" : "s");
    if (!rebuild) {
        /* entries whose manifest is gone from the store */
        rc = dr_catalog_each(r->cat, NULL, find_stale, &st);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < st.gone.n; i++)
            if ((rc = dr_catalog_remove(r->cat, st.gone.ids[i])) < 0)
                goto out;
    }
    if ((rc = dr_catalog_commit(r->cat)) < 0)
        goto out;
    in_tx = 0;
    if (count)
        rc = dr_catalog_count(r->cat, count);
out:
    if (in_tx)
        dr_catalog_rollback(r->cat);
    id_list_free(&store);
    id_list_free(&st.gone);
    return rc;
}

int dr_repo_sync(dr_repo *r, int64_t *n)
{
    return sync(r, 0, n);
}

int dr_repo_rebuild(dr_repo *r, int64_t *n)
{
    return sync(r, 1, n);
}

void dr_repo_set_progress(dr_repo *r, dr_progress *p)
{
    r->progress = p;
}

int dr_repo_trust(dr_repo *r, const dr_manifest *m)
{
    int enc = strcmp(m->encryption, "none") != 0;
    if (!r->keys) {
        if (enc)
            return dr_error_set(DR_EAUTH,
                                "%s is encrypted with key '%s': give the keyring with --key-file",
                                m->id, m->key_id);
        return 0; /* an unencrypted store is trusted as is (docs/security.md) */
    }
    if (!enc) {
        if (r->allow_plaintext)
            return 0;
        return dr_error_set(DR_EAUTH,
                            "%s is not encrypted but a keyring was given: refusing a plaintext "
                            "object (planted by a store writer?); --allow-plaintext reads it",
                            m->id);
    }
    if (!dr_keyring_has(r->keys, m->key_id))
        return dr_error_set(DR_EAUTH, "%s is encrypted with key '%s', which is not in the keyring",
                            m->id, m->key_id);
    return dr_manifest_check_mac(m, r->keys);
}

typedef struct each_ctx {
    dr_repo *r;
    dr_repo_manifest_cb cb;
    dr_repo_list_cb list;
    void *ctx;
    int warn;
} each_ctx;

static int each_entry(void *ctx, const dr_catalog_entry *e)
{
    each_ctx *c = ctx;
    dr_manifest m;
    const char *problem = NULL;
    int rc = 0;
    if (!strcmp(e->kind, REPO_DAMAGED)) {
        problem = e->manifest;
    } else if ((rc = dr_manifest_from_json(e->manifest, strlen(e->manifest), &m)) < 0) {
        return dr_error_wrap(rc, "catalog entry %s (run drd catalog rebuild)", e->id);
    } else if (dr_repo_trust(c->r, &m) < 0) {
        problem = dr_error_msg();
    }
    if (c->list) {
        rc = c->list(c->ctx, e->id, problem ? (strcmp(e->kind, REPO_DAMAGED) ? &m : NULL) : &m,
                     problem);
        dr_error_clear();
        return rc;
    }
    if (problem) {
        if (c->warn && strcmp(e->kind, REPO_DAMAGED) != 0) /* the sync named the damaged ones */
            dr_warn("skipping %s: %s", e->id, problem);
        dr_error_clear();
        return 0;
    }
    return c->cb(c->ctx, &m);
}

int dr_repo_each(dr_repo *r, dr_repo_manifest_cb cb, void *ctx)
{
    each_ctx c = {.r = r, .cb = cb, .ctx = ctx, .warn = !r->each_warned};
    r->each_warned = 1;
    return dr_catalog_each(r->cat, NULL, each_entry, &c);
}

int dr_repo_list(dr_repo *r, dr_repo_list_cb cb, void *ctx)
{
    each_ctx c = {.r = r, .list = cb, .ctx = ctx};
    return dr_catalog_each(r->cat, NULL, each_entry, &c);
}

typedef struct point_ctx {
    int64_t rev, ms;
} point_ctx;

/* Objects come ordered by rev_end: a full snapshot is a point, and a segment starting at most
 * one revision after the newest point extends it. */
static int point_step(void *ctx, const dr_manifest *m)
{
    point_ctx *p = ctx;
    if (m->kind == DR_KIND_FULL || (p->rev && m->rev_start <= p->rev + 1 && m->rev_end > p->rev)) {
        p->rev = m->rev_end;
        p->ms = m->created_ms;
    }
    return 0;
}

int dr_repo_newest_point(dr_repo *r, int64_t *rev, int64_t *ms)
{
    point_ctx p = {0, 0};
    int rc = dr_repo_each(r, point_step, &p);
    *rev = rc == 0 ? p.rev : 0;
    *ms = rc == 0 ? p.ms : 0;
    return rc;
}

typedef struct newest_ctx {
    dr_manifest m;      /* the newest usable full snapshot */
    char refused[1024]; /* why the newest refused one was refused */
    int usable, skipped;
} newest_ctx;

static int take_newest(void *ctx, const char *id, const dr_manifest *m, const char *problem)
{
    newest_ctx *c = ctx;
    (void)id;
    if (!m || m->kind != DR_KIND_FULL) /* damaged ones were named by the sync */
        return 0;
    if (problem) {
        dr_warn("not a candidate for latest: %s", problem);
        snprintf(c->refused, sizeof c->refused, "%s", problem);
        c->skipped++;
        return 0;
    }
    c->m = *m; /* ordered by revision: the last one wins */
    c->usable = 1;
    return 0;
}

int dr_repo_manifest(dr_repo *r, const char *id, dr_manifest *m)
{
    if (!strcmp(id, "latest")) {
        newest_ctx *c = calloc(1, sizeof *c);
        if (!c)
            return dr_error_set(DR_ENOMEM, "out of memory");
        int rc = dr_repo_list(r, take_newest, c);
        if (rc == 0 && c->usable)
            *m = c->m;
        else if (rc == 0 && c->skipped)
            rc = dr_error_set(DR_EAUTH,
                              "no full snapshot in store '%s' that this reader can use (%s)",
                              dr_store_url(r->store), c->refused);
        else if (rc == 0)
            rc = dr_error_set(DR_ENOTFOUND, "store '%s' holds no full snapshot",
                              dr_store_url(r->store));
        free(c);
        return rc;
    }
    int rc = dr_repo_parse_id(id, NULL, NULL, NULL, NULL);
    if (rc < 0)
        return rc;
    rc = repo_read_manifest(r, id, m, NULL);
    if (rc == DR_ENOTFOUND)
        rc = dr_error_set(DR_ENOTFOUND, "no snapshot or segment '%s' in store '%s'", id,
                          dr_store_url(r->store));
    return rc;
}

typedef struct shared_ctx {
    const char *id, *data;
    int others;
} shared_ctx;

/* Only manifests this reader trusts count: a planted one cannot pin real data either. */
static int count_sharing(void *ctx, const char *id, const dr_manifest *m, const char *problem)
{
    shared_ctx *c = ctx;
    if (m && !problem && strcmp(id, c->id) != 0 && strcmp(m->data, c->data) == 0)
        c->others++;
    return 0;
}

int dr_repo_delete(dr_repo *r, const char *id)
{
    dr_manifest m;
    char name[256];
    snprintf(name, sizeof name, REPO_MANIFESTS "%s.json", id);
    int rc = repo_read_manifest(r, id, &m, NULL), keep_data = 0;
    if (rc == DR_ENOTFOUND)
        return dr_error_set(DR_ENOTFOUND, "no snapshot or segment '%s' in store '%s'", id,
                            dr_store_url(r->store));
    if (rc < 0 && transient(rc))
        return rc;
    if (rc < 0 || dr_repo_trust(r, &m) < 0) {
        dr_warn("%s: %s: deleting the manifest only (its data, if any, is left to cleanup)", id,
                dr_error_msg());
        keep_data = 1;
    } else {
        shared_ctx c = {.id = id, .data = m.data};
        if ((rc = dr_repo_list(r, count_sharing, &c)) < 0)
            return rc;
        if (c.others) {
            dr_warn("%s: its data %s is named by %d other manifest%s: kept", id, m.data, c.others,
                    c.others == 1 ? "" : "s");
            keep_data = 1;
        }
    }
    dr_error_clear();
    if ((rc = dr_store_delete(r->store, name)) < 0)
        return rc;
    if (!keep_data && (rc = dr_store_delete(r->store, m.data)) < 0)
        return dr_error_wrap(rc,
                             "%s deleted but its data %s remains (drd snapshot cleanup "
                             "removes it)",
                             id, m.data);
    return dr_catalog_remove(r->cat, id);
}

/* ---- cleanup of orphaned data ---- */

typedef struct orphan_ctx {
    dr_repo *r;
    id_list referenced; /* data names, sorted */
    int64_t before_ms;
    int removed;
} orphan_ctx;

static int64_t name_ms(const char *name)
{
    /* data/<job>-<ms>-<rand>.drd: when the writer started */
    const char *dash = strchr(name + strlen(REPO_DATA), '-');
    return dash ? strtoll(dash + 1, NULL, 10) : 0;
}

/* Every manifest's data counts as referenced, trusted or not (a reader without the keyring
 * cannot tell): cleanup never removes what any parseable manifest names. */
static int ref_data(void *ctx, const char *id, const dr_manifest *m, const char *problem)
{
    orphan_ctx *o = ctx;
    (void)problem;
    if (m)
        return id_push(&o->referenced, m->data, strlen(m->data));
    /* damaged, e.g. a newer drd's format: whatever "data" it names is kept too */
    char name[256], *text = NULL;
    size_t len = 0;
    dr_json *j = NULL;
    int rc = 0;
    snprintf(name, sizeof name, REPO_MANIFESTS "%s.json", id);
    if (dr_store_get_buf(o->r->store, name, 1 << 20, &text, &len) == 0 &&
        dr_json_parse(text, len, &j) == 0) {
        const char *d = dr_json_str(j, "data");
        if (d)
            rc = id_push(&o->referenced, d, strlen(d));
    }
    if (rc == 0)
        dr_error_clear();
    dr_json_free(j);
    free(text);
    return rc;
}

static int drop_orphan(void *ctx, const dr_store_obj *obj)
{
    orphan_ctx *o = ctx;
    const char *key = obj->name;
    if (o->referenced.n &&
        bsearch(&key, o->referenced.ids, o->referenced.n, sizeof(char *), cmp_str))
        return 0;
    int64_t t = obj->mtime_ms > name_ms(obj->name) ? obj->mtime_ms : name_ms(obj->name);
    if (t > o->before_ms)
        return 0; /* may be a writer still uploading, or committing its manifest */
    int rc = dr_store_delete(o->r->store, obj->name);
    if (rc == 0) {
        dr_info("removed unreferenced data object %s (left by an interrupted run)", obj->name);
        o->removed++;
    }
    return rc;
}

int dr_repo_cleanup(dr_repo *r, const char *job, int64_t older_than_ms, int *n)
{
    int rc, uploads = 0;
    char prefix[128];
    snprintf(prefix, sizeof prefix, REPO_DATA "%s%s", job ? job : "", job ? "-" : "");
    orphan_ctx o = {.r = r, .before_ms = dr_wall_ms() - older_than_ms};
    if ((rc = dr_repo_sync(r, NULL)) < 0)
        goto out;
    if ((rc = dr_repo_list(r, ref_data, &o)) < 0)
        goto out;
    if (o.referenced.n)
        qsort(o.referenced.ids, o.referenced.n, sizeof(char *), cmp_str);
    if ((rc = dr_store_list(r->store, prefix, drop_orphan, &o)) < 0)
        goto out;
    if ((rc = dr_store_cleanup(r->store, prefix, older_than_ms, &uploads)) < 0)
        goto out;
    if (n)
        *n = o.removed + uploads;
out:
    id_list_free(&o.referenced);
    return rc;
}
