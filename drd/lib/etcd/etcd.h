/*
 * drd etcd client: the etcd v3 API over gRPC core + protobuf-c.
 *
 * The only module that includes <grpc/...> or the generated protobuf-c headers. It translates
 * grpc_status_code and etcd's error texts into DR_E* codes in one place (status_to_rc in etcd.c).
 * It must never retry a write on its own: a Put/Txn that failed may or may not have been applied,
 * and only the caller (with its compare guards) can decide. Reads and connection setup fail over
 * across the endpoint list.
 *
 * Ownership: results are caller-owned structs filled through out-parameters and released with the
 * matching *_free; the byte pointers inside (dr_etcd_kv) borrow from that result.
 * Threads: one dr_etcd may be used from several threads for unary calls. A watch or a pipeline is
 * used by one thread at a time.
 */
#ifndef DRD_ETCD_H
#define DRD_ETCD_H

#include <stddef.h>
#include <stdint.h>

typedef struct dr_etcd dr_etcd;

/* The largest gRPC message accepted from etcd by default: 2 MiB, which is etcd's own receive
 * limit (--max-request-bytes, default 1.5 MiB, plus the 512 KiB etcd allows for gRPC overhead).
 * Nothing drd asks for legitimately needs more with a server at etcd's defaults: one key-value
 * is at most one request's size (the Put or Txn that wrote it passed that limit); Range pages
 * are halved until they fit (see dr_etcd_range); watch responses are requested fragmented, and
 * etcd cuts fragments at --max-request-bytes (one event, which is at most one kv, is never
 * cut); Snapshot messages are 32 KiB; Status, HashKV, MemberList and Txn answers are small.
 * The one unbounded answer is LeaseLeases (about 13 bytes per lease: ~160k leases fit).
 * A server with a larger --max-request-bytes needs a larger limit (--etcd-max-recv-bytes). */
#define DR_ETCD_MAX_RECV_DEFAULT (2 << 20)
#define DR_ETCD_MAX_RECV_MIN (64 << 10)
#define DR_ETCD_MAX_RECV_MAX 2147483647 /* gRPC takes an int */

typedef struct dr_etcd_opts {
    const char *endpoints;  /* "http://127.0.0.1:2379,https://host:2379" (scheme required), or
                               "unix:///abs/path" (a unix socket, drd's throw-away etcd) */
    const char *cacert;     /* PEM CA file for https endpoints (NULL: system roots) */
    const char *cert;       /* PEM client certificate (optional) */
    const char *key;        /* PEM client key (optional, with cert) */
    int64_t timeout_ms;     /* per-request deadline; 0 = 10 s */
    int64_t max_recv_bytes; /* largest response message; 0 = DR_ETCD_MAX_RECV_DEFAULT */
    int64_t stream_window;  /* bytes a stream may receive ahead of its reader (the HTTP/2 flow-
                               control window: memory held for a slow reader, and the most in
                               flight per round trip); 0 (or beyond an int) =
                               DR_ETCD_STREAM_WINDOW_DEFAULT */
} dr_etcd_opts;

/* The default stream window: 4 MiB, so that a Snapshot stream from another site (tens of ms away)
 * is not limited by round trips. A watch needs far less (DR_ETCD_WATCH_WINDOW). */
#define DR_ETCD_STREAM_WINDOW_DEFAULT (4 << 20)
#define DR_ETCD_WATCH_WINDOW (1 << 20)

/* Connects to the first reachable endpoint (checked with Status). Returns 0, DR_EUSAGE (bad URL
 * list, unreadable TLS files, receive limit outside DR_ETCD_MAX_RECV_MIN..MAX), DR_EUNAVAILABLE,
 * DR_ETLS. Caller frees with dr_etcd_close.
 * A response over the receive limit fails its call with DR_EUSAGE (a configuration to change,
 * not a failure to retry) and a message naming the limit and --etcd-max-recv-bytes; a watch
 * too: it is not a broken stream to reconnect. A request the server refuses as over its
 * --max-request-bytes is DR_EINVAL. */
int dr_etcd_open(dr_etcd **out, const dr_etcd_opts *opts);
void dr_etcd_close(dr_etcd *e);
/* The endpoint currently in use ("127.0.0.1:2379"). Borrowed. */
const char *dr_etcd_endpoint(const dr_etcd *e);
/* Move to the next reachable endpoint in the list (after a stream broke). 0 or DR_EUNAVAILABLE. */
int dr_etcd_failover(dr_etcd *e);

typedef struct dr_etcd_header {
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;
    uint64_t raft_term;
} dr_etcd_header;

typedef struct dr_etcd_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} dr_etcd_kv;

