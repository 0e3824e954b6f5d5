/*
 * etcd client: connection, endpoint failover, error translation, unary RPCs, leases,
 * maintenance (Status, HashKV, Snapshot stream) and cluster membership.
 *
 * Must never retry a write by itself (see etcd.h) and never log request payloads.
 */
#include "etcd_int.h"
#include "drd/lib/crypto/crypto.h"

#include <grpc/support/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_paths[M_COUNT] = {
    [M_RANGE] = "/etcdserverpb.KV/Range",
    [M_PUT] = "/etcdserverpb.KV/Put",
    [M_DELETE] = "/etcdserverpb.KV/DeleteRange",
    [M_TXN] = "/etcdserverpb.KV/Txn",
    [M_COMPACT] = "/etcdserverpb.KV/Compact",
    [M_WATCH] = "/etcdserverpb.Watch/Watch",
    [M_LEASE_GRANT] = "/etcdserverpb.Lease/LeaseGrant",
    [M_LEASE_REVOKE] = "/etcdserverpb.Lease/LeaseRevoke",
    [M_LEASE_KEEPALIVE] = "/etcdserverpb.Lease/LeaseKeepAlive",
    [M_LEASE_TTL] = "/etcdserverpb.Lease/LeaseTimeToLive",
    [M_LEASE_LEASES] = "/etcdserverpb.Lease/LeaseLeases",
    [M_STATUS] = "/etcdserverpb.Maintenance/Status",
    [M_SNAPSHOT] = "/etcdserverpb.Maintenance/Snapshot",
    [M_HASHKV] = "/etcdserverpb.Maintenance/HashKV",
    [M_MEMBER_LIST] = "/etcdserverpb.Cluster/MemberList",
    [M_ALARM] = "/etcdserverpb.Maintenance/Alarm",
};

/* gRPC core logs to stderr by itself: route it through our logger, errors only at info. */
static void grpc_log_fn(gpr_log_func_args *args)
{
    dr_log(args->severity == GPR_LOG_SEVERITY_ERROR ? DR_LOG_DEBUG : DR_LOG_DEBUG, "grpc: %s",
           args->message);
}

static pthread_once_t grpc_once = PTHREAD_ONCE_INIT;
static void grpc_setup(void)
{
    gpr_set_log_function(grpc_log_fn);
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
}

gpr_timespec etcd_deadline(int64_t ms)
{
    if (ms < 0)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

void etcd_copy_header(dr_etcd_header *dst, const Etcdserverpb__ResponseHeader *src)
{
    if (!dst)
        return;
    memset(dst, 0, sizeof *dst);
    if (!src)
        return;
    dst->cluster_id = src->cluster_id;
    dst->member_id = src->member_id;
    dst->revision = src->revision;
    dst->raft_term = src->raft_term;
}

void etcd_copy_kv(dr_etcd_kv *dst, const Mvccpb__KeyValue *src)
{
    dst->key = src->key.data;
    dst->key_len = src->key.len;
    dst->value = src->value.data;
    dst->value_len = src->value.len;
    dst->create_revision = src->create_revision;
    dst->mod_revision = src->mod_revision;
    dst->version = src->version;
    dst->lease = src->lease;
}

void dr_etcd_prefix_end(const void *prefix, size_t len, uint8_t *out, size_t *out_len)
{
    const uint8_t *p = prefix;
    size_t i = len;
    while (i > 0 && p[i - 1] == 0xff)
        i--;
    if (i == 0) {
        out[0] = 0;
        *out_len = 1;
        return;
    }
    memcpy(out, p, i);
    out[i - 1]++;
    *out_len = i;
}

/* ---- connection ---- */

static chan *chan_new(dr_etcd *e, size_t idx)
{
    chan *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    /* a bounded receive size (DR_ETCD_MAX_RECV_DEFAULT explains the figure: a broken or hostile
     * server must not make us allocate what it likes); sends unbounded (etcd bounds requests);
     * keepalive to notice a dead peer on an idle watch; a short reconnect backoff so a restarted
     * etcd is found again quickly; a fixed flow-control window per stream (dr_etcd_opts
     * stream_window) instead of BDP probing, which let a Snapshot stream buffer up to ~70 MiB
     * ahead of a slower consumer (memory must not depend on the database size) */
    const struct {
        const char *key;
        int value;
    } opts[] = {
        {GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, e->max_recv},
        {GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, -1},
        {GRPC_ARG_KEEPALIVE_TIME_MS, 10000},
        {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000},
        {GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200},
        {GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000},
        {GRPC_ARG_HTTP2_BDP_PROBE, 0},
        {GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, e->window},
    };
    enum { NOPTS = sizeof opts / sizeof opts[0] };
    grpc_arg args[NOPTS];
    for (size_t i = 0; i < NOPTS; i++)
        args[i] = (grpc_arg){
            .type = GRPC_ARG_INTEGER, .key = (char *)opts[i].key, .value.integer = opts[i].value};
    grpc_channel_args ca = {.num_args = NOPTS, .args = args};
    grpc_channel_credentials *creds;
    if (e->eps_tls[idx]) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = e->key_pem, .cert_chain = e->cert_pem};
        creds = grpc_ssl_credentials_create(e->ca_pem, e->cert_pem ? &pair : NULL, NULL, NULL);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    c->ch = grpc_channel_create(e->eps[idx], creds, &ca);
    grpc_channel_credentials_release(creds);
    for (int m = 0; m < M_COUNT; m++)
        c->methods[m] = grpc_channel_register_call(c->ch, method_paths[m], NULL, NULL);
    return c;
}

