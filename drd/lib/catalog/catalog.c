/*
 * The catalog on sqlite3. One connection per process, WAL journal, a busy timeout so that a
 * CronJob and an operator can use the same catalog at once. sqlite result codes become DR_EIO
 * with sqlite's message in one place (sql_err).
 * Must never make the catalog the only copy of store data (see catalog.h).
 */
#include "drd/lib/catalog/catalog.h"
#include "drd/core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct dr_catalog {
    sqlite3 *db;
    char *path;
};

static int sql_err(dr_catalog *c, const char *what)
{
    return dr_error_set(DR_EIO, "catalog '%s': %s: %s", c->path, what, sqlite3_errmsg(c->db));
}

static int exec(dr_catalog *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc =
            dr_error_set(DR_EIO, "catalog '%s': %s", c->path, msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS objects(id TEXT PRIMARY KEY, kind TEXT NOT NULL,"
    " rev_start INTEGER NOT NULL, rev_end INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " stored_bytes INTEGER NOT NULL, manifest TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS objects_rev ON objects(rev_end, kind);"
    "CREATE TABLE IF NOT EXISTS drills(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " started_ms INTEGER NOT NULL, snapshot_id TEXT NOT NULL, revision INTEGER NOT NULL,"
    " ok INTEGER NOT NULL, rto_ms INTEGER NOT NULL, report TEXT NOT NULL);";

int dr_catalog_open(const char *path, dr_catalog **out)
{
    int rc = 0;
    dr_catalog *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    /* a dir another user owns or may write to could get a planted catalog or symlink */
    const char *parent = dirname(dir);
    if ((rc = dr_fs_mkdirs(parent, 0700)) < 0 ||
        (rc = dr_fs_check_private_dir(parent, "catalog dir")) < 0)
        goto out;
    /* create the file 0600 ourselves: sqlite would use the umask */
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = dr_error_set(DR_EIO, "cannot open catalog '%s': %s", path, strerror(errno));
        goto out;
    }
    fchmod(fd, 0600);
    close(fd);
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        rc = c->db ? sql_err(c, "open")
                   : dr_error_set(DR_ENOMEM, "cannot open catalog '%s': out of memory", path);
        goto out;
    }
    sqlite3_busy_timeout(c->db, 10000);
    if ((rc = exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")) < 0)
        goto out;
    if ((rc = exec(c, SCHEMA)) < 0)
        goto out;
    /* the WAL and shm files are created by sqlite with the db's mode; make sure */
    char side[4200];
    snprintf(side, sizeof side, "%s-wal", path);
    chmod(side, 0600);
    snprintf(side, sizeof side, "%s-shm", path);
    chmod(side, 0600);
out:
    if (rc < 0)
        dr_catalog_close(c);
    else
        *out = c;
    return rc;
}

void dr_catalog_close(dr_catalog *c)
{
    if (!c)
        return;
    if (c->db)
        sqlite3_close_v2(c->db);
    free(c->path);
    free(c);
}

int dr_catalog_begin(dr_catalog *c)
{
    return exec(c, "BEGIN IMMEDIATE");
}

int dr_catalog_commit(dr_catalog *c)
{
    return exec(c, "COMMIT");
}

void dr_catalog_rollback(dr_catalog *c)
{
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static int prepare(dr_catalog *c, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK)
        return sql_err(c, "prepare");
    return 0;
}

/* Runs a statement to completion (no rows expected) and finalizes it. */
static int run(dr_catalog *c, sqlite3_stmt *st, const char *what)
{
    int rc = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sql_err(c, what);
    sqlite3_finalize(st);
    return rc;
}

int dr_catalog_put(dr_catalog *c, const dr_catalog_entry *e)
{
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "INSERT OR REPLACE INTO objects(id,kind,rev_start,rev_end,created_ms,"
                     "stored_bytes,manifest) VALUES(?,?,?,?,?,?,?)",
                     &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, e->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, e->kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, e->rev_start);
    sqlite3_bind_int64(st, 4, e->rev_end);
    sqlite3_bind_int64(st, 5, e->created_ms);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)e->stored_bytes);
    sqlite3_bind_text(st, 7, e->manifest ? e->manifest : "{}", -1, SQLITE_TRANSIENT);
    return run(c, st, "insert");
}

