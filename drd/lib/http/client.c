/*
 * The client side of the status servers: one GET, for `drd status` asking its daemon and for a
 * daemon probing the other site's. Plain HTTP/1.0 on a socket with deadlines: the answers are
 * small and come from our own server.
 * Must never block past its deadline on a silent peer, or follow anything (redirects, other
 * hosts).
 */
#include "drd/lib/http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int dr_http_get(const char *addr, const char *path, int timeout_ms, int *code, dr_buf *body)
{
    struct sockaddr_storage sa;
    unsigned salen = 0;
    int rc = dr_http_parse_addr(addr, "listen", &sa, &salen), fd = -1;
    dr_buf raw = {0};
    *code = 0;
    if (rc < 0)
        return rc;
    if (sa.ss_family == AF_INET) { /* a wildcard address is reached on loopback */
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    }
    /* the send timeout bounds connect() too (Linux) */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, (struct sockaddr *)&sa, salen) != 0) {
        rc = dr_error_set(DR_EUNAVAILABLE, "%s: %s", addr,
                          errno == EINPROGRESS ? "timed out" : strerror(errno));
        goto out;
    }
    char req[256], chunk[8192];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: drd\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        rc = dr_error_set(DR_EUNAVAILABLE, "%s: %s", addr, strerror(errno));
        goto out;
    }
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0 && raw.len < (16u << 20))
        if ((rc = dr_buf_append(&raw, chunk, (size_t)got)) < 0)
            goto out;
    const char *sep = raw.data ? strstr(raw.data, "\r\n\r\n") : NULL;
    if (got < 0 || !sep || sscanf(raw.data, "HTTP/%*s %d", code) != 1) {
        rc = dr_error_set(DR_EPROTO, "%s: no complete answer%s%s", addr, got < 0 ? ": " : "",
                          got < 0 ? strerror(errno) : "");
        goto out;
    }
    rc = dr_buf_append(body, sep + 4, raw.len - (size_t)(sep + 4 - raw.data));
out:
    if (fd >= 0)
        close(fd);
    dr_buf_free(&raw);
    return rc;
}