/* Range end for "every key with this prefix"; writes into out (cap >= len), sets *out_len.
 * An empty prefix (or all 0xff) gives the single byte "\0" (= all keys). */
void dr_etcd_prefix_end(const void *prefix, size_t len, uint8_t *out, size_t *out_len);

typedef struct dr_etcd_range_req {
    const void *key;
    size_t key_len;
    const void *range_end; /* NULL: the single key */
    size_t range_end_len;
    int64_t limit;    /* 0 = no limit */
    int64_t revision; /* 0 = newest */
    int keys_only;
    int count_only;
    int serializable;
} dr_etcd_range_req;

typedef struct dr_etcd_range_res {
    dr_etcd_header header;
    size_t n_kvs;
    dr_etcd_kv *kvs; /* borrowed from priv */
    int more;
    int64_t count;
    void *priv;
} dr_etcd_range_res;

/* Range. DR_ECOMPACTED when revision < compact revision; DR_EINVAL for a future revision.
 * With a limit, a page over the receive limit is asked again with half as many keys (down to
 * one), and the client remembers the smaller page for later calls: res->more with fewer than
 * limit kvs is normal, page on from the last key. */
int dr_etcd_range(dr_etcd *e, const dr_etcd_range_req *req, dr_etcd_range_res *res);
void dr_etcd_range_res_free(dr_etcd_range_res *res);
/* Number of keys in the whole keyspace at rev (0: newest): a count-only Range. */
int dr_etcd_count_all(dr_etcd *e, int64_t rev, int64_t *n);

int dr_etcd_put(dr_etcd *e, const void *key, size_t klen, const void *val, size_t vlen,
                int64_t lease, dr_etcd_header *hdr);
/* Deletes [key, range_end) (range_end NULL: the key). *deleted may be NULL. */
int dr_etcd_delete(dr_etcd *e, const void *key, size_t klen, const void *range_end, size_t elen,
                   int64_t *deleted, dr_etcd_header *hdr);
/* Compact the history up to rev (physical: wait for the compaction to finish on disk). */
int dr_etcd_compact(dr_etcd *e, int64_t rev, int physical);

/* ---- transactions ---- */
typedef struct dr_etcd_txn dr_etcd_txn;
typedef enum { DR_CMP_EQUAL = 0, DR_CMP_GREATER, DR_CMP_LESS, DR_CMP_NOT_EQUAL } dr_etcd_cmp_op;
typedef enum { DR_CMP_VERSION = 0, DR_CMP_CREATE, DR_CMP_MOD, DR_CMP_VALUE } dr_etcd_cmp_target;
typedef enum { DR_TXN_SUCCESS = 0, DR_TXN_FAILURE = 1 } dr_etcd_txn_branch;

/* A transaction under construction. Keys and values are copied in. */
int dr_etcd_txn_new(dr_etcd_txn **out);
void dr_etcd_txn_free(dr_etcd_txn *t);
/* Empty it for reuse, keeping its memory. */
void dr_etcd_txn_reset(dr_etcd_txn *t);
int dr_etcd_txn_compare(dr_etcd_txn *t, const void *key, size_t klen, dr_etcd_cmp_target target,
                        dr_etcd_cmp_op op, int64_t value);
int dr_etcd_txn_compare_value(dr_etcd_txn *t, const void *key, size_t klen, dr_etcd_cmp_op op,
                              const void *val, size_t vlen);
int dr_etcd_txn_put(dr_etcd_txn *t, dr_etcd_txn_branch br, const void *key, size_t klen,
                    const void *val, size_t vlen, int64_t lease);
int dr_etcd_txn_delete(dr_etcd_txn *t, dr_etcd_txn_branch br, const void *key, size_t klen,
                       const void *range_end, size_t elen);
/* A read of one key in a branch (its result: dr_etcd_txn_res_kv). */
int dr_etcd_txn_get(dr_etcd_txn *t, dr_etcd_txn_branch br, const void *key, size_t klen);
/* Number of write ops in the success branch. */
size_t dr_etcd_txn_nops(const dr_etcd_txn *t);
/* About the request size of t's own level: its keys and values and a little framing per op
 * (etcd refuses requests over its --max-request-bytes, default 1.5 MiB). */
size_t dr_etcd_txn_bytes(const dr_etcd_txn *t);
/* Chains: t's failure branch becomes one nested transaction, next (NULL: t's own failure ops
 * again). t does not own next; the link is read when t is sent (dr_etcd_txn_do,
 * dr_etcd_pipe_submit), so it can be changed right after. A chain is at most 64 deep. Each level
 * counts against the server's --max-txn-ops (max of its compares and ops per level, summed). */
void dr_etcd_txn_set_else(dr_etcd_txn *t, dr_etcd_txn *next);

