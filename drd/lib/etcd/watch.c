/*
 * Watch: one bidirectional stream with one watcher.
 *
 * Tags on the stream's own completion queue:
 *   T_SEND   SEND_INITIAL_METADATA + SEND_MESSAGE(create), later SEND_MESSAGE(progress)
 *   T_RECV   RECV_MESSAGE (the first one also RECV_INITIAL_METADATA); at most one pending
 *   T_STATUS RECV_STATUS_ON_CLIENT, posted once, completes when the call ends
 * A wait that times out leaves T_RECV pending; the next dr_etcd_watch_next waits for the same op,
 * so no response is lost. Close cancels the call and drains every pending tag before freeing.
 *
 * The watch is created with fragment = true, so that etcd cuts a large response (a batch of
 * history, or one big transaction) into messages of at most its --max-request-bytes, each within
 * our receive limit (see DR_ETCD_MAX_RECV_DEFAULT). Fragments are joined here: the caller still
 * sees one response per etcd response, so the end of a response stays a revision boundary.
 * Fragments already received when a wait times out are kept in frags for the next call.
 */
#include "etcd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_SEND = 1, T_RECV = 2, T_STATUS = 3 };

struct dr_etcd_watch {
    dr_etcd *e;
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    int send_pending, recv_pending, status_pending, ended;
    Etcdserverpb__WatchResponse **frags; /* the parts of a fragmented response so far */
    size_t n_frags;
};

/* What dr_etcd_watch_res.priv points to: the message(s) its events borrow from. */
typedef struct parts {
    size_t n;
    Etcdserverpb__WatchResponse **msgs;
} parts;

static void free_msgs(Etcdserverpb__WatchResponse **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(&msgs[i]->base, NULL);
    free(msgs);
}

static int post_recv(dr_etcd_watch *w, int first)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (first) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &w->md_init;
        n++;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &w->recv;
    n++;
    grpc_call_error ce = grpc_call_start_batch(w->call, ops, n, (void *)T_RECV, NULL);
    if (ce != GRPC_CALL_OK)
        return dr_error_set(DR_EUNAVAILABLE, "etcd %s: Watch: cannot post a receive (%d)",
                            w->e->eps[w->e->cur], (int)ce);
    w->recv_pending = 1;
    return 0;
}

static int send_msg(dr_etcd_watch *w, const ProtobufCMessage *m, int first)
{
    if (w->send_pending)
        return 0; /* one send at a time; a progress request can be skipped */
    if (w->send)
        grpc_byte_buffer_destroy(w->send);
    w->send = etcd_pack(m);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (first)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = w->send;
    n++;
    if (grpc_call_start_batch(w->call, ops, n, (void *)T_SEND, NULL) != GRPC_CALL_OK)
        return dr_error_set(DR_EGENERIC, "etcd %s: Watch: cannot send", w->e->eps[w->e->cur]);
    w->send_pending = 1;
    return 0;
}

