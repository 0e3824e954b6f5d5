/*
 * Runbooks: the YAML step lists of failover, failback and planned switchover (the model), and the
 * step machine of a run (pure bookkeeping; the runner in drd/app/runbook.c does the steps and
 * saves this state after every change).
 *
 * Must never: accept a key or step type it does not know, report an error without
 * "file:line:column", or read files, clocks or the environment (times are handed in).
 */
#include "policies/policies.h"
#include "drd/core/core.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int64_t timeout_ms; /* default */
} types[DR_STEP_TYPES] = {
    [DR_STEP_CHECK] = {"check", 60000},
    [DR_STEP_FENCE] = {"fence", 30000},
    [DR_STEP_WAIT_REPLICATION] = {"wait-replication", 300000},
    [DR_STEP_FINAL_VOLUME_SYNC] = {"final-volume-sync", 600000},
    [DR_STEP_PROMOTE] = {"promote", 60000},
    [DR_STEP_HOOK_EXEC] = {"hook-exec", 60000},
    [DR_STEP_HOOK_HTTP] = {"hook-http", 30000},
    [DR_STEP_START_REPLICATION] = {"start-replication", 120000},
    [DR_STEP_RECORD] = {"record", 30000},
};

const char *dr_step_type_name(dr_step_type t)
{
    return t < DR_STEP_TYPES ? types[t].name : "?";
}

DR_PRINTF(3, 4)
static int at(const dr_runbook *rb, const dr_yaml_node *n, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dr_error_set(DR_EUSAGE, "%s:%d:%d: %s", rb->file, n ? n->line : 1, n ? n->col : 1, msg);
}

static const char *kind_word(const dr_yaml_node *n)
{
    return n->kind == DR_YAML_MAP ? "a map" : n->kind == DR_YAML_SEQ ? "a list" : "a string";
}

static const dr_yaml_node *find_key(const dr_yaml_node *map, const char *key)
{
    if (!map || map->kind != DR_YAML_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (map->items[2 * i]->kind == DR_YAML_SCALAR && strcmp(map->items[2 * i]->value, key) == 0)
            return map->items[2 * i + 1];
    return NULL;
}

static int scalar(const dr_runbook *rb, const dr_yaml_node *v, const char *where, const char *what)
{
    if (v->kind != DR_YAML_SCALAR)
        return at(rb, v, "%s: expected %s, found %s", where, what, kind_word(v));
    if (!v->value[0] || (v->plain && (!strcmp(v->value, "null") || !strcmp(v->value, "~"))))
        return at(rb, v, "%s: expected %s, found nothing", where, what);
    return 0;
}

static int plain_name(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
            return 0;
    return *s != 0 && strlen(s) <= 64;
}

/* The keys a step may have: every step's, then its type's. */
static const char *const common_keys[] = {"name",    "type",        "timeout",
                                          "retries", "retry_delay", NULL};
static const char *const own_keys[DR_STEP_TYPES][3] = {
    [DR_STEP_CHECK] = {"checks", "max_lag", NULL},
    [DR_STEP_FENCE] = {"side", NULL},
    [DR_STEP_HOOK_EXEC] = {"command", NULL},
    [DR_STEP_HOOK_HTTP] = {"url", NULL},
};

static int known_key(dr_step_type t, const char *k)
{
    for (size_t i = 0; common_keys[i]; i++)
        if (!strcmp(common_keys[i], k))
            return 1;
    for (size_t i = 0; own_keys[t][i]; i++)
        if (!strcmp(own_keys[t][i], k))
            return 1;
    return 0;
}

static int parse_checks(const dr_runbook *rb, const dr_yaml_node *v, const char *where,
                        unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"reachable", DR_CHECK_REACHABLE},
                 {"lag", DR_CHECK_LAG},
                 {"epoch", DR_CHECK_EPOCH},
                 {"encryption-keys", DR_CHECK_KEYS}};
    int rc = 0;
    if (v->kind != DR_YAML_SEQ || v->n == 0)
        return at(rb, v, "%s: expected a list of checks (reachable, lag, epoch, encryption-keys)",
                  where);
    *out = 0;
    for (size_t i = 0; i < v->n; i++) {
        const dr_yaml_node *it = v->items[i];
        if ((rc = scalar(rb, it, where, "a check name")) < 0)
            return rc;
        size_t k = 0;
        while (k < sizeof names / sizeof names[0] && strcmp(names[k].name, it->value))
            k++;
        if (k == sizeof names / sizeof names[0])
            return at(rb, it,
                      "%s: unknown check '%s' (known: reachable, lag, epoch, encryption-keys)",
                      where, it->value);
        *out |= names[k].bit;
    }
    return 0;
}

