/*
 * The daemon's config, checked as far as it can be before anything runs: the model from
 * policies/ (keys, types, schedules, references), then what needs I/O, with the position the
 * model kept for each value. Must never print a secret: only the names of files and variables.
 */
#include "drd/app/daemon.h"
#include "drd/core/core.h"
#include "drd/lib/yaml/yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void drd_config_free(drd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_zones; i++)
        dr_tz_free(cfg->zones[i]);
    dr_conf_free(cfg->c);
    free(cfg);
}

static int load_zone(drd_config *cfg, dr_conf_job *j)
{
    const dr_conf *c = cfg->c;
    const char *name = j->schedule.tz_name;
    for (size_t i = 0; i < cfg->n_zones; i++)
        if (strcmp(dr_tz_name(cfg->zones[i]), name) == 0) {
            dr_schedule_set_tz(&j->schedule, cfg->zones[i]);
            return 0;
        }
    if (cfg->n_zones == sizeof cfg->zones / sizeof cfg->zones[0])
        return dr_error_set(DR_EUSAGE, "%s:%d:%d: more than %zu time zones", c->file,
                            j->schedule_at.line, j->schedule_at.col, cfg->n_zones);
    const char *dir = getenv("TZDIR") && *getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo";
    char path[512], *data = NULL;
    size_t len = 0;
    dr_tz *z = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = dr_fs_read_all(path, 1 << 20, &data, &len);
    if (rc == 0)
        rc = dr_tz_parse(name, data, len, &z);
    free(data);
    if (rc < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", dr_error_msg());
        return dr_error_set(DR_EUSAGE, "%s:%d:%d: %s %s: unknown time zone '%s' (%s)", c->file,
                            j->schedule_at.line, j->schedule_at.col, dr_job_kind_name(j->kind),
                            j->name, name, why);
    }
    cfg->zones[cfg->n_zones++] = z;
    dr_schedule_set_tz(&j->schedule, z);
    return 0;
}

void drd_job_repl_opts(const drd_config *cfg, const dr_conf_job *j, dr_repl_opts *o)
{
    const dr_conf *c = cfg->c;
    memset(o, 0, sizeof *o);
    o->source = c->clusters[j->source_i].etcd;
    o->target = c->clusters[j->target_i].etcd;
    drd_repl_opts_of_job(j, o);
}

void drd_repl_opts_of_job(const dr_conf_job *j, dr_repl_opts *o)
{
    o->mode = j->mode ? DR_REPL_FILTERED : DR_REPL_EXACT;
    o->name = j->name;
    o->prefixes = j->prefixes.v;
    o->n_prefixes = j->prefixes.n;
    o->excludes = j->excludes.v;
    o->n_excludes = j->excludes.n;
    o->dest_prefix = j->dest_prefix;
    o->max_txn_ops = j->max_txn_ops;
    o->window = j->window;
}

void drd_store_repo_opts(const drd_config *cfg, size_t store_i, dr_repo_opts *ro, char *cat,
                         size_t cap)
{
    const dr_conf_store *s = &cfg->c->stores[store_i];
    *ro = s->repo;
    if (!ro->catalog_path) {
        snprintf(cat, cap, "%s/catalog-%s.db", cfg->c->state_dir, s->name);
        ro->catalog_path = cat;
    }
}

int drd_config_load(const char *path, drd_config **out)
{
    int rc = 0;
    dr_yaml_doc *doc = NULL;
    drd_config *cfg = calloc(1, sizeof *cfg);
    *out = NULL;
    if (!cfg)
        return dr_error_set(DR_ENOMEM, "out of memory");
    if ((rc = dr_yaml_load(path, &doc)) < 0)
        goto out;
    if ((rc = dr_conf_from_yaml(doc, &cfg->c)) < 0)
        goto out;
    dr_conf *c = cfg->c;
    for (size_t i = 0; i < c->n_files; i++) {
        const dr_conf_file *f = &c->files[i];
        if (access(f->path, R_OK) != 0) {
            rc = dr_error_set(DR_EUSAGE, "%s:%d:%d: %s '%s': cannot read it: %s", c->file,
                              f->at.line, f->at.col, f->key, f->path, strerror(errno));
            goto out;
        }
        /* a secret (keyring, TLS key, EncryptionConfiguration: f->secret, its scope's row's
         * name) gets the check the commands make before they read it (owner, mode:
         * docs/security-local.md), so a file others may read is refused here rather than failing
         * every job with DR_EAUTH */
        if (f->secret && (rc = dr_fs_check_secret_file(f->path, f->secret)) < 0) {
            rc = dr_error_wrap(DR_EUSAGE, "%s:%d:%d: %s", c->file, f->at.line, f->at.col, f->key);
            goto out;
        }
    }
    for (size_t i = 0; i < c->n_jobs; i++) {
        dr_conf_job *j = &c->jobs[i];
        if (j->scheduled && j->schedule.tz_name[0] && (rc = load_zone(cfg, j)) < 0)
            goto out;
        if (j->kind == DR_JOB_REPLICATE) {
            dr_repl_opts o;
            drd_job_repl_opts(cfg, j, &o);
            if ((rc = dr_repl_check_opts(&o)) < 0) {
                rc = dr_error_wrap(DR_EUSAGE, "%s:%d:%d: replicate %s", c->file, j->at.line,
                                   j->at.col, j->name);
                goto out;
            }
        }
    }
    *out = cfg;
    cfg = NULL;
out:
    drd_config_free(cfg);
    return rc;
}
