/* Private to snapshot/: helpers shared by its files. */
#ifndef DRD_SNAPSHOT_INT_H
#define DRD_SNAPSHOT_INT_H

#include "drd/lib/repo/repo.h"

/* Writes m as the container's "manifest.json" entry (the authenticated copy of the manifest). */
int snapshot_write_inner_manifest(dr_archive_writer *ar, const dr_manifest *m, int64_t mtime);

#endif
