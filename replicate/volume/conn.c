/*
 * Volume replication: receiving a message from the peer, with its ERROR message turned into
 * ours (shared by both sides).
 */
#include "replicate/volume/vol_int.h"

#include "drd/lib/tlsnet/tlsnet.h"

int vol_recv(dr_tls_conn *t, uint8_t *buf, uint8_t *type, size_t *n, const char *what)
{
    int rc = dr_tls_recv(t, type, buf, DR_TLS_MAX_FRAME, n);
    if (rc == 0 && *type == M_ERROR) {
        char text[512];
        return dr_error_set(DR_EPROTO, "%s: %s", what, dr_escape(buf, *n, text, sizeof text));
    }
    return rc;
}