void etcd_current_method(dr_etcd *e, int m, grpc_channel **ch, void **method)
{
    pthread_mutex_lock(&e->mu);
    *ch = e->ch->ch;
    *method = e->ch->methods[m];
    pthread_mutex_unlock(&e->mu);
}

const char *dr_etcd_endpoint(const dr_etcd *e)
{
    return e->eps[e->cur];
}

static int parse_endpoints(dr_etcd *e, const char *list)
{
    if (!list || !*list)
        return dr_error_set(DR_EUSAGE, "no etcd endpoints given");
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    e->eps = calloc(n, sizeof *e->eps);
    e->eps_tls = calloc(n, sizeof *e->eps_tls);
    if (!e->eps || !e->eps_tls)
        return dr_error_set(DR_ENOMEM, "out of memory");
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char url[512];
        if (len == 0 || len >= sizeof url)
            return dr_error_set(DR_EUSAGE, "bad etcd endpoint list '%s'", list);
        memcpy(url, p, len);
        url[len] = 0;
        const char *hostport;
        int tls;
        if (strncmp(url, "unix://", 7) == 0) {
            /* a unix socket by absolute path (drd's throw-away etcd); gRPC's target "unix:/path" */
            if (url[7] != '/' || !url[8])
                return dr_error_set(DR_EUSAGE,
                                    "bad etcd endpoint '%s': expected unix:///absolute/path", url);
            if (!(e->eps[e->n_eps] = malloc(len)))
                return dr_error_set(DR_ENOMEM, "out of memory");
            snprintf(e->eps[e->n_eps], len, "unix:%s", url + 7);
            e->eps_tls[e->n_eps++] = 0;
            p += len;
            if (*p == ',')
                p++;
            continue;
        }
        if (strncmp(url, "http://", 7) == 0) {
            hostport = url + 7;
            tls = 0;
        } else if (strncmp(url, "https://", 8) == 0) {
            hostport = url + 8;
            tls = 1;
        } else {
            return dr_error_set(DR_EUSAGE,
                                "bad etcd endpoint '%s': expected http://host:port, "
                                "https://host:port or unix:///path",
                                url);
        }
        size_t hl = strcspn(hostport, "/");
        const char *colon = memchr(hostport, ':', hl);
        if (hl == 0 || !colon || colon == hostport || colon + 1 == hostport + hl)
            return dr_error_set(DR_EUSAGE, "bad etcd endpoint '%s': expected host:port", url);
        e->eps[e->n_eps] = strndup(hostport, hl);
        e->eps_tls[e->n_eps] = tls;
        if (!e->eps[e->n_eps])
            return dr_error_set(DR_ENOMEM, "out of memory");
        e->n_eps++;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int read_pem(const char *path, const char *what, char **out)
{
    if (!path)
        return 0;
    int rc = dr_fs_read_all(path, 1 << 20, out, NULL);
    if (rc < 0)
        return dr_error_set(DR_EUSAGE, "cannot read %s file '%s': %s", what, path, dr_error_msg());
    return 0;
}

/* Status on the current channel with a short deadline: is the endpoint alive? */
static int probe(dr_etcd *e)
{
    dr_etcd_status st;
    return dr_etcd_status_get(e, &st);
}

static int connect_from(dr_etcd *e, size_t start)
{
    int rc = DR_EUNAVAILABLE;
    char first_err[1024] = "";
    for (size_t k = 0; k < e->n_eps; k++) {
        size_t idx = (start + k) % e->n_eps;
        chan *c = chan_new(e, idx);
        if (!c)
            return dr_error_set(DR_ENOMEM, "out of memory");
        pthread_mutex_lock(&e->mu);
        c->next = e->ch;
        e->ch = c;
        e->cur = idx;
        pthread_mutex_unlock(&e->mu);
        rc = probe(e);
        if (rc == 0)
            return 0;
        if (!first_err[0])
            snprintf(first_err, sizeof first_err, "%s", dr_error_msg());
        dr_debug("etcd endpoint %s failed: %s", e->eps[idx], dr_error_msg());
    }
    if (e->n_eps > 1)
        return dr_error_set(rc, "no etcd endpoint reachable (%zu tried); first: %s", e->n_eps,
                            first_err);
    return dr_error_set(rc, "%s", first_err);
}

int dr_etcd_open(dr_etcd **out, const dr_etcd_opts *o)
{
    int rc = 0;
    pthread_once(&grpc_once, grpc_setup);
    dr_etcd *e = calloc(1, sizeof *e);
    if (!e)
        return dr_error_set(DR_ENOMEM, "out of memory");
    pthread_mutex_init(&e->mu, NULL);
    grpc_init();
    e->pluck = grpc_completion_queue_create_for_pluck(NULL);
    e->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    if (o->max_recv_bytes &&
        (o->max_recv_bytes < DR_ETCD_MAX_RECV_MIN || o->max_recv_bytes > DR_ETCD_MAX_RECV_MAX)) {
        rc = dr_error_set(DR_EUSAGE, "etcd receive limit %lld bytes: want %d to %d",
                          (long long)o->max_recv_bytes, DR_ETCD_MAX_RECV_MIN, DR_ETCD_MAX_RECV_MAX);
        goto out;
    }
    e->max_recv = o->max_recv_bytes ? (int)o->max_recv_bytes : DR_ETCD_MAX_RECV_DEFAULT;
    e->window = o->stream_window > 0 && o->stream_window <= INT32_MAX
                    ? (int)o->stream_window
                    : DR_ETCD_STREAM_WINDOW_DEFAULT;
    if ((rc = parse_endpoints(e, o->endpoints)) < 0)
        goto out;
    if (o->key && !o->cert) {
        rc = dr_error_set(DR_EUSAGE, "a client key was given without a client certificate");
        goto out;
    }
    if (o->cert && !o->key) {
        rc = dr_error_set(DR_EUSAGE, "a client certificate was given without its key");
        goto out;
    }
    if ((rc = read_pem(o->cacert, "CA", &e->ca_pem)) < 0 ||
        (rc = read_pem(o->cert, "certificate", &e->cert_pem)) < 0)
        goto out;
    /* the private key is a secret file: refused when others may read it or another user owns it */
    if (o->key &&
        (rc = dr_fs_read_secret(o->key, "etcd client key", 1 << 20, &e->key_pem, &e->key_len)) < 0)
        goto out;
    rc = connect_from(e, 0);
out:
    if (rc < 0) {
        dr_etcd_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

int dr_etcd_failover(dr_etcd *e)
{
    return connect_from(e, (e->cur + 1) % e->n_eps);
}

void dr_etcd_close(dr_etcd *e)
{
    if (!e)
        return;
    for (chan *c = e->ch, *n; c; c = n) {
        n = c->next;
        grpc_channel_destroy(c->ch);
        free(c);
    }
    if (e->pluck) {
        grpc_completion_queue_shutdown(e->pluck);
        grpc_completion_queue_destroy(e->pluck);
    }
    for (size_t i = 0; i < e->n_eps; i++)
        free(e->eps[i]);
    free(e->eps);
    free(e->eps_tls);
    dr_secure_zero(e->key_pem, e->key_len); /* key material: wipe before free */
    free(e->ca_pem);
    free(e->cert_pem);
    free(e->key_pem);
    pthread_mutex_destroy(&e->mu);
    free(e);
    grpc_shutdown();
}

/* ---- errors ---- */

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

static void details_str(grpc_slice details, char *msg, size_t cap)
{
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= cap)
        n = cap - 1;
    memcpy(msg, GRPC_SLICE_START_PTR(details), n);
    msg[n] = 0;
}

/* RESOURCE_EXHAUSTED comes from three places, told apart by their texts: gRPC core here refusing
 * an answer over GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH ("Received message larger than max (N vs.
 * LIMIT)"), etcd's Go gRPC server refusing our request over its --max-request-bytes + 512 KiB
 * ("grpc: received message larger than max (N vs. LIMIT)"), and etcd itself ("too many
 * requests", "database space exceeded"). */
static int over_limit(grpc_status_code st, grpc_slice details)
{
    char msg[512];
    details_str(details, msg, sizeof msg);
    return st == GRPC_STATUS_RESOURCE_EXHAUSTED &&
           contains(msg, "Received message larger than max");
}

/* N of "... larger than max (N vs. LIMIT)", 0 if absent */
static unsigned long long over_size(const char *msg)
{
    const char *p = strstr(msg, "max (");
    unsigned long long n = 0;
    if (!p || sscanf(p, "max (%llu", &n) != 1)
        return 0;
    return n;
}

int etcd_status_rc(dr_etcd *e, const char *op, grpc_status_code st, grpc_slice details)
{
    char msg[512];
    details_str(details, msg, sizeof msg);
    const char *ep = e->eps[e->cur];
    int code;
    switch (st) {
    case GRPC_STATUS_OK:
        return 0;
    case GRPC_STATUS_UNAVAILABLE:
        if (contains(msg, "SSL") || contains(msg, "ssl") || contains(msg, "TLS") ||
            contains(msg, "certificate") || contains(msg, "handshake"))
            return dr_error_set(DR_ETLS, "etcd %s: %s: TLS handshake failed (%s)", ep, op, msg);
        if (e->eps_tls[e->cur] && !contains(msg, "refused") && !contains(msg, "No route"))
            /* a server that wants a client certificate just closes the connection */
            return dr_error_set(DR_ETLS,
                                "etcd %s: %s: the TLS connection was closed (%s); check the CA, "
                                "client certificate and key",
                                ep, op, msg);
        return dr_error_set(DR_EUNAVAILABLE, "etcd %s: %s: unreachable (%s)", ep, op, msg);
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        return dr_error_set(DR_ETIMEOUT, "etcd %s: %s: deadline exceeded", ep, op);
    case GRPC_STATUS_OUT_OF_RANGE:
        code = contains(msg, "compacted") ? DR_ECOMPACTED : DR_EINVAL;
        return dr_error_set(code, "etcd %s: %s: %s", ep, op, msg);
    case GRPC_STATUS_INVALID_ARGUMENT:
        if (contains(msg, "too many operations"))
            return dr_error_set(DR_ETOOMANYOPS, "etcd %s: %s: %s", ep, op, msg);
        return dr_error_set(DR_EINVAL, "etcd %s: %s: %s", ep, op, msg);
    case GRPC_STATUS_UNAUTHENTICATED:
    case GRPC_STATUS_PERMISSION_DENIED:
        return dr_error_set(DR_EAUTH, "etcd %s: %s: %s", ep, op, msg);
    case GRPC_STATUS_NOT_FOUND:
        return dr_error_set(DR_ENOTFOUND, "etcd %s: %s: %s", ep, op, msg);
    case GRPC_STATUS_DATA_LOSS:
        /* etcd's answer to every write while a CORRUPT alarm is active: drd's fence (or a real
         * corruption found by etcd's own checks; `drd fence status` tells them apart only by
         * who raised it, so the message says both) */
        if (contains(msg, "corrupt"))
            return dr_error_set(DR_EFENCED,
                                "etcd %s: %s: %s (the cluster is fenced: a CORRUPT alarm is "
                                "active; see drd fence status)",
                                ep, op, msg);
        break;
    case GRPC_STATUS_CANCELLED:
        return dr_error_set(DR_EINTR, "etcd %s: %s: cancelled", ep, op);
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        if (over_limit(st, details))
            /* DR_EUSAGE: the limit is configuration, and retrying cannot help (a replication
             * loop must stop rather than reconnect forever) */
            return dr_error_set(DR_EUSAGE,
                                "etcd %s: %s: a response of %llu bytes is over the receive limit "
                                "of %d bytes (raise it with --etcd-max-recv-bytes)",
                                ep, op, over_size(msg), e->max_recv);
        if (contains(msg, "received message larger than max"))
            return dr_error_set(DR_EINVAL,
                                "etcd %s: %s: the server refused a request of %llu bytes (over "
                                "its --max-request-bytes)",
                                ep, op, over_size(msg));
        break; /* etcd's own answers ("too many requests", "database space exceeded") */
    default:
        break;
    }
    return dr_error_set(DR_EGENERIC, "etcd %s: %s: grpc status %d: %s", ep, op, (int)st, msg);
}

grpc_byte_buffer *etcd_pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

int etcd_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb))
        return dr_error_set(DR_EPROTO, "etcd: cannot read a response");
    grpc_slice all = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    *out = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    if (!*out)
        return dr_error_set(DR_EPROTO, "etcd: cannot decode a %s", d->short_name);
    return 0;
}

