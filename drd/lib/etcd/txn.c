/*
 * Transactions: a builder over the protobuf-c TxnRequest, the synchronous Txn, and the pipeline
 * of transactions in flight on one connection.
 *
 * Pipeline states of one slot: submitted -> (batch completes) -> returned by dr_etcd_pipe_next.
 * A slot is freed only after its batch completed, so nothing gRPC may still write to is freed.
 */
#include "etcd_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct vec {
    void **v;
    size_t n, cap;
} vec;

struct dr_etcd_txn {
    vec cmp, ok, fail;
    size_t nwrites;
    size_t bytes;      /* keys and values of this level, plus a little per op for framing */
    dr_etcd_txn *next; /* the failure branch is this nested transaction */
};

enum { MAX_CHAIN = 64, OP_FRAMING = 16 /* protobuf tags, lengths, lease: roughly */ };

static int vec_push(vec *v, void *p)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 16;
        void **nv = realloc(v->v, nc * sizeof *nv);
        if (!nv)
            return dr_error_set(DR_ENOMEM, "out of memory");
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = p;
    return 0;
}

static void vec_clear(vec *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    v->n = 0;
}

int dr_etcd_txn_new(dr_etcd_txn **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : dr_error_set(DR_ENOMEM, "out of memory");
}

void dr_etcd_txn_reset(dr_etcd_txn *t)
{
    vec_clear(&t->cmp);
    vec_clear(&t->ok);
    vec_clear(&t->fail);
    t->nwrites = 0;
    t->bytes = 0;
}

void dr_etcd_txn_free(dr_etcd_txn *t)
{
    if (!t)
        return;
    dr_etcd_txn_reset(t);
    free(t->cmp.v);
    free(t->ok.v);
    free(t->fail.v);
    free(t);
}

size_t dr_etcd_txn_nops(const dr_etcd_txn *t)
{
    return t->nwrites;
}

size_t dr_etcd_txn_bytes(const dr_etcd_txn *t)
{
    return t->bytes;
}

void dr_etcd_txn_set_else(dr_etcd_txn *t, dr_etcd_txn *next)
{
    t->next = next;
}

/* One allocation holding a struct of size sz followed by copies of a and b. */
static void *blob2(size_t sz, const void *a, size_t alen, uint8_t **ac, const void *b, size_t blen,
                   uint8_t **bc)
{
    uint8_t *p = malloc(sz + alen + blen + 1);
    if (!p)
        return NULL;
    memset(p, 0, sz);
    *ac = p + sz;
    if (alen)
        memcpy(*ac, a, alen);
    if (bc) {
        *bc = p + sz + alen;
        if (blen)
            memcpy(*bc, b, blen);
    }
    return p;
}

static const Etcdserverpb__Compare__CompareResult cmp_ops[] = {
    ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL, ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER,
    ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS, ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL};

int dr_etcd_txn_compare(dr_etcd_txn *t, const void *key, size_t klen, dr_etcd_cmp_target target,
                        dr_etcd_cmp_op op, int64_t value)
{
    uint8_t *kc;
    Etcdserverpb__Compare *c = blob2(sizeof *c, key, klen, &kc, NULL, 0, NULL);
    if (!c)
        return dr_error_set(DR_ENOMEM, "out of memory");
    etcdserverpb__compare__init(c);
    c->result = cmp_ops[op];
    c->key = (ProtobufCBinaryData){klen, kc};
    switch (target) {
    case DR_CMP_VERSION:
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        c->version = value;
        break;
    case DR_CMP_CREATE:
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        c->create_revision = value;
        break;
    case DR_CMP_MOD:
    default:
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        c->mod_revision = value;
        break;
    }
    return vec_push(&t->cmp, c);
}

