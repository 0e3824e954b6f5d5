/* Writes the key tables of docs/daemon.md (between "<!-- keys:begin -->" and
 * "<!-- keys:end -->") from the option table in policies/config.c, so that the docs, the config
 * and the flags spell every setting the same way. unit.daemon_docs fails when they differ. */
#include "policies/policies.h"

#include <stdio.h>
#include <string.h>

static const struct {
    dr_opt_scope scope;
    const char *title, *flag_prefix;
} scopes[] = {
    {DR_SCOPE_TOP, "Top level", ""},
    {DR_SCOPE_CLUSTER, "`clusters.<name>`: an etcd cluster", NULL},
    {DR_SCOPE_STORE, "`stores.<name>`: a snapshot store", ""},
    {DR_SCOPE_REPLICATE, "`replicate[]`: continuous jobs (drd replicate etcd)", ""},
    {DR_SCOPE_SNAPSHOT, "`snapshots[]`: scheduled full snapshots (drd snapshot save)", ""},
    {DR_SCOPE_RETENTION, "`snapshots[].retention`: pruning after each snapshot", ""},
    {DR_SCOPE_DRILL, "`drills[]`: scheduled drills (drd drill)", ""},
    {DR_SCOPE_FAILOVER, "`failover`: drd failover and failback (docs/runbooks.md)", ""},
    {DR_SCOPE_PEER, "`peers.<name>`: the other site's daemon, probed", ""},
    {DR_SCOPE_VOLUME,
     "`volumes[]`: volume pairs (drd replicate volume push on a schedule, or serve)", ""},
};

static const char *type_name(dr_opt_type t)
{
    static const char *const n[] = {"string",   "file",     "URL list", "string list", "bool",
                                    "duration", "integer",  "integer",  "MiB",         "bytes",
                                    "choice",   "schedule", "map"};
    return t < sizeof n / sizeof n[0] ? n[t] : "?";
}

int main(void)
{
    for (size_t s = 0; s < sizeof scopes / sizeof scopes[0]; s++) {
        printf("\n### %s\n\n| key | type | flag | required | meaning |\n| --- | --- | --- | --- | "
               "--- |\n",
               scopes[s].title);
        for (const dr_option *o = dr_options; o->key; o++) {
            if (o->scope != scopes[s].scope)
                continue;
            char flag[96] = "";
            if (o->flag && !scopes[s].flag_prefix && o->flag[0] == '-')
                snprintf(flag, sizeof flag, "`%s` (every side)", o->flag);
            else if (o->flag && !scopes[s].flag_prefix)
                snprintf(flag, sizeof flag, "`--{etcd,source,target}%s%s`", *o->flag ? "-" : "",
                         o->flag);
            else if (o->flag)
                snprintf(flag, sizeof flag, "`--%s`", o->flag);
            char type[96];
            if (o->type == DR_OPT_ENUM) { /* "a|b" -> "a, b" (a '|' would end the cell) */
                snprintf(type, sizeof type, "%s", o->choices);
                for (char *c = type; *c; c++)
                    if (*c == '|')
                        *c = '/';
            } else if ((o->type == DR_OPT_INT || o->type == DR_OPT_I64 || o->type == DR_OPT_MIB) &&
                       o->max)
                snprintf(type, sizeof type, "%s %lld..%lld", type_name(o->type), (long long)o->min,
                         (long long)o->max);
            else
                snprintf(type, sizeof type, "%s", type_name(o->type));
            printf("| `%s` | %s | %s | %s | %s |\n", o->key, type, flag, o->required ? "yes" : "",
                   o->help);
        }
    }
    return 0;
}
