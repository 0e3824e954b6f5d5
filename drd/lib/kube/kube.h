/*
 * drd kube: Kubernetes' view of an etcd keyspace. The API server stores each resource under
 * /registry/<resource>/ (a group's under /registry/<group>/<resource>/, e.g.
 * /registry/apiregistration.k8s.io/apiservices/), so keys counted per such prefix say "1,203
 * pods, 87 secrets" where a total says only "1,290 keys". A snapshot records these counts in its
 * manifest (drd/lib/repo "key_counts") and a drill compares the restored data with them.
 *
 * A service (CONVENTIONS.md): etcd wrapper + repo's dr_key_counts. Must never read values (keys
 * and counts only), and never send more than a few requests per resource, whatever the number
 * of keys.
 */
#ifndef DRD_KUBE_H
#define DRD_KUBE_H

#include <stddef.h>
#include <stdint.h>

#include "drd/lib/etcd/etcd.h"
#include "drd/lib/repo/repo.h"

/* The resource bucket of an etcd key: "pods" for /registry/pods/..., "<group>/<resource>" for
 * /registry/<group with a dot>/<resource>/...; its length, the name written NUL-terminated to
 * out (cap >= DR_KEY_COUNT_NAME_MAX), or 0 for a key counted as other (outside /registry/, no
 * resource segment, a name dr_key_counts_name_ok refuses). */
size_t dr_kube_resource(const void *key, size_t len, char *out, size_t cap);

/* Counts the keys at revision rev (> 0) per resource into *kc (caller frees with
 * dr_key_counts_free): a keys-only Range of one key finds the next resource, a count-only Range
 * counts its prefix, and the scan jumps past it; so about two requests per resource, plus one per
 * possible first character of a name (38). Past
 * DR_KEY_COUNTS_MAX buckets (or 4 times as many steps over keys that name no resource) the rest
 * is other. kc->other = every key at rev not in a bucket. DR_ECOMPACTED, and etcd's errors. */
int dr_kube_count(dr_etcd *e, int64_t rev, dr_key_counts *kc);

#endif