int dr_etcd_txn_compare_value(dr_etcd_txn *t, const void *key, size_t klen, dr_etcd_cmp_op op,
                              const void *val, size_t vlen)
{
    uint8_t *kc, *vc;
    Etcdserverpb__Compare *c = blob2(sizeof *c, key, klen, &kc, val, vlen, &vc);
    if (!c)
        return dr_error_set(DR_ENOMEM, "out of memory");
    etcdserverpb__compare__init(c);
    c->result = cmp_ops[op];
    c->key = (ProtobufCBinaryData){klen, kc};
    c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c->value = (ProtobufCBinaryData){vlen, vc};
    t->bytes += klen + vlen + OP_FRAMING;
    return vec_push(&t->cmp, c);
}

typedef struct put_op {
    Etcdserverpb__RequestOp op;
    Etcdserverpb__PutRequest put;
} put_op;
typedef struct del_op {
    Etcdserverpb__RequestOp op;
    Etcdserverpb__DeleteRangeRequest del;
} del_op;
typedef struct get_op {
    Etcdserverpb__RequestOp op;
    Etcdserverpb__RangeRequest get;
} get_op;

int dr_etcd_txn_put(dr_etcd_txn *t, dr_etcd_txn_branch br, const void *key, size_t klen,
                    const void *val, size_t vlen, int64_t lease)
{
    uint8_t *kc, *vc;
    put_op *p = blob2(sizeof *p, key, klen, &kc, val, vlen, &vc);
    if (!p)
        return dr_error_set(DR_ENOMEM, "out of memory");
    etcdserverpb__request_op__init(&p->op);
    etcdserverpb__put_request__init(&p->put);
    p->put.key = (ProtobufCBinaryData){klen, kc};
    p->put.value = (ProtobufCBinaryData){vlen, vc};
    p->put.lease = lease;
    p->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    p->op.request_put = &p->put;
    t->bytes += klen + vlen + OP_FRAMING;
    if (br == DR_TXN_SUCCESS)
        t->nwrites++;
    return vec_push(br == DR_TXN_SUCCESS ? &t->ok : &t->fail, p);
}

int dr_etcd_txn_delete(dr_etcd_txn *t, dr_etcd_txn_branch br, const void *key, size_t klen,
                       const void *range_end, size_t elen)
{
    uint8_t *kc, *ec;
    del_op *p = blob2(sizeof *p, key, klen, &kc, range_end, range_end ? elen : 0, &ec);
    if (!p)
        return dr_error_set(DR_ENOMEM, "out of memory");
    etcdserverpb__request_op__init(&p->op);
    etcdserverpb__delete_range_request__init(&p->del);
    p->del.key = (ProtobufCBinaryData){klen, kc};
    if (range_end)
        p->del.range_end = (ProtobufCBinaryData){elen, ec};
    p->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    p->op.request_delete_range = &p->del;
    t->bytes += klen + (range_end ? elen : 0) + OP_FRAMING;
    if (br == DR_TXN_SUCCESS)
        t->nwrites++;
    return vec_push(br == DR_TXN_SUCCESS ? &t->ok : &t->fail, p);
}

int dr_etcd_txn_get(dr_etcd_txn *t, dr_etcd_txn_branch br, const void *key, size_t klen)
{
    uint8_t *kc;
    get_op *p = blob2(sizeof *p, key, klen, &kc, NULL, 0, NULL);
    if (!p)
        return dr_error_set(DR_ENOMEM, "out of memory");
    etcdserverpb__request_op__init(&p->op);
    etcdserverpb__range_request__init(&p->get);
    p->get.key = (ProtobufCBinaryData){klen, kc};
    p->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    p->op.request_range = &p->get;
    return vec_push(br == DR_TXN_SUCCESS ? &t->ok : &t->fail, p);
}

/* The request structs of a chain: level i's failure branch points at level i+1. */
typedef struct chain {
    Etcdserverpb__TxnRequest req[MAX_CHAIN];
    Etcdserverpb__RequestOp op[MAX_CHAIN];
    Etcdserverpb__RequestOp *opp[MAX_CHAIN];
} chain;