static int parse_step(dr_runbook *rb, const dr_yaml_node *m, size_t idx, dr_step *s)
{
    char where[128];
    int rc = 0;
    int64_t n = 0;
    snprintf(where, sizeof where, "steps[%zu]", idx);
    if (m->kind != DR_YAML_MAP)
        return at(rb, m, "%s: expected a map (name, type, ...), found %s", where, kind_word(m));
    s->at = (dr_conf_pos){m->line, m->col};
    s->retry_delay_ms = 5000;
    s->max_lag = -1;
    const dr_yaml_node *name = find_key(m, "name"), *type = find_key(m, "type");
    if (!name)
        return at(rb, m, "%s: 'name' is required", where);
    if ((rc = scalar(rb, name, where, "a step name")) < 0)
        return rc;
    if (!plain_name(name->value))
        return at(rb, name,
                  "%s: step name '%s': use letters, digits, '-', '_' and '.' (at most 64)", where,
                  name->value);
    s->name = name->value;
    snprintf(where, sizeof where, "step %s", s->name);
    if (!type)
        return at(rb, m,
                  "%s: 'type' is required (check, fence, wait-replication, "
                  "final-volume-sync, promote, hook-exec, hook-http, start-replication, "
                  "record)",
                  where);
    if ((rc = scalar(rb, type, where, "a step type")) < 0)
        return rc;
    size_t t = 0;
    while (t < DR_STEP_TYPES && strcmp(types[t].name, type->value))
        t++;
    if (t == DR_STEP_TYPES)
        return at(rb, type,
                  "%s: unknown step type '%s' (known: check, fence, wait-replication, "
                  "final-volume-sync, promote, hook-exec, hook-http, start-replication, record)",
                  where, type->value);
    s->type = (dr_step_type)t;
    s->timeout_ms = types[t].timeout_ms;
    for (size_t i = 0; i < m->n; i++) {
        const dr_yaml_node *k = m->items[2 * i], *v = m->items[2 * i + 1];
        if (k->kind != DR_YAML_SCALAR)
            return at(rb, k, "%s: a key must be a string", where);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->items[2 * j]->value, k->value))
                return at(rb, k, "%s: '%s' is given twice", where, k->value);
        if (!known_key(s->type, k->value))
            return at(rb, k, "%s: unknown key '%s' for a %s step", where, k->value, types[t].name);
        if (!strcmp(k->value, "timeout") || !strcmp(k->value, "retry_delay")) {
            if ((rc = scalar(rb, v, where, "a duration")) < 0)
                return rc;
            if (dr_parse_duration_ms(v->value, k->value, &n) < 0 || n < 0 || n > 86400000)
                return at(rb, v,
                          "%s: %s: expected a duration such as 30s or 5m (at most 24h), "
                          "found '%s'",
                          where, k->value, v->value);
            if (k->value[0] == 't' && n == 0)
                return at(rb, v, "%s: timeout must be more than 0", where);
            *(k->value[0] == 't' ? &s->timeout_ms : &s->retry_delay_ms) = n;
        } else if (!strcmp(k->value, "retries") || !strcmp(k->value, "max_lag")) {
            if ((rc = scalar(rb, v, where, "a number")) < 0)
                return rc;
            int64_t max = k->value[0] == 'r' ? 100 : INT64_C(1000000000);
            if (dr_parse_i64(v->value, k->value, &n) < 0 || n > max)
                return at(rb, v, "%s: %s: expected a whole number 0..%" PRId64 ", found '%s'",
                          where, k->value, max, v->value);
            if (k->value[0] == 'r')
                s->retries = (int)n;
            else
                s->max_lag = n;
        } else if (!strcmp(k->value, "checks")) {
            if ((rc = parse_checks(rb, v, where, &s->checks)) < 0)
                return rc;
        } else if (!strcmp(k->value, "side")) {
            if ((rc = scalar(rb, v, where, "old-primary or new-primary")) < 0)
                return rc;
            if (strcmp(v->value, "old-primary") && strcmp(v->value, "new-primary"))
                return at(rb, v, "%s: side: expected old-primary or new-primary, found '%s'", where,
                          v->value);
            s->side = v->value[0] == 'o' ? DR_SIDE_OLD_PRIMARY : DR_SIDE_NEW_PRIMARY;
        } else if (!strcmp(k->value, "command")) {
            if (v->kind != DR_YAML_SEQ || v->n == 0)
                return at(rb, v,
                          "%s: command: expected a list (the program and its arguments; "
                          "no shell), found %s",
                          where, v->kind == DR_YAML_SEQ ? "an empty list" : kind_word(v));
            if (!(s->command.v = calloc(v->n + 1, sizeof *s->command.v)))
                return dr_error_set(DR_ENOMEM, "out of memory");
            for (size_t a = 0; a < v->n; a++) {
                if (v->items[a]->kind != DR_YAML_SCALAR)
                    return at(rb, v->items[a], "%s: command: expected strings, found %s", where,
                              kind_word(v->items[a]));
                s->command.v[a] = v->items[a]->value;
            }
            s->command.n = v->n;
            if (!s->command.v[0][0])
                return at(rb, v->items[0], "%s: command: the program is empty", where);
        } else if (!strcmp(k->value, "url")) {
            if ((rc = scalar(rb, v, where, "a URL")) < 0)
                return rc;
            if (strncmp(v->value, "http://", 7) || !v->value[7])
                return at(rb, v, "%s: url: expected http://host:port/path, found '%s'", where,
                          v->value);
            s->url = v->value;
        }
    }
    if (s->type == DR_STEP_HOOK_EXEC && !s->command.n)
        return at(rb, m, "%s: a hook-exec step needs 'command' (a list: program, arguments)",
                  where);
    if (s->type == DR_STEP_HOOK_HTTP && !s->url)
        return at(rb, m, "%s: a hook-http step needs 'url'", where);
    return 0;
}

