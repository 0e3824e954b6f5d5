/* Private to restore/: helpers shared by its files. */
#ifndef DRD_RESTORE_INT_H
#define DRD_RESTORE_INT_H

#include "drd/core/core.h"
#include "restore/restore.h"

/* Reads the plan's segments (and with_base, its full snapshot) back completely
 * (dr_repo_verify), reporting each. Without with_base the caller must write the snapshot out
 * with dr_repo_get_db, which checks it on the way, before touching anything. */
int restore_verify_plan(dr_repo *repo, const dr_restore_plan *p, const dr_restore_opts *o,
                        int with_base);
/* Restores the plan's base snapshot into data_dir (absent or empty) for member name of
 * initial_cluster advertising peer_urls: dr_etcdtool_restore_from with the snapshot written by
 * dr_repo_get_db (checked as it is written). */
int restore_base(dr_repo *repo, const dr_restore_plan *p, const char *data_dir, const char *name,
                 const char *initial_cluster, const char *peer_urls);
/* Begins progress over what a plan reads from the store: the base snapshot once, the segments
 * once to check them and, when replaying, once more to replay them; the repository's readers then
 * count into it. restore_progress_done stops that. */
void restore_progress_begin(dr_repo *repo, const dr_restore_plan *p, dr_progress *progress,
                            int replaying);
void restore_progress_done(dr_repo *repo);
void restore_say(const dr_restore_opts *o, const char *fmt, ...) DR_PRINTF(2, 3);

#endif
