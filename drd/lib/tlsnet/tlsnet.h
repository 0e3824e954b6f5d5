/*
 * drd tlsnet: framed messages over TLS 1.3 between two drd processes (OpenSSL's libssl; the only
 * module that includes <openssl/ssl.h>). Peers authenticate with an external pre-shared key (a
 * file of at least 32 random bytes, as VolSync's rsync-tls does) or with certificates verified
 * against a CA on both sides. A wrong key or certificate fails the handshake.
 * A frame is a type byte, a 4-byte big-endian length and at most DR_TLS_MAX_FRAME payload bytes;
 * reads and writes time out; the sender may cap its rate (bytes per second).
 * Must never print or log key material, accept TLS below 1.3, or allocate what a peer claims.
 */
#ifndef DRD_TLSNET_H
#define DRD_TLSNET_H

#include "drd/core/core.h"

#include <signal.h>
#include <stdint.h>

#define DR_TLS_MAX_FRAME (1u << 20)
#define DR_TLS_PSK_MIN 32

typedef struct dr_tls_opts {
    const char *psk_file;            /* either this ... */
    const char *cert, *key, *cacert; /* ... or all three */
    int server;
    int64_t timeout_ms; /* per read or write; 0: 120 s */
} dr_tls_opts;

typedef struct dr_tls_conf dr_tls_conf;
typedef struct dr_tls_listener dr_tls_listener;
typedef struct dr_tls_conn dr_tls_conn;

/* Loads the key or certificates. DR_EUSAGE (neither or both kinds given), DR_ENOTFOUND,
 * DR_EAUTH (file permissions, PSK shorter than 32 bytes), DR_ETLS (unusable certificate). */
int dr_tls_conf_new(const dr_tls_opts *o, dr_tls_conf **out);
void dr_tls_conf_free(dr_tls_conf *c);

/* Writes a new PSK file (32 random bytes as 64 hex digits and a newline), mode 0600; refuses to
 * replace an existing file (DR_EUSAGE). */
int dr_tls_psk_generate(const char *path);

/* Listens on "HOST:PORT" (what names the flag in errors). DR_EUSAGE when malformed or the port
 * cannot be bound (names the address and why). */
int dr_tls_listen(const char *addr, const char *what, dr_tls_listener **out);
/* The port actually bound (for ":0"). */
int dr_tls_listener_port(const dr_tls_listener *l);
/* Waits for a connection and completes the handshake. Returns 0 with *out, DR_EINTR when *stop
 * became non-zero, DR_ETLS / DR_ETIMEOUT when a client failed the handshake (*out NULL; the
 * caller keeps listening). */
int dr_tls_accept(dr_tls_listener *l, dr_tls_conf *c, volatile sig_atomic_t *stop,
                  dr_tls_conn **out);
void dr_tls_listener_close(dr_tls_listener *l);

/* Connects to "HOST:PORT" and completes the handshake (certificates: the server's name or IP is
 * verified). DR_EUNAVAILABLE, DR_ETLS (handshake refused: wrong key or certificate), DR_ETIMEOUT.
 */
int dr_tls_connect(const char *addr, dr_tls_conf *c, dr_tls_conn **out);

/* Queues one frame (flushed when the buffer fills, by dr_tls_flush, or before a receive). */
int dr_tls_send(dr_tls_conn *t, uint8_t type, const void *p, size_t n);
/* The same with two pieces (a header and a body) in one frame. */
int dr_tls_send2(dr_tls_conn *t, uint8_t type, const void *a, size_t an, const void *b, size_t bn);
int dr_tls_flush(dr_tls_conn *t);
/* Receives one frame into buf (cap >= DR_TLS_MAX_FRAME is always enough). DR_EPROTO when it is
 * longer than cap or than DR_TLS_MAX_FRAME, DR_EUNAVAILABLE when the peer closed. */
int dr_tls_recv(dr_tls_conn *t, uint8_t *type, void *buf, size_t cap, size_t *n);
/* Caps what this side sends at rate bytes per second (0: no cap). */
void dr_tls_set_rate(dr_tls_conn *t, uint64_t rate);
/* Bytes on the wire (TLS records included) sent and received so far. */
void dr_tls_counters(const dr_tls_conn *t, uint64_t *sent, uint64_t *received);
/* The peer's address, for logs. */
const char *dr_tls_peer(const dr_tls_conn *t);
/* Closes (a TLS close_notify when the connection is healthy); NULL is fine. */
void dr_tls_close(dr_tls_conn *t);

#endif