void dr_runbook_free(dr_runbook *rb)
{
    if (!rb)
        return;
    for (size_t i = 0; i < rb->n_steps; i++)
        free(rb->steps[i].command.v);
    free(rb->steps);
    dr_yaml_free(rb->doc);
    free(rb);
}

int dr_runbook_from_yaml(dr_yaml_doc *doc, dr_runbook **out)
{
    int rc = 0;
    dr_runbook *rb = calloc(1, sizeof *rb);
    *out = NULL;
    if (!rb) {
        dr_yaml_free(doc);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    rb->doc = doc;
    rb->file = doc->file;
    const dr_yaml_node *root = doc->root, *steps = NULL;
    if (!root || root->kind != DR_YAML_MAP) {
        rc = at(rb, root, "expected a map (runbook, description, steps)%s",
                root ? "" : ", the file is empty");
        goto out;
    }
    for (size_t i = 0; i < root->n; i++) {
        const dr_yaml_node *k = root->items[2 * i], *v = root->items[2 * i + 1];
        if (k->kind != DR_YAML_SCALAR) {
            rc = at(rb, k, "a key must be a string");
            goto out;
        }
        if (!strcmp(k->value, "runbook") || !strcmp(k->value, "description")) {
            if ((rc = scalar(rb, v, k->value, "a string")) < 0)
                goto out;
            *(k->value[0] == 'r' ? &rb->name : &rb->description) = v->value;
        } else if (!strcmp(k->value, "steps")) {
            steps = v;
        } else {
            rc = at(rb, k, "unknown key '%s' (known: runbook, description, steps)", k->value);
            goto out;
        }
    }
    if (!rb->name) {
        rc = at(rb, root, "'runbook' (its name) is required");
        goto out;
    }
    if (!plain_name(rb->name)) {
        rc = at(rb, find_key(root, "runbook"),
                "runbook '%s': use letters, digits, '-', '_' and '.' (at most 64)", rb->name);
        goto out;
    }
    if (!steps || steps->kind != DR_YAML_SEQ || steps->n == 0) {
        rc = at(rb, steps ? steps : root, "'steps' is required: a list of at least one step");
        goto out;
    }
    if (steps->n > DR_RUN_MAX_STEPS) {
        rc = at(rb, steps, "%zu steps: at most %d", steps->n, DR_RUN_MAX_STEPS);
        goto out;
    }
    if (!(rb->steps = calloc(steps->n, sizeof *rb->steps))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < steps->n; i++) {
        rb->n_steps = i + 1;
        if ((rc = parse_step(rb, steps->items[i], i, &rb->steps[i])) < 0)
            goto out;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(rb->steps[j].name, rb->steps[i].name)) {
                rc = at(rb, find_key(steps->items[i], "name"),
                        "step name '%s' is used twice (first at line %d)", rb->steps[i].name,
                        rb->steps[j].at.line);
                goto out;
            }
    }
    *out = rb;
    rb = NULL;
out:
    dr_runbook_free(rb);
    return rc;
}