typedef struct dr_etcd_txn_res {
    dr_etcd_header header;
    int succeeded;
    size_t n_responses;
    void *priv;
} dr_etcd_txn_res;
/* The first kv of the i-th response if it is a range response with a result; else NULL. */
const dr_etcd_kv *dr_etcd_txn_res_kv(dr_etcd_txn_res *res, size_t i, dr_etcd_kv *tmp);
/* Number of keys deleted by the i-th response if it is a delete response, else 0. */
int64_t dr_etcd_txn_res_deleted(const dr_etcd_txn_res *res, size_t i);
/* Which level of a chain (dr_etcd_txn_set_else) had its compares hold: 0 for the top, n for the
 * n-th nested transaction, -1 when none did. */
int dr_etcd_txn_res_level(const dr_etcd_txn_res *res);
void dr_etcd_txn_res_free(dr_etcd_txn_res *res);

/* Synchronous Txn. DR_ETOOMANYOPS when the server's --max-txn-ops is exceeded. */
int dr_etcd_txn_do(dr_etcd *e, const dr_etcd_txn *t, dr_etcd_txn_res *res);

/* A pipeline of transactions in flight on one connection, completed in any order. The caller
 * orders them with compare guards (see replicate/). submit serialises t at once, so t can be
 * reset and reused right after. */
typedef struct dr_etcd_pipe dr_etcd_pipe;
int dr_etcd_pipe_new(dr_etcd *e, dr_etcd_pipe **out);
/* Cancels and drains what is still in flight. */
void dr_etcd_pipe_free(dr_etcd_pipe *p);
int dr_etcd_pipe_submit(dr_etcd_pipe *p, const dr_etcd_txn *t, void *user);
size_t dr_etcd_pipe_inflight(const dr_etcd_pipe *p);
/* Waits up to timeout_ms for one completion (0: only takes one that is ready). Returns DR_ETIMEOUT
 * when none came (nothing lost), DR_ENOTFOUND when nothing is in flight, else 0 and fills *user,
 * *rc (the txn's own result code) and res (when *rc == 0; caller frees). */
int dr_etcd_pipe_next(dr_etcd_pipe *p, int64_t timeout_ms, void **user, int *rc,
                      dr_etcd_txn_res *res);

/* ---- watch ---- */
typedef struct dr_etcd_watch dr_etcd_watch;
typedef struct dr_etcd_watch_opts {
    const void *key;
    size_t key_len;
    const void *range_end;
    size_t range_end_len;
    int64_t start_revision; /* 0: from now */
    int prev_kv;
    int progress_notify;
} dr_etcd_watch_opts;

typedef enum { DR_EV_PUT = 0, DR_EV_DELETE = 1 } dr_etcd_ev_type;
typedef struct dr_etcd_event {
    dr_etcd_ev_type type;
    dr_etcd_kv kv; /* for deletes: key and mod_revision (the delete's revision) */
    int has_prev;
    dr_etcd_kv prev_kv;
} dr_etcd_event;

typedef struct dr_etcd_watch_res {
    dr_etcd_header header;
    size_t n_events;
    dr_etcd_event *events;
    int64_t compact_revision;
    void *priv;
} dr_etcd_watch_res;

/* Opens the stream and creates the watch; waits for the "created" answer. DR_ECOMPACTED when
 * that answer already says start_revision is compacted (*compact_rev set when not NULL); etcd 3.4
 * usually says it in the next response instead (see dr_etcd_watch_next). */
int dr_etcd_watch_open(dr_etcd *e, const dr_etcd_watch_opts *o, dr_etcd_watch **out,
                       int64_t *compact_rev);
/* Next response with events or progress (header.revision). DR_ETIMEOUT: nothing within
 * timeout_ms (the stream stays usable); DR_ECOMPACTED (res->compact_revision set: etcd answers
 * "created" first and cancels a watch below the compact revision in a later response);
 * DR_EUNAVAILABLE when the stream broke. */
int dr_etcd_watch_next(dr_etcd_watch *w, int64_t timeout_ms, dr_etcd_watch_res *res);
/* Ask the server for a progress notification (answered as a response with no events). */
int dr_etcd_watch_request_progress(dr_etcd_watch *w);
void dr_etcd_watch_res_free(dr_etcd_watch_res *res);
void dr_etcd_watch_close(dr_etcd_watch *w);

/* ---- leases ---- */
/* Grant with a chosen id (0: server picks); *granted_id may be NULL. */
int dr_etcd_lease_grant(dr_etcd *e, int64_t id, int64_t ttl, int64_t *granted_id);
/* DR_ENOTFOUND when the lease does not exist. */
int dr_etcd_lease_revoke(dr_etcd *e, int64_t id);
/* Remaining ttl, granted ttl and (when nkeys is not NULL) the number of attached keys;
 * DR_ENOTFOUND when the lease does not exist. */
