/* Private to drd/lib/repo: the handle's fields and helpers shared by its files. */
#ifndef DRD_REPO_INT_H
#define DRD_REPO_INT_H

#include "drd/lib/repo/repo.h"

#define REPO_MANIFESTS "manifests/"
#define REPO_DATA "data/"
#define REPO_LOCKS "locks/"

struct dr_repo {
    dr_store *store;
    dr_keyring *keys;
    struct dr_catalog *cat;
    int no_encryption;
    char catalog_path[4096];
};

int repo_read_manifest(dr_repo *r, const char *id, dr_manifest *m);
int repo_catalog_put(dr_repo *r, const dr_manifest *m);

#endif
