/*
 * One value parser and one command-line parser for the rows of the option table (config.c): a
 * setting is parsed, range-checked and reported the same way whether it comes from a config key
 * or a flag.
 *
 * Must never: read files or the environment, accept an abbreviated flag (a flag is spelled out,
 * so that adding a flag never changes what an old command line means), or print a value that
 * is not the user's own input.
 */
#include "policies/policies.h"
#include "drd/core/core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const dr_option *dr_option_find(dr_opt_scope scope, const char *key)
{
    for (const dr_option *o = dr_options; o->key; o++)
        if (o->scope == scope && strcmp(o->key, key) == 0)
            return o;
    return NULL;
}

/* "4MiB", "512K", "1.5G", "65536": bytes, or -1. */
static int64_t parse_size(const char *text)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
    char num[32];
    size_t len = strspn(text, "0123456789.");
    if (len == 0 || len >= sizeof num || !isdigit((unsigned char)text[0]))
        return -1;
    memcpy(num, text, len);
    num[len] = 0;
    char *end = NULL;
    double d = strtod(num, &end);
    if (*end)
        return -1;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
        if (strcmp(text + len, units[u].unit) == 0) {
            double v = d * (double)(1LL << units[u].shift);
            return v >= 0 && v < 9.0e18 ? (int64_t)v : -1;
        }
    return -1;
}

/* A number of o's type for messages: durations in their largest whole unit (24h, 100ms). */
static void fmt_value(const dr_option *o, int64_t v, char *buf, size_t cap)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    size_t u = 0;
    if (o->type != DR_OPT_MS) {
        snprintf(buf, cap, "%lld", (long long)v);
        return;
    }
    while (v && v % units[u].ms)
        u++;
    snprintf(buf, cap, "%lld%s", (long long)(v / units[u].ms), v ? units[u].unit : "s");
}

int dr_option_parse(const dr_option *o, const char *text, const char *what, void *rec)
{
    char *field = (char *)rec + o->offset;
    int64_t n = 0;
    switch (o->type) {
    case DR_OPT_STR:
    case DR_OPT_FILE:
    case DR_OPT_URLS:
        if (!text[0])
            return dr_error_set(DR_EUSAGE, "%s: expected %s, found nothing", what,
                                o->type == DR_OPT_FILE ? "a file name" : "a string");
        *(const char **)field = text;
        return 0;
    case DR_OPT_LIST: {
        dr_conf_list *l = (dr_conf_list *)field;
        if (!text[0])
            return dr_error_set(DR_EUSAGE, "%s: expected a string, found nothing", what);
        const char **v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v)
            return dr_error_set(DR_ENOMEM, "out of memory");
        l->v = v;
        v[l->n++] = text;
        return 0;
    }
    case DR_OPT_BOOL:
        if (strcmp(text, "true") && strcmp(text, "false"))
            return dr_error_set(DR_EUSAGE, "%s: expected true or false, found '%s'", what, text);
        *(int *)field = text[0] == 't';
        return 0;
    case DR_OPT_MS:
        if (dr_parse_duration_ms(text, what, &n) < 0)
            return dr_error_set(
                DR_EUSAGE, "%s: expected a duration such as 10s, 5m or 1h, found '%s'", what, text);
        break;
    case DR_OPT_INT:
    case DR_OPT_I64:
    case DR_OPT_MIB:
        if (dr_parse_i64(text, what, &n) < 0)
            return dr_error_set(DR_EUSAGE, "%s: expected a whole number, found '%s'", what, text);
        break;
    case DR_OPT_BYTES:
        if ((n = parse_size(text)) < 0)
            return dr_error_set(DR_EUSAGE, "%s: expected a size such as 4MiB, found '%s'", what,
                                text);
        break;
    case DR_OPT_ENUM: {
        const char *p = o->choices;
        for (int i = 0; *p; i++) {
            size_t l = strcspn(p, "|");
            if (strlen(text) == l && strncmp(p, text, l) == 0) {
                *(int *)field = i;
                return 0;
            }
            p += l + (p[l] == '|');
        }
        return dr_error_set(DR_EUSAGE, "%s: expected one of %s, found '%s'", what, o->choices,
                            text);
    }
    case DR_OPT_SCHED:
        if (dr_schedule_parse(text, (dr_schedule *)field) < 0)
            return dr_error_wrap(DR_EUSAGE, "%s", what);
        return 0;
    case DR_OPT_MAP:
        return dr_error_set(DR_EUSAGE, "%s: expected a map of settings", what);
    }
    if (n < o->min || (o->max && n > o->max)) {
        char v[32], lo[32], hi[32];
        fmt_value(o, n, v, sizeof v);
        fmt_value(o, o->min, lo, sizeof lo);
        fmt_value(o, o->max, hi, sizeof hi);
        return dr_error_set(DR_EUSAGE, "%s: %s is out of range %s..%s", what, v, lo, hi);
    }
    if (o->type == DR_OPT_INT)
        *(int *)field = (int)n;
    else if (o->type == DR_OPT_MIB)
        *(size_t *)field = (size_t)n << 20;
    else
        *(int64_t *)field = n;
    return 0;
}