static int txn_request(const dr_etcd_txn *t, chain *c)
{
    size_t n = 0;
    for (const dr_etcd_txn *l = t; l; l = l->next) {
        if (n == MAX_CHAIN)
            return dr_error_set(DR_EUSAGE, "etcd: a transaction chain deeper than %d",
                                (int)MAX_CHAIN);
        Etcdserverpb__TxnRequest *req = &c->req[n];
        etcdserverpb__txn_request__init(req);
        req->n_compare = l->cmp.n;
        req->compare = (Etcdserverpb__Compare **)l->cmp.v;
        req->n_success = l->ok.n;
        req->success = (Etcdserverpb__RequestOp **)l->ok.v;
        req->n_failure = l->fail.n;
        req->failure = (Etcdserverpb__RequestOp **)l->fail.v;
        if (n > 0) {
            Etcdserverpb__RequestOp *op = &c->op[n - 1];
            etcdserverpb__request_op__init(op);
            op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
            op->request_txn = req;
            c->opp[n - 1] = op;
            c->req[n - 1].n_failure = 1;
            c->req[n - 1].failure = &c->opp[n - 1];
        }
        n++;
    }
    return 0;
}

static void fill_res(dr_etcd_txn_res *res, Etcdserverpb__TxnResponse *r)
{
    memset(res, 0, sizeof *res);
    etcd_copy_header(&res->header, r->header);
    res->succeeded = r->succeeded;
    res->n_responses = r->n_responses;
    res->priv = r;
}

const dr_etcd_kv *dr_etcd_txn_res_kv(dr_etcd_txn_res *res, size_t i, dr_etcd_kv *tmp)
{
    Etcdserverpb__TxnResponse *r = res->priv;
    if (!r || i >= r->n_responses)
        return NULL;
    Etcdserverpb__ResponseOp *op = r->responses[i];
    if (op->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE ||
        !op->response_range || op->response_range->n_kvs == 0)
        return NULL;
    etcd_copy_kv(tmp, op->response_range->kvs[0]);
    return tmp;
}

int dr_etcd_txn_res_level(const dr_etcd_txn_res *res)
{
    const Etcdserverpb__TxnResponse *r = res->priv;
    for (int level = 0; r; level++) {
        if (r->succeeded)
            return level;
        if (r->n_responses != 1 ||
            r->responses[0]->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN)
            return -1;
        r = r->responses[0]->response_txn;
    }
    return -1;
}

int64_t dr_etcd_txn_res_deleted(const dr_etcd_txn_res *res, size_t i)
{
    Etcdserverpb__TxnResponse *r = res->priv;
    if (!r || i >= r->n_responses)
        return 0;
    Etcdserverpb__ResponseOp *op = r->responses[i];
    if (op->response_case != ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE ||
        !op->response_delete_range)
        return 0;
    return op->response_delete_range->deleted;
}

void dr_etcd_txn_res_free(dr_etcd_txn_res *res)
{
    if (!res)
        return;
    if (res->priv)
        protobuf_c_message_free_unpacked(res->priv, NULL);
    memset(res, 0, sizeof *res);
}

int dr_etcd_txn_do(dr_etcd *e, const dr_etcd_txn *t, dr_etcd_txn_res *res)
{
    chain *c = malloc(sizeof *c);
    if (!c)
        return dr_error_set(DR_ENOMEM, "out of memory");
    int rc = txn_request(t, c);
    Etcdserverpb__TxnResponse *r = NULL;
    if (rc == 0)
        rc = etcd_unary(e, M_TXN, "Txn", &c->req[0].base, &etcdserverpb__txn_response__descriptor,
                        (ProtobufCMessage **)&r);
    free(c);
    if (rc < 0)
        return rc;
    fill_res(res, r);
    return 0;
}

/* ---- pipeline ---- */

typedef struct slot {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    void *user;
} slot;