static int unary_once(dr_etcd *e, int m, const char *op, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp, int *big)
{
    int rc = 0;
    grpc_channel *ch;
    void *method;
    etcd_current_method(e, m, &ch, &method);
    grpc_call *call = grpc_channel_create_registered_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, e->pluck, method, etcd_deadline(e->timeout_ms), NULL);
    grpc_byte_buffer *send = etcd_pack(req), *recv = NULL;
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_status_code status = GRPC_STATUS_OK;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    void *tag = &ops;
    grpc_call_error ce = grpc_call_start_batch(call, ops, 6, tag, NULL);
    if (ce != GRPC_CALL_OK) {
        rc = dr_error_set(DR_EGENERIC, "etcd %s: %s: cannot start call (%d)", e->eps[e->cur], op,
                          (int)ce);
        goto out;
    }
    /* the call has a deadline, so the batch always completes */
    grpc_completion_queue_pluck(e->pluck, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (status != GRPC_STATUS_OK) {
        rc = etcd_status_rc(e, op, status, details);
        if (big)
            *big = over_limit(status, details);
        goto out;
    }
    if (!recv) {
        rc = dr_error_set(DR_EPROTO, "etcd %s: %s: empty response", e->eps[e->cur], op);
        goto out;
    }
    rc = etcd_unpack(recv, rd, resp);
out:
    grpc_byte_buffer_destroy(send);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
    grpc_slice_unref(details);
    grpc_call_unref(call);
    return rc;
}

