/* cron-next: prints the next runs of schedules, for the croniter oracle (cron_oracle.py).
 * Reads lines "SCHEDULE<TAB>START_S<TAB>N" from stdin and writes, per line, either N instants
 * (seconds since the epoch, space-separated), each the next run after the previous one, or
 * "error: MESSAGE". Zones named by CRON_TZ= come from $ZONEINFO (default /usr/share/zoneinfo). */
#include "drd/core/core.h"
#include "policies/policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char line[512];
    const char *zdir = getenv("ZONEINFO") ? getenv("ZONEINFO") : "/usr/share/zoneinfo";
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) {
            fprintf(stderr, "cron-next: bad input line '%s'\n", line);
            return 2;
        }
        *t1 = *t2 = 0;
        long long start = atoll(t1 + 1);
        int n = atoi(t2 + 1);
        dr_schedule s;
        dr_tz *z = NULL;
        int rc = dr_schedule_parse(line, &s);
        if (rc == 0 && s.tz_name[0]) {
            char path[256], *data = NULL;
            size_t len = 0;
            snprintf(path, sizeof path, "%s/%s", zdir, s.tz_name);
            if ((rc = dr_fs_read_all(path, 1 << 20, &data, &len)) == 0)
                rc = dr_tz_parse(s.tz_name, data, len, &z);
            free(data);
            dr_schedule_set_tz(&s, z);
        }
        if (rc < 0) {
            printf("error: %s\n", dr_error_msg());
            dr_tz_free(z);
            continue;
        }
        int64_t t = (int64_t)start * 1000;
        for (int i = 0; i < n && rc == 0; i++) {
            if ((rc = dr_schedule_next(&s, t, &t)) == 0)
                printf("%s%lld", i ? " " : "", (long long)(t / 1000));
        }
        if (rc < 0)
            printf(" error: %s", dr_error_msg());
        printf("\n");
        fflush(stdout);
        dr_tz_free(z);
    }
    return 0;
}
