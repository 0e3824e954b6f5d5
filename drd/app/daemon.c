#include "drd/app/daemon.h"
#include "drd/core/core.h"

int drd_daemon_run(drd_config *cfg, const char *path)
{
    drd_config_free(cfg);
    return dr_error_set(DR_EUSAGE,
                        "drd run --config %s: the daemon loop is not built yet (only "
                        "--check)",
                        path);
}