int dr_flag_row(dr_flag *f, dr_opt_scope scope, const char *key, const char *side, void *rec,
                int allowed)
{
    const dr_option *o = dr_option_find(scope, key);
    memset(f, 0, sizeof *f);
    if (!o || !o->flag)
        return dr_error_set(DR_ENOTFOUND, "the option table has no flag for '%s'", key);
    if (scope == DR_SCOPE_CLUSTER && o->flag[0] != '-')
        snprintf(f->name, sizeof f->name, "%s%s%s", side ? side : "etcd", o->flag[0] ? "-" : "",
                 o->flag);
    else
        snprintf(f->name, sizeof f->name, "%s", o->flag + (o->flag[0] == '-' ? 2 : 0));
    f->opt = o;
    f->rec = rec;
    f->has_value = o->type != DR_OPT_BOOL;
    f->allowed = allowed;
    return 0;
}

static int same_name(const dr_flag *f, const char *name, size_t len)
{
    return strlen(f->name) == len && strncmp(f->name, name, len) == 0;
}

/* "--a, --b, ..." of the allowed flags, each once. */
static void known_flags(const dr_flag *flags, size_t n, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && len + 1 < cap; i++) {
        if (!flags[i].allowed)
            continue;
        size_t k = 0;
        while (k < i && !(flags[k].allowed && strcmp(flags[k].name, flags[i].name) == 0))
            k++;
        if (k < i)
            continue;
        int w = snprintf(buf + len, cap - len, "%s--%s", len ? ", " : "", flags[i].name);
        len += w > 0 ? (size_t)w : 0;
    }
}

int dr_flags_parse(int argc, char **argv, const dr_flag *flags, size_t n, dr_flag_fn fn, void *ctx,
                   const char **pos, size_t max_pos, size_t *n_pos)
{
    const char *cmd = argv[0];
    int rc = 0, only_pos = 0;
    char what[128], known[2048];
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (*n_pos >= max_pos)
                return dr_error_set(DR_EUSAGE, "drd %s: unexpected argument '%s'", cmd, a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = a[1] == '-' ? strchr(name, '=') : NULL;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const dr_flag *first = NULL, *known_one = NULL;
        for (size_t k = 0; k < n && !first; k++)
            if (a[1] == '-' && same_name(&flags[k], name, len)) {
                known_one = &flags[k];
                first = flags[k].allowed ? &flags[k] : NULL;
            }
        if (!known_one) {
            known_flags(flags, n, known, sizeof known);
            return dr_error_set(DR_EUSAGE, "drd %s: unknown flag '%.*s' (known: %s)", cmd,
                                (int)(eq ? (size_t)(eq - a) : strlen(a)), a,
                                known[0] ? known : "none");
        }
        if (!first)
            return dr_error_set(DR_EUSAGE,
                                "drd %s: flag '--%s' does not apply here (see drd %s --help)", cmd,
                                known_one->name, cmd);
        const char *value = NULL;
        if (eq && !first->has_value)
            return dr_error_set(DR_EUSAGE, "drd %s: flag '--%s' takes no value", cmd, first->name);
        if (eq)
            value = eq + 1;
        else if (first->has_value && i + 1 >= argc)
            return dr_error_set(DR_EUSAGE, "drd %s: flag '--%s' needs a value", cmd, first->name);
        else if (first->has_value)
            value = argv[++i];
        snprintf(what, sizeof what, "drd %s: --%s", cmd, first->name);
        for (const dr_flag *f = first; f < flags + n; f++) {
            if (!f->allowed || strcmp(f->name, first->name) != 0)
                continue;
            if (f->opt)
                rc = dr_option_parse(f->opt, value ? value : "true", what, f->rec);
            else
                rc = fn ? fn(ctx, f, value) : dr_error_set(DR_EUSAGE, "%s: not handled", what);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