/* ---- the step machine ---- */

const char *dr_step_status_name(dr_step_status s)
{
    static const char *const n[] = {"pending", "running", "ok", "waiting", "failed"};
    return s <= DR_STEP_FAILED ? n[s] : "?";
}

const char *dr_run_status_name(dr_run_status s)
{
    static const char *const n[] = {"active", "done", "failed", "aborted"};
    return s <= DR_RUN_ABORTED ? n[s] : "?";
}

int dr_run_init(dr_run *r, const dr_runbook *rb)
{
    memset(r, 0, sizeof *r);
    if (rb->n_steps > DR_RUN_MAX_STEPS)
        return dr_error_set(DR_EUSAGE, "runbook %s: more than %d steps", rb->name,
                            DR_RUN_MAX_STEPS);
    r->n_steps = rb->n_steps;
    return 0;
}

int dr_run_next(dr_run *r, const dr_runbook *rb, int64_t now_ms, size_t *step, int64_t *wait_ms)
{
    (void)rb;
    if (r->status != DR_RUN_ACTIVE)
        return 1;
    while (r->cur < r->n_steps && r->steps[r->cur].status == DR_STEP_OK)
        r->cur++;
    if (r->cur == r->n_steps) {
        r->status = DR_RUN_DONE;
        return 1;
    }
    dr_run_step *s = &r->steps[r->cur];
    if (s->status == DR_STEP_WAITING && s->retry_at_ms > now_ms) {
        *wait_ms = s->retry_at_ms - now_ms;
        return DR_ETIMEOUT;
    }
    /* pending, waiting and due, or running when the process died in it: (re)start it */
    s->status = DR_STEP_RUNNING;
    s->attempts++;
    if (!s->started_ms)
        s->started_ms = now_ms;
    *step = r->cur;
    return 0;
}

void dr_run_step_done(dr_run *r, const dr_runbook *rb, int rc, const char *result, int64_t now_ms)
{
    if (r->cur >= r->n_steps)
        return;
    dr_run_step *s = &r->steps[r->cur];
    const dr_step *st = &rb->steps[r->cur];
    s->rc = rc;
    s->ended_ms = now_ms;
    snprintf(s->result, sizeof s->result, "%s", result ? result : "");
    if (rc == 0) {
        s->status = DR_STEP_OK;
        r->cur++;
        if (r->cur == r->n_steps)
            r->status = DR_RUN_DONE;
    } else if (s->attempts <= st->retries) {
        s->status = DR_STEP_WAITING;
        s->retry_at_ms = now_ms + st->retry_delay_ms;
    } else {
        s->status = DR_STEP_FAILED;
        r->status = DR_RUN_FAILED;
    }
}

