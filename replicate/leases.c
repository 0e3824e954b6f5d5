/*
 * Lease mirror. A key put with lease L on the source is put with lease L on the target, so L must
 * exist there first: granted with the same id and the source's granted TTL. A background thread
 * keeps target leases alive while the source holds them, and revokes a target lease once the source
 * no longer has it AND no key is attached to it on the target (the source's revoke arrives as
 * delete events through the normal stream; revoking earlier would delete keys on the target by
 * itself, a write the source never made).
 *
 * Must never revoke a lease that still has keys on the target.
 */
#include "repl_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct lent {
    int64_t id;
    int64_t granted_ttl;
    int64_t last_ka_ms;
} lent;

struct leases {
    dr_etcd *src, *tgt;
    dr_repl_stats *stats;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    lent *v;
    size_t n, cap;
    int stop;
    pthread_t th;
    int started;
};

static lent *find(leases *l, int64_t id)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->v[lo].id == id ? &l->v[lo] : NULL;
}

static int insert(leases *l, int64_t id, int64_t ttl)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        lent *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return dr_error_set(DR_ENOMEM, "out of memory");
        l->v = nv;
        l->cap = nc;
    }
    size_t i = l->n;
    while (i > 0 && l->v[i - 1].id > id) {
        l->v[i] = l->v[i - 1];
        i--;
    }
    l->v[i] = (lent){.id = id, .granted_ttl = ttl > 0 ? ttl : 60, .last_ka_ms = dr_mono_ms()};
    l->n++;
    return 0;
}

static void removeid(leases *l, int64_t id)
{
    lent *e = find(l, id);
    if (!e)
        return;
    size_t i = (size_t)(e - l->v);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

int leases_ensure(leases *l, int64_t id)
{
    pthread_mutex_lock(&l->mu);
    int known = find(l, id) != NULL;
    pthread_mutex_unlock(&l->mu);
    if (known)
        return 0;
    int64_t ttl = 0, granted = 0;
    int rc = dr_etcd_lease_ttl(l->src, id, &ttl, &granted, NULL);
    if (rc == DR_ENOTFOUND) {
        /* the source already revoked it: its keys' deletes follow in the stream; a short-lived
         * stand-in lease is kept alive by the thread while keys are attached */
        granted = 60;
        dr_error_clear();
    } else if (rc < 0) {
        return rc;
    }
    int64_t tttl = 0, tgranted = 0;
    rc = dr_etcd_lease_ttl(l->tgt, id, &tttl, &tgranted, NULL);
    if (rc == DR_ENOTFOUND) {
        dr_error_clear();
        rc = dr_etcd_lease_grant(l->tgt, id, granted, NULL);
        if (rc < 0)
            return dr_error_wrap(rc, "cannot grant lease %llx on the target",
                                 (unsigned long long)id);
        l->stats->leases_granted_total++;
        dr_debug("granted lease %llx (ttl %lld) on the target", (unsigned long long)id,
                 (long long)granted);
    } else if (rc < 0) {
        return rc;
    } else {
        granted = tgranted;
    }
    pthread_mutex_lock(&l->mu);
    if (!find(l, id))
        rc = insert(l, id, granted);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int leases_adopt_all(leases *l)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int rc = dr_etcd_lease_list(l->tgt, &ids, &n);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!find(l, ids[i]))
            rc = insert(l, ids[i], 0);
    pthread_mutex_unlock(&l->mu);
    free(ids);
    return rc;
}

/* One pass over the known leases: keep alive, or revoke when gone on the source and unused. */
static void tick(leases *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->n;
    lent *snap = n ? malloc(n * sizeof *snap) : NULL;
    if (snap)
        memcpy(snap, l->v, n * sizeof *snap);
    pthread_mutex_unlock(&l->mu);
    if (!snap)
        return;
    int64_t now = dr_mono_ms();
    for (size_t i = 0; i < n && !l->stop; i++) {
        lent *e = &snap[i];
        int64_t sttl = 0, sgranted = 0;
        int rc = dr_etcd_lease_ttl(l->src, e->id, &sttl, &sgranted, NULL);
        if (rc < 0 && rc != DR_ENOTFOUND)
            continue; /* source unreachable: keep the target lease alive below */
        int64_t nkeys = 0, tttl = 0;
        int gone_on_source = rc == DR_ENOTFOUND;
        if (gone_on_source) {
            rc = dr_etcd_lease_ttl(l->tgt, e->id, &tttl, NULL, &nkeys);
            if (rc == DR_ENOTFOUND) {
                pthread_mutex_lock(&l->mu);
                removeid(l, e->id);
                pthread_mutex_unlock(&l->mu);
                continue;
            }
            if (rc == 0 && nkeys == 0) {
                if (dr_etcd_lease_revoke(l->tgt, e->id) == 0 || dr_error_code() == DR_ENOTFOUND) {
                    dr_debug("revoked lease %llx on the target (gone on the source)",
                             (unsigned long long)e->id);
                    pthread_mutex_lock(&l->mu);
                    removeid(l, e->id);
                    pthread_mutex_unlock(&l->mu);
                }
                continue;
            }
        }
        /* keep alive at a third of the ttl; a lease still holding keys is never let expire */
        int64_t every = e->granted_ttl * 1000 / 3;
        if (every > 5000)
            every = 5000;
        if (every < 500)
            every = 500;
        if (now - e->last_ka_ms >= every) {
            int64_t ttl = 0;
            if (dr_etcd_lease_keepalive(l->tgt, e->id, &ttl) == 0) {
                pthread_mutex_lock(&l->mu);
                lent *le = find(l, e->id);
                if (le)
                    le->last_ka_ms = now;
                pthread_mutex_unlock(&l->mu);
            }
        }
    }
    free(snap);
    dr_error_clear();
}

static void *lease_main(void *arg)
{
    leases *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->mu);
        tick(l);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int leases_new(leases **out, dr_etcd *src, dr_etcd *tgt, dr_repl_stats *stats)
{
    leases *l = calloc(1, sizeof *l);
    if (!l)
        return dr_error_set(DR_ENOMEM, "out of memory");
    l->src = src;
    l->tgt = tgt;
    l->stats = stats;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->th, NULL, lease_main, l) != 0) {
        leases_free(l);
        return dr_error_set(DR_EGENERIC, "cannot start the lease thread");
    }
    l->started = 1;
    *out = l;
    return 0;
}

void leases_free(leases *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->v);
    free(l);
}
