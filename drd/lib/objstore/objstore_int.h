/*
 * drd object store, internal: the driver interface behind dr_store, shared by objstore.c (URL
 * dispatch, name checks, the whole-object helpers) and the drivers (file.c, s3*.c).
 * Must never be included outside drd/lib/objstore, except by its tests (the test hooks below).
 */
#ifndef DRD_OBJSTORE_INT_H
#define DRD_OBJSTORE_INT_H

#include "drd/lib/objstore/objstore.h"

/* What a driver implements. Names reaching a driver are already checked (store_check_name). */
typedef struct store_ops {
    int (*put)(dr_store *s, const char *name, dr_sink **out);
    int (*get)(dr_store *s, const char *name, uint64_t off, uint64_t len, dr_source **out);
    int (*head)(dr_store *s, const char *name, uint64_t *size);
    int (*del)(dr_store *s, const char *name);
    int (*list)(dr_store *s, const char *prefix, dr_store_list_cb cb, void *ctx);
    int (*cleanup)(dr_store *s, const char *prefix, int64_t older_than_ms, int *n);
    void (*close)(dr_store *s);
} store_ops;

/* Every driver's store starts with this. */
struct dr_store {
    const store_ops *ops;
    char *url;     /* as opened (never holds credentials: URLs with userinfo are refused) */
    int list_page; /* objects per listing request (S3 max-keys); 0: the server's default, 1000 */
};

/* Driver constructors: url is the full URL, rest what follows the scheme's "//". On success
 * *out is a store whose url and ops the driver has set. */
int dr_store_file_open(const char *url, const char *rest, int create, dr_store **out);
int dr_store_s3_open(const char *url, const char *rest, const dr_store_opts *o, dr_store **out);

/* ---- test hooks (tests/integration/objstore) ---- */
/* Objects per listing request, to exercise paging with few objects (S3 max-keys). */
void dr_store_test_set_list_page(dr_store *s, int n);

#endif