void dr_run_retry(dr_run *r)
{
    if (r->status != DR_RUN_FAILED || r->cur >= r->n_steps)
        return;
    r->steps[r->cur].status = DR_STEP_PENDING;
    r->steps[r->cur].attempts = 0;
    r->status = DR_RUN_ACTIVE;
}

/* ---- the state file ----
 *   drd-run 1
 *   status active
 *   cur 2
 *   steps 9
 *   step 0 ok 1 1764670000000 1764670001000 0 0 <escaped result>
 */
int dr_run_format(const dr_run *r, dr_buf *out)
{
    int rc = dr_buf_printf(out, "drd-run 1\nstatus %s\ncur %zu\nsteps %zu\n",
                           dr_run_status_name(r->status), r->cur, r->n_steps);
    for (size_t i = 0; rc == 0 && i < r->n_steps; i++) {
        const dr_run_step *s = &r->steps[i];
        rc = dr_buf_printf(out, "step %zu %s %d %" PRId64 " %" PRId64 " %" PRId64 " %d ", i,
                           dr_step_status_name(s->status), s->attempts, s->started_ms, s->ended_ms,
                           s->retry_at_ms, s->rc);
        if (rc == 0)
            rc = dr_buf_escape(out, s->result, strlen(s->result));
        if (rc == 0)
            rc = dr_buf_printf(out, "\n");
    }
    return rc;
}

static int unescape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '\\') {
            if (p[1] == '\\') {
                p++;
            } else if (p[1] == 'x' && isxdigit((unsigned char)p[2]) &&
                       isxdigit((unsigned char)p[3])) {
                char h[3] = {p[2], p[3], 0};
                c = (char)strtol(h, NULL, 16);
                p += 3;
            } else {
                return -1;
            }
        }
        if (o + 1 < cap)
            out[o++] = c;
    }
    out[o] = 0;
    return 0;
}

static int status_of(const char *w, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(w, names[i]))
            return i;
    return -1;
}

int dr_run_parse(const char *text, size_t len, dr_run *out)
{
    static const char *const rs[] = {"active", "done", "failed", "aborted"};
    static const char *const ss[] = {"pending", "running", "ok", "waiting", "failed"};
    char *copy = malloc(len + 1), *save = NULL, word[32];
    int rc = 0;
    size_t n = 0, seen = 0;
    if (!copy)
        return dr_error_set(DR_ENOMEM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = 0;
    memset(out, 0, sizeof *out);
    char *line = strtok_r(copy, "\n", &save);
    if (!line || strcmp(line, "drd-run 1")) {
        rc = dr_error_set(DR_EPROTO, "not a runbook run state");
        goto out;
    }
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (sscanf(line, "status %31s", word) == 1) {
            int v = status_of(word, rs, 4);
            if (v < 0)
                goto bad;
            out->status = (dr_run_status)v;
        } else if (sscanf(line, "cur %zu", &n) == 1) {
            out->cur = n;
        } else if (sscanf(line, "steps %zu", &n) == 1) {
            if (n > DR_RUN_MAX_STEPS)
                goto bad;
            out->n_steps = n;
        } else if (!strncmp(line, "step ", 5)) {
            size_t i = 0;
            int used = 0, attempts = 0, src = 0;
            long long a = 0, b = 0, c = 0;
            if (sscanf(line, "step %zu %31s %d %lld %lld %lld %d %n", &i, word, &attempts, &a, &b,
                       &c, &src, &used) < 7 ||
                i >= out->n_steps || i != seen)
                goto bad;
            int v = status_of(word, ss, 5);
            if (v < 0 || unescape(line + used, out->steps[i].result, sizeof out->steps[i].result))
                goto bad;
            out->steps[i].status = (dr_step_status)v;
            out->steps[i].attempts = attempts;
            out->steps[i].started_ms = a;
            out->steps[i].ended_ms = b;
            out->steps[i].retry_at_ms = c;
            out->steps[i].rc = src;
            seen++;
        } else {
            goto bad;
        }
    }
    if (seen != out->n_steps || out->cur > out->n_steps)
        goto bad;
    goto out;
bad:
    rc = dr_error_set(DR_EPROTO, "runbook run state: a line it does not know or out of order");
out:
    free(copy);
    return rc;
}