static int is_read(int m)
{
    return m == M_RANGE || m == M_STATUS || m == M_HASHKV || m == M_MEMBER_LIST ||
           m == M_LEASE_TTL || m == M_LEASE_LEASES;
}

int etcd_unary_sized(dr_etcd *e, int m, const char *op, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp, int *big)
{
    if (big)
        *big = 0;
    int rc = unary_once(e, m, op, req, rd, resp, big);
    /* reads fail over to the next endpoint; writes never retry here (see etcd.h) */
    if (rc == DR_EUNAVAILABLE && is_read(m) && m != M_STATUS && e->n_eps > 1) {
        if (dr_etcd_failover(e) == 0)
            rc = unary_once(e, m, op, req, rd, resp, big);
    }
    return rc;
}

int etcd_unary(dr_etcd *e, int m, const char *op, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp)
{
    return etcd_unary_sized(e, m, op, req, rd, resp, NULL);
}

/* ---- KV ---- */

int dr_etcd_range(dr_etcd *e, const dr_etcd_range_req *q, dr_etcd_range_res *res)
{
    memset(res, 0, sizeof *res);
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key.data = (uint8_t *)q->key;
    req.key.len = q->key_len;
    if (q->range_end) {
        req.range_end.data = (uint8_t *)q->range_end;
        req.range_end.len = q->range_end_len;
    }
    req.limit = q->limit;
    req.revision = q->revision;
    req.keys_only = q->keys_only;
    req.count_only = q->count_only;
    req.serializable = q->serializable;
    pthread_mutex_lock(&e->mu);
    if (req.limit > 0 && e->range_cap > 0 && e->range_cap < req.limit)
        req.limit = e->range_cap;
    pthread_mutex_unlock(&e->mu);
    Etcdserverpb__RangeResponse *r = NULL;
    int rc, big;
    /* a page over the receive limit: half as many keys, down to one (etcd.h) */
    while ((rc = etcd_unary_sized(e, M_RANGE, "Range", &req.base,
                                  &etcdserverpb__range_response__descriptor,
                                  (ProtobufCMessage **)&r, &big)) < 0 &&
           big && req.limit > 1) {
        req.limit /= 2;
        dr_debug("etcd %s: Range: page over the receive limit, asking for %lld keys",
                 e->eps[e->cur], (long long)req.limit);
        pthread_mutex_lock(&e->mu);
        if (e->range_cap == 0 || req.limit < e->range_cap)
            e->range_cap = req.limit;
        pthread_mutex_unlock(&e->mu);
    }
    if (rc < 0)
        return rc;
    etcd_copy_header(&res->header, r->header);
    res->more = r->more;
    res->count = r->count;
    res->n_kvs = r->n_kvs;
    res->priv = r;
    if (r->n_kvs) {
        res->kvs = calloc(r->n_kvs, sizeof *res->kvs);
        if (!res->kvs) {
            dr_etcd_range_res_free(res);
            return dr_error_set(DR_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < r->n_kvs; i++)
            etcd_copy_kv(&res->kvs[i], r->kvs[i]);
    }
    return 0;
}

void dr_etcd_range_res_free(dr_etcd_range_res *res)
{
    if (!res)
        return;
    free(res->kvs);
    if (res->priv)
        protobuf_c_message_free_unpacked(res->priv, NULL);
    memset(res, 0, sizeof *res);
}

int dr_etcd_count_all(dr_etcd *e, int64_t rev, int64_t *n)
{
    uint8_t all = 0;
    dr_etcd_range_req req = {.key = &all,
                             .key_len = 1,
                             .range_end = &all,
                             .range_end_len = 1,
                             .revision = rev,
                             .count_only = 1};
    dr_etcd_range_res res;
    int rc = dr_etcd_range(e, &req, &res);
    if (rc == 0) {
        *n = res.count;
        dr_etcd_range_res_free(&res);
    }
    return rc;
}

int dr_etcd_put(dr_etcd *e, const void *key, size_t klen, const void *val, size_t vlen,
                int64_t lease, dr_etcd_header *hdr)
{
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){klen, (uint8_t *)key};
    req.value = (ProtobufCBinaryData){vlen, (uint8_t *)val};
    req.lease = lease;
    Etcdserverpb__PutResponse *r = NULL;
    int rc = etcd_unary(e, M_PUT, "Put", &req.base, &etcdserverpb__put_response__descriptor,
                        (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    etcd_copy_header(hdr, r->header);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

int dr_etcd_delete(dr_etcd *e, const void *key, size_t klen, const void *range_end, size_t elen,
                   int64_t *deleted, dr_etcd_header *hdr)
{
    Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){klen, (uint8_t *)key};
    if (range_end)
        req.range_end = (ProtobufCBinaryData){elen, (uint8_t *)range_end};
    Etcdserverpb__DeleteRangeResponse *r = NULL;
    int rc = etcd_unary(e, M_DELETE, "DeleteRange", &req.base,
                        &etcdserverpb__delete_range_response__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    etcd_copy_header(hdr, r->header);
    if (deleted)
        *deleted = r->deleted;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

int dr_etcd_compact(dr_etcd *e, int64_t rev, int physical)
{
    Etcdserverpb__CompactionRequest req = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    req.revision = rev;
    req.physical = physical;
    ProtobufCMessage *r = NULL;
    int rc = etcd_unary(e, M_COMPACT, "Compact", &req.base,
                        &etcdserverpb__compaction_response__descriptor, &r);
    if (rc == 0)
        protobuf_c_message_free_unpacked(r, NULL);
    return rc;
}

/* ---- leases ---- */

int dr_etcd_lease_grant(dr_etcd *e, int64_t id, int64_t ttl, int64_t *granted_id)
{
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.id = id;
    req.ttl = ttl;
    Etcdserverpb__LeaseGrantResponse *r = NULL;
    int rc = etcd_unary(e, M_LEASE_GRANT, "LeaseGrant", &req.base,
                        &etcdserverpb__lease_grant_response__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    if (r->error && r->error[0])
        rc = dr_error_set(DR_EINVAL, "etcd %s: LeaseGrant: %s", e->eps[e->cur], r->error);
    else if (granted_id)
        *granted_id = r->id;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int dr_etcd_lease_revoke(dr_etcd *e, int64_t id)
{
    Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    req.id = id;
    ProtobufCMessage *r = NULL;
    int rc = etcd_unary(e, M_LEASE_REVOKE, "LeaseRevoke", &req.base,
                        &etcdserverpb__lease_revoke_response__descriptor, &r);
    if (rc == 0)
        protobuf_c_message_free_unpacked(r, NULL);
    return rc;
}

int dr_etcd_lease_ttl(dr_etcd *e, int64_t id, int64_t *ttl, int64_t *granted_ttl, int64_t *nkeys)
{
    Etcdserverpb__LeaseTimeToLiveRequest req = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    req.id = id;
    req.keys = nkeys != NULL;
    Etcdserverpb__LeaseTimeToLiveResponse *r = NULL;
    int rc =
        etcd_unary(e, M_LEASE_TTL, "LeaseTimeToLive", &req.base,
                   &etcdserverpb__lease_time_to_live_response__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    if (r->ttl < 0)
        rc = dr_error_set(DR_ENOTFOUND, "lease %llx not found", (unsigned long long)id);
    if (ttl)
        *ttl = r->ttl;
    if (granted_ttl)
        *granted_ttl = r->grantedttl;
    if (nkeys)
        *nkeys = (int64_t)r->n_keys;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int dr_etcd_lease_list(dr_etcd *e, int64_t **ids, size_t *n)
{
    Etcdserverpb__LeaseLeasesRequest req = ETCDSERVERPB__LEASE_LEASES_REQUEST__INIT;
    Etcdserverpb__LeaseLeasesResponse *r = NULL;
    int rc = etcd_unary(e, M_LEASE_LEASES, "LeaseLeases", &req.base,
                        &etcdserverpb__lease_leases_response__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    *ids = calloc(r->n_leases + 1, sizeof **ids);
    if (!*ids) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < r->n_leases; i++)
            (*ids)[i] = r->leases[i]->id;
        *n = r->n_leases;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

int dr_etcd_lease_keepalive(dr_etcd *e, int64_t id, int64_t *ttl)
{
    /* KeepAlive is a bidi stream; one request + half-close gets exactly one answer. */
    Etcdserverpb__LeaseKeepAliveRequest req = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    req.id = id;
    Etcdserverpb__LeaseKeepAliveResponse *r = NULL;
    int rc =
        etcd_unary(e, M_LEASE_KEEPALIVE, "LeaseKeepAlive", &req.base,
                   &etcdserverpb__lease_keep_alive_response__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    if (r->ttl <= 0)
        rc = dr_error_set(DR_ENOTFOUND, "lease %llx not found", (unsigned long long)id);
    if (ttl)
        *ttl = r->ttl;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

/* ---- maintenance ---- */

int dr_etcd_status_get(dr_etcd *e, dr_etcd_status *st)
{
    memset(st, 0, sizeof *st);
    Etcdserverpb__StatusRequest req = ETCDSERVERPB__STATUS_REQUEST__INIT;
    Etcdserverpb__StatusResponse *r = NULL;
    int rc = etcd_unary(e, M_STATUS, "Status", &req.base,
                        &etcdserverpb__status_response__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    etcd_copy_header(&st->header, r->header);
    snprintf(st->version, sizeof st->version, "%s", r->version ? r->version : "");
    st->db_size = r->dbsize;
    st->leader = r->leader;
    st->raft_index = r->raftindex;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

int dr_etcd_hashkv(dr_etcd *e, int64_t rev, uint32_t *hash, int64_t *compact_rev,
                   dr_etcd_header *hdr)
{
    Etcdserverpb__HashKVRequest req = ETCDSERVERPB__HASH_KVREQUEST__INIT;
    req.revision = rev;
    Etcdserverpb__HashKVResponse *r = NULL;
    int rc = etcd_unary(e, M_HASHKV, "HashKV", &req.base,
                        &etcdserverpb__hash_kvresponse__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    *hash = r->hash;
    if (compact_rev)
        *compact_rev = r->compact_revision;
    etcd_copy_header(hdr, r->header);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

int dr_etcd_member_list(dr_etcd *e, dr_etcd_member **members, size_t *n, dr_etcd_header *hdr)
{
    Etcdserverpb__MemberListRequest req = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
    Etcdserverpb__MemberListResponse *r = NULL;
    int rc = etcd_unary(e, M_MEMBER_LIST, "MemberList", &req.base,
                        &etcdserverpb__member_list_response__descriptor, (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    etcd_copy_header(hdr, r->header);
    *members = calloc(r->n_members + 1, sizeof **members);
    if (!*members) {
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->n_members; i++) {
        Etcdserverpb__Member *m = r->members[i];
        dr_etcd_member *d = &(*members)[i];
        d->id = m->id;
        snprintf(d->name, sizeof d->name, "%s", m->name ? m->name : "");
        size_t off = 0;
        for (size_t j = 0; j < m->n_clienturls && off < sizeof d->client_urls; j++)
            off += (size_t)snprintf(d->client_urls + off, sizeof d->client_urls - off, "%s%s",
                                    j ? "," : "", m->clienturls[j]);
        off = 0;
        for (size_t j = 0; j < m->n_peerurls && off < sizeof d->peer_urls; j++)
            off += (size_t)snprintf(d->peer_urls + off, sizeof d->peer_urls - off, "%s%s",
                                    j ? "," : "", m->peerurls[j]);
    }
    *n = r->n_members;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

/* ---- alarms (the fence) ---- */

static int alarm_call(dr_etcd *e, int action, uint64_t member, dr_etcd_alarm_type type,
                      dr_etcd_alarm **out, size_t *n)
{
    Etcdserverpb__AlarmRequest req = ETCDSERVERPB__ALARM_REQUEST__INIT;
    Etcdserverpb__AlarmResponse *r = NULL;
    req.action = (Etcdserverpb__AlarmRequest__AlarmAction)action;
    req.memberid = member;
    req.alarm = (Etcdserverpb__AlarmType)type;
    int rc = etcd_unary(e, M_ALARM, "Alarm", &req.base, &etcdserverpb__alarm_response__descriptor,
                        (ProtobufCMessage **)&r);
    if (rc < 0)
        return rc;
    if (out) {
        *out = calloc(r->n_alarms + 1, sizeof **out);
        if (!*out) {
            protobuf_c_message_free_unpacked(&r->base, NULL);
            return dr_error_set(DR_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < r->n_alarms; i++) {
            (*out)[i].member_id = r->alarms[i]->memberid;
            (*out)[i].type = (dr_etcd_alarm_type)r->alarms[i]->alarm;
        }
        *n = r->n_alarms;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

int dr_etcd_alarm_list(dr_etcd *e, dr_etcd_alarm **alarms, size_t *n)
{
    return alarm_call(e, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET, 0, DR_ALARM_NONE, alarms,
                      n);
}

int dr_etcd_alarm_activate(dr_etcd *e, uint64_t member_id, dr_etcd_alarm_type type)
{
    if (type != DR_ALARM_CORRUPT && type != DR_ALARM_NOSPACE)
        return dr_error_set(DR_EUSAGE, "alarm type %d cannot be activated", (int)type);
    return alarm_call(e, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE, member_id, type, NULL,
                      NULL);
}

int dr_etcd_alarm_disarm(dr_etcd *e, dr_etcd_alarm_type type, size_t *disarmed)
{
    dr_etcd_alarm *a = NULL;
    size_t n = 0, done = 0;
    int rc = dr_etcd_alarm_list(e, &a, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (type != DR_ALARM_NONE && a[i].type != type)
            continue;
        rc = alarm_call(e, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE, a[i].member_id,
                        a[i].type, NULL, NULL);
        if (rc == 0)
            done++;
    }
    free(a);
    if (disarmed)
        *disarmed = done;
    return rc;
}

const char *dr_etcd_alarm_name(dr_etcd_alarm_type t)
{
    return t == DR_ALARM_NOSPACE ? "NOSPACE" : t == DR_ALARM_CORRUPT ? "CORRUPT" : "NONE";
}

/* Snapshot: a server stream. The last 32 bytes are sha256 of everything before them, so the
 * hash runs 32 bytes behind the sink. */
int dr_etcd_snapshot(dr_etcd *e, dr_etcd_sink sink, void *ctx, uint64_t *size, dr_etcd_header *hdr)
{
    return dr_etcd_snapshot_sized(e, NULL, sink, ctx, size, NULL, hdr);
}

/* Waits up to ms for tag on a stream's queue. On timeout the call is cancelled and the tag waited
 * for (a cancelled op always completes), so nothing is left pending: DR_ETIMEOUT. */
static int stream_wait(dr_etcd *e, grpc_completion_queue *cq, grpc_call *call, void *tag,
                       int64_t ms, const char *what)
{
    grpc_event ev = grpc_completion_queue_pluck(cq, tag, etcd_deadline(ms), NULL);
    if (ev.type != GRPC_QUEUE_TIMEOUT)
        return 0;
    grpc_call_cancel(call, NULL);
    grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return dr_error_set(DR_ETIMEOUT,
                        "etcd %s: Snapshot: %s within %lld ms (is the server stalled?)",
                        e->eps[e->cur], what, (long long)ms);
}

static int batch_failed(dr_etcd *e, grpc_call_error ce)
{
    return dr_error_set(DR_EGENERIC, "etcd %s: Snapshot: cannot start a call batch (%d)",
                        e->eps[e->cur], (int)ce);
}

int dr_etcd_snapshot_sized(dr_etcd *e, dr_etcd_size_cb on_size, dr_etcd_sink sink, void *ctx,
                           uint64_t *size, uint8_t sha256[32], dr_etcd_header *hdr)
{
    /* A stream as long as the database has no call deadline; instead every wait on it is
     * bounded by the request timeout (the first answer and each message): a stalled server
     * fails the save within about the timeout instead of hanging a CronJob. Time the sink takes
     * does not count (flow control holds the server back meanwhile). */
    int rc = 0;
    grpc_channel *ch;
    void *method;
    etcd_current_method(e, M_SNAPSHOT, &ch, &method);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call = grpc_channel_create_registered_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    Etcdserverpb__SnapshotRequest req = ETCDSERVERPB__SNAPSHOT_REQUEST__INIT;
    grpc_byte_buffer *send = etcd_pack(&req.base), *recv = NULL;
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_status_code status = GRPC_STATUS_OK;
    grpc_slice details = grpc_empty_slice();
    dr_sha256 *h = NULL, *whole = NULL;
    uint8_t tail[32];
    size_t tail_len = 0;
    uint64_t total = 0;
    int status_posted = 0;
    grpc_call_error ce;
    if ((rc = dr_sha256_new(&h)) < 0)
        goto out;
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
    if ((ce = grpc_call_start_batch(call, ops, 4, (void *)1, NULL)) != GRPC_CALL_OK) {
        rc = batch_failed(e, ce);
        goto out;
    }
    if ((rc = stream_wait(e, cq, call, (void *)1, e->timeout_ms, "no answer")) < 0)
        goto out;
    grpc_op st_op;
    memset(&st_op, 0, sizeof st_op);
    st_op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st_op.data.recv_status_on_client.trailing_metadata = &md_trail;
    st_op.data.recv_status_on_client.status = &status;
    st_op.data.recv_status_on_client.status_details = &details;
    if ((ce = grpc_call_start_batch(call, &st_op, 1, (void *)2, NULL)) != GRPC_CALL_OK) {
        rc = batch_failed(e, ce);
        goto cancel;
    }
    status_posted = 1;
    for (;;) {
        grpc_op rop;
        memset(&rop, 0, sizeof rop);
        rop.op = GRPC_OP_RECV_MESSAGE;
        rop.data.recv_message.recv_message = &recv;
        if ((ce = grpc_call_start_batch(call, &rop, 1, (void *)3, NULL)) != GRPC_CALL_OK) {
            rc = batch_failed(e, ce);
            goto cancel;
        }
        if ((rc = stream_wait(e, cq, call, (void *)3, e->timeout_ms,
                              total ? "no data" : "no data at all")) < 0) {
            if (recv)
                grpc_byte_buffer_destroy(recv);
            recv = NULL;
            goto out;
        }
        if (!recv)
            break; /* end of stream */
        Etcdserverpb__SnapshotResponse *r = NULL;
        rc = etcd_unpack(recv, &etcdserverpb__snapshot_response__descriptor,
                         (ProtobufCMessage **)&r);
        grpc_byte_buffer_destroy(recv);
        recv = NULL;
        if (rc < 0)
            goto cancel;
        if (r->header && hdr && !hdr->revision)
            etcd_copy_header(hdr, r->header);
        const uint8_t *d = r->blob.data;
        size_t n = r->blob.len;
        /* etcd sends RemainingBytes = db size - bytes sent so far, then the 32-byte trailer */
        if (on_size && total == 0)
            rc = on_size(ctx, r->remaining_bytes + n + 32);
        if (rc < 0) {
            protobuf_c_message_free_unpacked(&r->base, NULL);
            goto cancel;
        }
        total += n;
        if (n)
            rc = sink(ctx, d, n);
        /* hash everything except the last 32 bytes seen so far */
        if (rc == 0) {
            if (tail_len + n <= 32) {
                memcpy(tail + tail_len, d, n);
                tail_len += n;
            } else {
                size_t emit_tail = tail_len + n - 32; /* bytes leaving the window */
                size_t from_tail = emit_tail < tail_len ? emit_tail : tail_len;
                rc = dr_sha256_update(h, tail, from_tail);
                if (rc == 0)
                    rc = dr_sha256_update(h, d, emit_tail - from_tail);
                uint8_t nt[32];
                size_t keep_tail = tail_len - from_tail;
                memcpy(nt, tail + from_tail, keep_tail);
                memcpy(nt + keep_tail, d + (n - (32 - keep_tail)), 32 - keep_tail);
                memcpy(tail, nt, 32);
                tail_len = 32;
            }
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (rc < 0)
            goto cancel;
    }
    grpc_completion_queue_pluck(cq, (void *)2, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    status_posted = 0;
    if (status != GRPC_STATUS_OK) {
        rc = etcd_status_rc(e, "Snapshot", status, details);
        goto out;
    }
    uint8_t digest[32];
    if (sha256 && tail_len == 32 &&
        ((rc = dr_sha256_dup(h, &whole)) < 0 || (rc = dr_sha256_update(whole, tail, 32)) < 0 ||
         (rc = dr_sha256_final(whole, sha256)) < 0))
        goto out;
    if ((rc = dr_sha256_final(h, digest)) < 0)
        goto out;
    if (tail_len != 32 || memcmp(digest, tail, 32) != 0) {
        rc = dr_error_set(DR_ECHECKSUM,
                          "etcd %s: Snapshot: sha256 trailer does not match the data (%llu bytes)",
                          e->eps[e->cur], (unsigned long long)total);
        goto out;
    }
    if (size)
        *size = total;
    goto out;
cancel:
    grpc_call_cancel(call, NULL);
out:
    if (status_posted)
        grpc_completion_queue_pluck(cq, (void *)2, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    dr_sha256_free(h);
    dr_sha256_free(whole);
    grpc_byte_buffer_destroy(send);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
    grpc_slice_unref(details);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    return rc;
}
