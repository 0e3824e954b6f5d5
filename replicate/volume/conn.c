/*
 * Volume replication: receiving a message from the peer, with its ERROR message turned into
 * ours (shared by both sides).
 */
#include "replicate/volume/vol_int.h"

#include "drd/lib/tlsnet/tlsnet.h"

#include <string.h>

int vol_recv(dr_tls_conn *t, uint8_t *buf, uint8_t *type, size_t *n, const char *what)
{
    int rc = dr_tls_recv(t, type, buf, DR_TLS_MAX_FRAME, n);
    if (rc == 0 && *type == M_ERROR) {
        char text[512];
        /* the peer's error number (its exit status), then its message */
        int code = *n >= 1 && buf[0] >= 1 && strcmp(dr_error_name(-(int)buf[0]), "unknown") != 0
                       ? -(int)buf[0]
                       : DR_EPROTO;
        size_t skip = *n >= 1 ? 1 : 0;
        return dr_error_set(code, "%s: %s", what,
                            dr_escape(buf + skip, *n - skip, text, sizeof text));
    }
    return rc;
}

int vol_send_error(dr_tls_conn *t, int code, const char *msg)
{
    uint8_t c = (uint8_t)dr_error_exit_status(code);
    return dr_tls_send2(t, M_ERROR, &c, 1, msg, strlen(msg));
}