int dr_etcd_lease_ttl(dr_etcd *e, int64_t id, int64_t *ttl, int64_t *granted_ttl, int64_t *nkeys);
/* All lease ids; caller frees *ids with free(). */
int dr_etcd_lease_list(dr_etcd *e, int64_t **ids, size_t *n);
/* One KeepAlive round trip on a KeepAlive stream; *ttl gets the new ttl (DR_ENOTFOUND if gone). */
int dr_etcd_lease_keepalive(dr_etcd *e, int64_t id, int64_t *ttl);

/* ---- maintenance and cluster ---- */
typedef struct dr_etcd_status {
    dr_etcd_header header;
    char version[32];
    int64_t db_size;
    uint64_t leader;
    uint64_t raft_index;
} dr_etcd_status;
int dr_etcd_status_get(dr_etcd *e, dr_etcd_status *st);
/* HashKV at rev (0: newest); *compact_rev may be NULL. */
int dr_etcd_hashkv(dr_etcd *e, int64_t rev, uint32_t *hash, int64_t *compact_rev,
                   dr_etcd_header *hdr);

/* Snapshot stream: every byte etcd sends, trailer included, goes to sink in order. Returns 0 only
 * when the sha256 trailer matched (DR_ECHECKSUM otherwise); a sink error (<0) aborts the stream
 * and is returned; DR_ETIMEOUT when the server answers nothing, or sends nothing more, for the
 * request timeout (dr_etcd_opts.timeout_ms). *size gets the total bytes. */
typedef int (*dr_etcd_sink)(void *ctx, const void *data, size_t len);
int dr_etcd_snapshot(dr_etcd *e, dr_etcd_sink sink, void *ctx, uint64_t *size, dr_etcd_header *hdr);
/* The same, calling on_size(ctx, total) once before the first byte with the number of bytes the
 * stream will carry, trailer included (from etcd's first RemainingBytes). sha256 (may be NULL)
 * gets the sha256 of every byte of the stream, trailer included (of the file `etcdctl snapshot
 * save` writes), from the same pass that checks the trailer. */
typedef int (*dr_etcd_size_cb)(void *ctx, uint64_t total);
int dr_etcd_snapshot_sized(dr_etcd *e, dr_etcd_size_cb on_size, dr_etcd_sink sink, void *ctx,
                           uint64_t *size, uint8_t sha256[32], dr_etcd_header *hdr);

typedef struct dr_etcd_member {
    uint64_t id;
    char name[128];
    char client_urls[512]; /* comma separated */
    char peer_urls[512];
} dr_etcd_member;
/* Caller frees *members with free(). */
int dr_etcd_member_list(dr_etcd *e, dr_etcd_member **members, size_t *n, dr_etcd_header *hdr);

/* ---- alarms: the fence ----
 * etcd's own Alarm API (Maintenance/Alarm). drd fences a cluster by activating CORRUPT for member
 * 0 (the whole cluster): measured on 3.4.23, etcd then refuses every write through the KV and
 * Lease APIs (put, delete, txn of any kind, compaction, lease grant and revoke: DR_EFENCED) while
 * reads keep answering; the alarm is stored in the backend, so it survives a restart of the
 * members, and disarming it lifts it. NOSPACE is weaker (deletes, delete-only txns, compaction
 * and lease revokes still apply) and is never used as a fence. See docs/runbooks.md, "The fence".
 */
typedef enum { DR_ALARM_NONE = 0, DR_ALARM_NOSPACE = 1, DR_ALARM_CORRUPT = 2 } dr_etcd_alarm_type;
typedef struct dr_etcd_alarm {
    uint64_t member_id; /* 0: raised for the whole cluster */
    dr_etcd_alarm_type type;
} dr_etcd_alarm;
/* The active alarms; caller frees *alarms with free() (never NULL on success). */
int dr_etcd_alarm_list(dr_etcd *e, dr_etcd_alarm **alarms, size_t *n);
/* Activates an alarm of type for member_id (0: the whole cluster). A write, not retried. */
int dr_etcd_alarm_activate(dr_etcd *e, uint64_t member_id, dr_etcd_alarm_type type);
/* Deactivates every active alarm of type (DR_ALARM_NONE: of any type); *disarmed (may be NULL)
 * gets how many. */
int dr_etcd_alarm_disarm(dr_etcd *e, dr_etcd_alarm_type type, size_t *disarmed);
/* "CORRUPT", "NOSPACE", "NONE". */
const char *dr_etcd_alarm_name(dr_etcd_alarm_type t);

#endif
