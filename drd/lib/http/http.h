/*
 * drd http: the status server of long-running commands and the daemon (/metrics, /healthz,
 * /readyz, /status), on libmicrohttpd (the only module that includes <microhttpd.h>), and the
 * one GET that asks such a server (drd status, the daemon's probe of the other site).
 * Connections are served concurrently by the library's own polling thread, with a cap on
 * connections (also per client address), a per-connection idle timeout and a bound on request
 * memory, so one slow or hostile client can never blind a liveness probe.
 * Must never serve anything but what the handler returns, answer other methods than GET and HEAD,
 * or block the caller's loop: the handler runs on the server's thread.
 */
#ifndef DRD_HTTP_H
#define DRD_HTTP_H

#include "drd/core/core.h"

#include <sys/socket.h>

typedef struct dr_http_server dr_http_server;

/* Fills body (and *ctype, which starts as "text/plain; charset=utf-8") for path (no query
 * string) and returns the HTTP status. Runs on the server's thread, one request at a time. */
typedef int (*dr_http_handler)(void *ctx, const char *path, dr_buf *body, const char **ctype);

typedef struct dr_http_opts {
    unsigned max_connections; /* 0: 64 */
    unsigned timeout_s;       /* idle time before a connection is dropped; 0: 10 */
} dr_http_opts;

/* Where to listen: "HOST:PORT" (IPv4 address or name), "[IPV6]:PORT", or ":PORT" (every
 * address, IPv6 and IPv4). what names the flag in errors (e.g. "--status-listen").
 * DR_EUSAGE naming the address when it is malformed. */
int dr_http_parse_addr(const char *addr, const char *what, struct sockaddr_storage *sa,
                       unsigned *salen);
/* Starts serving addr with h. o may be NULL. DR_EUSAGE when the address is malformed or cannot be
 * bound (names it and why). Caller stops it with dr_http_stop. */
int dr_http_start(const char *addr, const char *what, const dr_http_opts *o, dr_http_handler h,
                  void *ctx, dr_http_server **out);
/* Stops serving (waits for the thread); NULL is fine. */
void dr_http_stop(dr_http_server *s);

/* GET path from the server at addr (as dr_http_parse_addr; a wildcard address is reached on
 * loopback), HTTP/1.0, each step (connect, send, every read) within timeout_ms. *code gets the
 * HTTP status, body (caller's, appended to) the answer's body. DR_EUNAVAILABLE "ADDR: why" when
 * it cannot connect or send, DR_EPROTO for an incomplete answer, DR_EUSAGE for
 * a malformed addr. */
int dr_http_get(const char *addr, const char *path, int timeout_ms, int *code, dr_buf *body);

#endif