struct dr_etcd_pipe {
    dr_etcd *e;
    grpc_completion_queue *cq;
    size_t inflight;
};

int dr_etcd_pipe_new(dr_etcd *e, dr_etcd_pipe **out)
{
    dr_etcd_pipe *p = calloc(1, sizeof *p);
    if (!p)
        return dr_error_set(DR_ENOMEM, "out of memory");
    p->e = e;
    p->cq = grpc_completion_queue_create_for_next(NULL);
    *out = p;
    return 0;
}

static void slot_free(slot *s)
{
    grpc_byte_buffer_destroy(s->send);
    if (s->recv)
        grpc_byte_buffer_destroy(s->recv);
    grpc_metadata_array_destroy(&s->md_init);
    grpc_metadata_array_destroy(&s->md_trail);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    free(s);
}

int dr_etcd_pipe_submit(dr_etcd_pipe *p, const dr_etcd_txn *t, void *user)
{
    chain *c = malloc(sizeof *c);
    if (!c)
        return dr_error_set(DR_ENOMEM, "out of memory");
    int rc = txn_request(t, c);
    if (rc < 0) {
        free(c);
        return rc;
    }
    slot *s = calloc(1, sizeof *s);
    if (!s) {
        free(c);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    s->send = etcd_pack(&c->req[0].base);
    free(c);
    s->user = user;
    s->details = grpc_empty_slice();
    grpc_metadata_array_init(&s->md_init);
    grpc_metadata_array_init(&s->md_trail);
    grpc_channel *ch;
    void *method;
    etcd_current_method(p->e, M_TXN, &ch, &method);
    s->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, p->cq, method,
                                                  etcd_deadline(p->e->timeout_ms), NULL);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->md_trail;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;
    if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
        slot_free(s);
        return dr_error_set(DR_EGENERIC, "etcd %s: Txn: cannot start call", p->e->eps[p->e->cur]);
    }
    p->inflight++;
    return 0;
}

size_t dr_etcd_pipe_inflight(const dr_etcd_pipe *p)
{
    return p->inflight;
}

int dr_etcd_pipe_next(dr_etcd_pipe *p, int64_t timeout_ms, void **user, int *rc,
                      dr_etcd_txn_res *res)
{
    if (p->inflight == 0)
        return DR_ENOTFOUND;
    grpc_event ev =
        grpc_completion_queue_next(p->cq, etcd_deadline(timeout_ms > 0 ? timeout_ms : 0), NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT)
        return DR_ETIMEOUT;
    if (ev.type != GRPC_OP_COMPLETE)
        return dr_error_set(DR_EGENERIC, "etcd: pipeline queue shut down");
    slot *s = ev.tag;
    p->inflight--;
    *user = s->user;
    memset(res, 0, sizeof *res);
    if (s->status != GRPC_STATUS_OK) {
        *rc = etcd_status_rc(p->e, "Txn", s->status, s->details);
    } else if (!s->recv) {
        *rc = dr_error_set(DR_EPROTO, "etcd %s: Txn: empty response", p->e->eps[p->e->cur]);
    } else {
        Etcdserverpb__TxnResponse *r = NULL;
        *rc =
            etcd_unpack(s->recv, &etcdserverpb__txn_response__descriptor, (ProtobufCMessage **)&r);
        if (*rc == 0)
            fill_res(res, r);
    }
    slot_free(s);
    return 0;
}

void dr_etcd_pipe_free(dr_etcd_pipe *p)
{
    if (!p)
        return;
    /* Completions of cancelled calls still arrive: drain them before freeing their slots. */
    while (p->inflight > 0) {
        grpc_event ev = grpc_completion_queue_next(p->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            break;
        slot_free(ev.tag);
        p->inflight--;
    }
    grpc_completion_queue_shutdown(p->cq);
    while (grpc_completion_queue_next(p->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(p->cq);
    free(p);
}
