/*
 * The status server on libmicrohttpd: address parsing, the request path, the library's limits.
 * Must never let a client hold the server (the library polls every connection on its own thread
 * with a cap and an idle timeout) and never put request bytes into a log unescaped.
 */
#include "drd/lib/http/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct dr_http_server {
    struct MHD_Daemon *d;
    dr_http_handler h;
    void *ctx;
};

int dr_http_parse_addr(const char *addr, const char *what, struct sockaddr_storage *sa,
                       unsigned *salen)
{
    char host[256];
    const char *port;
    memset(sa, 0, sizeof *sa);
    if (addr[0] == '[') { /* [v6]:port */
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host)
            return dr_error_set(DR_EUSAGE, "%s: expected [ADDRESS]:PORT, got '%s'", what, addr);
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host || strchr(addr, ':') != colon)
            return dr_error_set(
                DR_EUSAGE, "%s: expected HOST:PORT, [ADDRESS]:PORT or :PORT, got '%s'", what, addr);
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = 0;
        port = colon + 1;
    }
    int64_t p;
    if (dr_parse_i64(port, what, &p) < 0 || p < 0 || p > 65535) {
        dr_error_clear();
        return dr_error_set(DR_EUSAGE, "%s: bad port in '%s'", what, addr);
    }
    if (!host[0]) { /* :PORT: every address, IPv6 and IPv4 (dual stack) */
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        s6->sin6_port = htons((uint16_t)p);
        *salen = sizeof *s6;
        return 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", (int)p);
    int e = getaddrinfo(host, ps, &hints, &res);
    if (e != 0 || !res || res->ai_addrlen > sizeof *sa) {
        if (res)
            freeaddrinfo(res);
        return dr_error_set(DR_EUSAGE, "%s: cannot resolve '%s': %s", what, host,
                            e ? gai_strerror(e) : "no address");
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static enum MHD_Result respond(struct MHD_Connection *c, int status, dr_buf *body,
                               const char *ctype)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->data ? body->data : "", MHD_RESPMEM_MUST_COPY);
    dr_buf_free(body);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 405)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Called once with the headers, then (for a request with a body) with each piece of it, then
 * once more with none: the answer goes out on that last call. *con_cls: NULL before the first
 * call, then &seen (no body so far) or &body_seen. */
static int seen, body_seen;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    dr_http_server *s = cls;
    dr_buf body = {0};
    const char *ctype = "text/plain; charset=utf-8";
    (void)version;
    (void)upload;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        dr_buf_printf(&body, "only GET\n");
        return respond(c, 405, &body, ctype); /* at once: the body is never read */
    }
    if (!*con_cls) {
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_size) { /* a body on a GET: dropped, and answered 413 */
        *upload_size = 0;
        *con_cls = &body_seen;
        return MHD_YES;
    }
    if (*con_cls == &body_seen) {
        dr_buf_printf(&body, "no request body expected\n");
        return respond(c, 413, &body, ctype);
    }
    int status = s->h(s->ctx, url, &body, &ctype);
    return respond(c, status, &body, ctype);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) DR_PRINTF(2, 0);
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512], shown[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        n--;
    dr_debug("status server: %s", dr_escape(msg, n, shown, sizeof shown));
}

int dr_http_start(const char *addr, const char *what, const dr_http_opts *o, dr_http_handler h,
                  void *ctx, dr_http_server **out)
{
    struct sockaddr_storage sa;
    unsigned salen = 0;
    int rc = dr_http_parse_addr(addr, what, &sa, &salen);
    if (rc < 0)
        return rc;
    dr_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return dr_error_set(DR_ENOMEM, "out of memory");
    s->h = h;
    s->ctx = ctx;
    unsigned conns = o && o->max_connections ? o->max_connections : 64;
    unsigned timeout = o && o->timeout_s ? o->timeout_s : 10;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6 | (IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&sa)->sin6_addr)
                                     ? MHD_USE_DUAL_STACK
                                     : 0);
    uint16_t port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                   : ((struct sockaddr_in *)&sa)->sin_port);
    s->d =
        MHD_start_daemon(flags, port, NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, conns,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, conns > 2 ? conns / 2 : conns,
                         MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)32768, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return dr_error_set(DR_EUSAGE, "%s: cannot listen on %s (address in use or not local?)",
                            what, addr);
    }
    *out = s;
    return 0;
}

void dr_http_stop(dr_http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