/* Wait for the pending receive; handles send/status completions meanwhile. */
static int wait_recv(dr_etcd_watch *w, int64_t timeout_ms, Etcdserverpb__WatchResponse **out)
{
    gpr_timespec dl = etcd_deadline(timeout_ms);
    for (;;) {
        int rc;
        if (!w->recv_pending && !w->ended && (rc = post_recv(w, 0)) < 0)
            return rc;
        if (!w->recv_pending) {
            /* stream ended: wait for the status, then report */
            while (w->status_pending) {
                grpc_event ev = grpc_completion_queue_next(w->cq, dl, NULL);
                if (ev.type == GRPC_QUEUE_TIMEOUT)
                    return DR_ETIMEOUT;
                if ((intptr_t)ev.tag == T_STATUS)
                    w->status_pending = 0;
                else if ((intptr_t)ev.tag == T_SEND)
                    w->send_pending = 0;
            }
            if (w->status == GRPC_STATUS_OK)
                return dr_error_set(DR_EUNAVAILABLE, "etcd %s: Watch: stream closed by server",
                                    w->e->eps[w->e->cur]);
            rc = etcd_status_rc(w->e, "Watch", w->status, w->details);
            /* a watch stream that breaks is a reconnect for the caller */
            return rc == DR_ETIMEOUT || rc == DR_EINTR ? DR_EUNAVAILABLE : rc;
        }
        grpc_event ev = grpc_completion_queue_next(w->cq, dl, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            return dr_error_set(DR_ETIMEOUT, "watch: no response within %lld ms",
                                (long long)timeout_ms);
        switch ((intptr_t)ev.tag) {
        case T_SEND:
            w->send_pending = 0;
            break;
        case T_STATUS:
            w->status_pending = 0;
            break;
        case T_RECV:
            w->recv_pending = 0;
            if (!w->recv) {
                w->ended = 1;
                break;
            }
            rc = etcd_unpack(w->recv, &etcdserverpb__watch_response__descriptor,
                             (ProtobufCMessage **)out);
            grpc_byte_buffer_destroy(w->recv);
            w->recv = NULL;
            return rc;
        }
    }
}

int dr_etcd_watch_open(dr_etcd *e, const dr_etcd_watch_opts *o, dr_etcd_watch **out,
                       int64_t *compact_rev)
{
    int rc = 0;
    dr_etcd_watch *w = calloc(1, sizeof *w);
    if (!w)
        return dr_error_set(DR_ENOMEM, "out of memory");
    w->e = e;
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->details = grpc_empty_slice();
    grpc_metadata_array_init(&w->md_init);
    grpc_metadata_array_init(&w->md_trail);
    grpc_channel *ch;
    void *method;
    etcd_current_method(e, M_WATCH, &ch, &method);
    w->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq, method,
                                                  gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_op st;
    memset(&st, 0, sizeof st);
    st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    st.data.recv_status_on_client.trailing_metadata = &w->md_trail;
    st.data.recv_status_on_client.status = &w->status;
    st.data.recv_status_on_client.status_details = &w->details;
    grpc_call_error ce = grpc_call_start_batch(w->call, &st, 1, (void *)T_STATUS, NULL);
    if (ce != GRPC_CALL_OK) {
        rc = dr_error_set(DR_EGENERIC, "etcd %s: Watch: cannot start the call (%d)", e->eps[e->cur],
                          (int)ce);
        goto out;
    }
    w->status_pending = 1;

    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){o->key_len, (uint8_t *)o->key};
    if (o->range_end)
        cr.range_end = (ProtobufCBinaryData){o->range_end_len, (uint8_t *)o->range_end};
    cr.start_revision = o->start_revision;
    cr.prev_kv = o->prev_kv;
    cr.progress_notify = o->progress_notify;
    cr.fragment = 1;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    if ((rc = send_msg(w, &req.base, 1)) < 0 || (rc = post_recv(w, 1)) < 0)
        goto out;
    Etcdserverpb__WatchResponse *r = NULL;
    rc = wait_recv(w, e->timeout_ms, &r);
    if (rc == DR_ETIMEOUT)
        rc = dr_error_set(DR_ETIMEOUT, "etcd %s: Watch: no answer to create within %lld ms",
                          e->eps[e->cur], (long long)e->timeout_ms);
    if (rc < 0)
        goto out;
    if (r->compact_revision > 0 || r->canceled) {
        if (compact_rev)
            *compact_rev = r->compact_revision;
        rc = r->compact_revision > 0
                 ? dr_error_set(DR_ECOMPACTED,
                                "etcd %s: Watch: revision %lld has been compacted (compact "
                                "revision %lld)",
                                e->eps[e->cur], (long long)o->start_revision,
                                (long long)r->compact_revision)
                 : dr_error_set(DR_EINVAL, "etcd %s: Watch: cancelled: %s", e->eps[e->cur],
                                r->cancel_reason ? r->cancel_reason : "");
    } else if (!r->created) {
        rc = dr_error_set(DR_EPROTO, "etcd %s: Watch: first response is not 'created'",
                          e->eps[e->cur]);
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
out:
    if (rc < 0) {
        dr_etcd_watch_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Receives until the last fragment of one response; *msgs holds every part (caller frees). */
static int recv_whole(dr_etcd_watch *w, int64_t timeout_ms, Etcdserverpb__WatchResponse ***msgs,
                      size_t *n)
{
    for (;;) {
        Etcdserverpb__WatchResponse *r = NULL;
        int rc = wait_recv(w, timeout_ms, &r);
        if (rc < 0)
            return rc; /* the parts so far stay in w->frags */
        Etcdserverpb__WatchResponse **f = realloc(w->frags, (w->n_frags + 1) * sizeof *f);
        if (!f) {
            protobuf_c_message_free_unpacked(&r->base, NULL);
            return dr_error_set(DR_ENOMEM, "out of memory");
        }
        w->frags = f;
        w->frags[w->n_frags++] = r;
        if (!r->fragment || r->canceled || r->compact_revision > 0)
            break;
    }
    *msgs = w->frags;
    *n = w->n_frags;
    w->frags = NULL;
    w->n_frags = 0;
    return 0;
}

int dr_etcd_watch_next(dr_etcd_watch *w, int64_t timeout_ms, dr_etcd_watch_res *res)
{
    memset(res, 0, sizeof *res);
    Etcdserverpb__WatchResponse **msgs = NULL;
    size_t n_msgs = 0;
    int rc = recv_whole(w, timeout_ms, &msgs, &n_msgs);
    if (rc < 0)
        return rc;
    Etcdserverpb__WatchResponse *r = msgs[n_msgs - 1];
    etcd_copy_header(&res->header, r->header);
    res->compact_revision = r->compact_revision;
    if (r->canceled || r->compact_revision > 0) {
        int64_t cr = r->compact_revision;
        char reason[256];
        snprintf(reason, sizeof reason, "%s", r->cancel_reason ? r->cancel_reason : "");
        free_msgs(msgs, n_msgs);
        memset(res, 0, sizeof *res);
        res->compact_revision = cr;
        if (cr > 0)
            return dr_error_set(DR_ECOMPACTED,
                                "etcd %s: Watch: history compacted (compact revision %lld)",
                                w->e->eps[w->e->cur], (long long)cr);
        return dr_error_set(DR_EUNAVAILABLE, "etcd %s: Watch: cancelled by server: %s",
                            w->e->eps[w->e->cur], reason);
    }
    parts *pt = malloc(sizeof *pt);
    if (!pt) {
        free_msgs(msgs, n_msgs);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    *pt = (parts){.n = n_msgs, .msgs = msgs};
    res->priv = pt;
    for (size_t m = 0; m < n_msgs; m++)
        res->n_events += msgs[m]->n_events;
    if (res->n_events) {
        res->events = calloc(res->n_events, sizeof *res->events);
        if (!res->events) {
            dr_etcd_watch_res_free(res);
            return dr_error_set(DR_ENOMEM, "out of memory");
        }
        size_t k = 0;
        for (size_t m = 0; m < n_msgs; m++) {
            for (size_t i = 0; i < msgs[m]->n_events; i++) {
                Mvccpb__Event *ev = msgs[m]->events[i];
                dr_etcd_event *d = &res->events[k++];
                d->type = ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? DR_EV_DELETE : DR_EV_PUT;
                if (ev->kv)
                    etcd_copy_kv(&d->kv, ev->kv);
                if (ev->prev_kv) {
                    d->has_prev = 1;
                    etcd_copy_kv(&d->prev_kv, ev->prev_kv);
                }
            }
        }
    }
    return 0;
}

int dr_etcd_watch_request_progress(dr_etcd_watch *w)
{
    Etcdserverpb__WatchProgressRequest pr = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
    req.progress_request = &pr;
    return send_msg(w, &req.base, 0);
}

void dr_etcd_watch_res_free(dr_etcd_watch_res *res)
{
    if (!res)
        return;
    free(res->events);
    parts *pt = res->priv;
    if (pt) {
        free_msgs(pt->msgs, pt->n);
        free(pt);
    }
    memset(res, 0, sizeof *res);
}

void dr_etcd_watch_close(dr_etcd_watch *w)
{
    if (!w)
        return;
    grpc_call_cancel(w->call, NULL);
    while (w->send_pending || w->recv_pending || w->status_pending) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            break;
        switch ((intptr_t)ev.tag) {
        case T_SEND:
            w->send_pending = 0;
            break;
        case T_RECV:
            w->recv_pending = 0;
            break;
        case T_STATUS:
            w->status_pending = 0;
            break;
        }
    }
    if (w->recv)
        grpc_byte_buffer_destroy(w->recv);
    if (w->send)
        grpc_byte_buffer_destroy(w->send);
    free_msgs(w->frags, w->n_frags);
    grpc_metadata_array_destroy(&w->md_init);
    grpc_metadata_array_destroy(&w->md_trail);
    grpc_slice_unref(w->details);
    grpc_call_unref(w->call);
    grpc_completion_queue_shutdown(w->cq);
    while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(w->cq);
    free(w);
}