int dr_catalog_remove(dr_catalog *c, const char *id)
{
    sqlite3_stmt *st;
    int rc = prepare(c, "DELETE FROM objects WHERE id=?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    return run(c, st, "delete");
}

int dr_catalog_clear(dr_catalog *c)
{
    return exec(c, "DELETE FROM objects");
}

static int each_rows(dr_catalog *c, sqlite3_stmt *st, dr_catalog_cb cb, void *ctx, int *seen)
{
    int rc = 0, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        dr_catalog_entry e = {
            .id = (const char *)sqlite3_column_text(st, 0),
            .kind = (const char *)sqlite3_column_text(st, 1),
            .rev_start = sqlite3_column_int64(st, 2),
            .rev_end = sqlite3_column_int64(st, 3),
            .created_ms = sqlite3_column_int64(st, 4),
            .stored_bytes = (uint64_t)sqlite3_column_int64(st, 5),
            .manifest = (const char *)sqlite3_column_text(st, 6),
        };
        if (seen)
            (*seen)++;
        if ((rc = cb(ctx, &e)) != 0)
            break;
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = sql_err(c, "select");
    sqlite3_finalize(st);
    return rc;
}

#define COLS "id,kind,rev_start,rev_end,created_ms,stored_bytes,manifest"

int dr_catalog_each(dr_catalog *c, const char *kind, dr_catalog_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "SELECT " COLS " FROM objects WHERE ?1 IS NULL OR kind=?1"
                     " ORDER BY rev_end, kind='full', id",
                     &st);
    if (rc < 0)
        return rc;
    if (kind)
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
    return each_rows(c, st, cb, ctx, NULL);
}

int dr_catalog_get(dr_catalog *c, const char *id, dr_catalog_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    int seen = 0;
    int rc = prepare(c, "SELECT " COLS " FROM objects WHERE id=?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    rc = each_rows(c, st, cb, ctx, &seen);
    if (rc == 0 && !seen)
        rc = dr_error_set(DR_ENOTFOUND, "no snapshot or segment '%s' in the store", id);
    return rc;
}

int dr_catalog_count(dr_catalog *c, int64_t *n)
{
    sqlite3_stmt *st;
    int rc = prepare(c, "SELECT count(*) FROM objects", &st);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        rc = sql_err(c, "count");
    sqlite3_finalize(st);
    return rc;
}

int dr_catalog_meta_set(dr_catalog *c, const char *key, const char *value)
{
    sqlite3_stmt *st;
    int rc = prepare(c, "INSERT OR REPLACE INTO meta(key,value) VALUES(?,?)", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    return run(c, st, "meta");
}

int dr_catalog_meta_get(dr_catalog *c, const char *key, char **value)
{
    sqlite3_stmt *st;
    int rc = prepare(c, "SELECT value FROM meta WHERE key=?", &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        *value = strdup((const char *)sqlite3_column_text(st, 0));
        if (!*value)
            rc = dr_error_set(DR_ENOMEM, "out of memory");
    } else if (s == SQLITE_DONE) {
        rc = dr_error_set(DR_ENOTFOUND, "catalog has no '%s'", key);
    } else {
        rc = sql_err(c, "meta");
    }
    sqlite3_finalize(st);
    return rc;
}

int dr_catalog_drill_add(dr_catalog *c, const dr_catalog_drill *d)
{
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "INSERT INTO drills(started_ms,snapshot_id,revision,ok,rto_ms,report)"
                     " VALUES(?,?,?,?,?,?)",
                     &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, d->started_ms);
    sqlite3_bind_text(st, 2, d->snapshot_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, d->revision);
    sqlite3_bind_int(st, 4, d->ok);
    sqlite3_bind_int64(st, 5, d->rto_ms);
    sqlite3_bind_text(st, 6, d->report ? d->report : "{}", -1, SQLITE_TRANSIENT);
    return run(c, st, "insert drill");
}

int dr_catalog_drill_each(dr_catalog *c, int limit, dr_catalog_drill_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    int rc = prepare(c,
                     "SELECT started_ms,snapshot_id,revision,ok,rto_ms,report FROM drills"
                     " ORDER BY seq DESC LIMIT ?",
                     &st);
    if (rc < 0)
        return rc;
    sqlite3_bind_int(st, 1, limit > 0 ? limit : -1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        dr_catalog_drill d = {
            .started_ms = sqlite3_column_int64(st, 0),
            .snapshot_id = (const char *)sqlite3_column_text(st, 1),
            .revision = sqlite3_column_int64(st, 2),
            .ok = sqlite3_column_int(st, 3),
            .rto_ms = sqlite3_column_int64(st, 4),
            .report = (const char *)sqlite3_column_text(st, 5),
        };
        if ((rc = cb(ctx, &d)) != 0)
            break;
    }
    if (rc == 0 && s != SQLITE_DONE)
        rc = sql_err(c, "select drills");
    sqlite3_finalize(st);
    return rc;
}
