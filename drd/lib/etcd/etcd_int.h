/*
 * Private to drd/lib/etcd: the connection, the method table and the helpers shared by etcd.c,
 * txn.c and watch.c. Nothing outside this folder includes it.
 */
#ifndef DRD_ETCD_INT_H
#define DRD_ETCD_INT_H

#include "drd/core/core.h"
#include "drd/lib/etcd/etcd.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <pthread.h>

#include "etcd/etcdserver/etcdserverpb/rpc.pb-c.h"

enum {
    M_RANGE,
    M_PUT,
    M_DELETE,
    M_TXN,
    M_COMPACT,
    M_WATCH,
    M_LEASE_GRANT,
    M_LEASE_REVOKE,
    M_LEASE_KEEPALIVE,
    M_LEASE_TTL,
    M_LEASE_LEASES,
    M_STATUS,
    M_SNAPSHOT,
    M_HASHKV,
    M_MEMBER_LIST,
    M_ALARM,
    M_COUNT
};

/* One gRPC channel to one endpoint. Channels replaced by a failover are kept until close, so a
 * call started on them by another thread stays valid. */
typedef struct chan {
    grpc_channel *ch;
    void *methods[M_COUNT];
    struct chan *next;
} chan;

struct dr_etcd {
    char **eps;   /* "host:port" */
    int *eps_tls; /* 1 for https */
    size_t n_eps;
    size_t cur; /* index in eps */
    chan *ch;   /* current channel; older ones follow in ->next */
    pthread_mutex_t mu;
    grpc_completion_queue *pluck;
    int64_t timeout_ms;
    int max_recv;      /* GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH */
    int window;        /* GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES */
    int64_t range_cap; /* largest Range page that fitted after a shrink (under mu); 0 = none */
    char *ca_pem, *cert_pem, *key_pem;
    size_t key_len; /* of key_pem, wiped on close */
};

/* The current channel, its method handle. Thread-safe. */
void etcd_current_method(dr_etcd *e, int m, grpc_channel **ch, void **method);
gpr_timespec etcd_deadline(int64_t ms);
/* Translate a finished call's status into a DR code with a message naming op and endpoint. */
int etcd_status_rc(dr_etcd *e, const char *op, grpc_status_code st, grpc_slice details);
/* protobuf message -> new byte buffer (caller destroys). NULL on OOM. */
grpc_byte_buffer *etcd_pack(const ProtobufCMessage *msg);
/* byte buffer -> unpacked message (caller frees with protobuf_c_message_free_unpacked). */
int etcd_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out);
/* Unary call with a deadline, waiting on the client's pluck queue. */
int etcd_unary(dr_etcd *e, int m, const char *op, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp);
/* The same; *over_limit = 1 when it failed because the answer was over the receive limit. */
int etcd_unary_sized(dr_etcd *e, int m, const char *op, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp,
                     int *over_limit);
void etcd_copy_header(dr_etcd_header *dst, const Etcdserverpb__ResponseHeader *src);
void etcd_copy_kv(dr_etcd_kv *dst, const Mvccpb__KeyValue *src);

#endif
