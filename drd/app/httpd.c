/*
 * The status endpoint of long-running commands: GET /metrics, /healthz, /readyz, /status.
 * One background thread, one request per connection, bounded request size. Must never serve
 * anything but what render() returns, and never block the replication loop.
 */
#include "drd/app/cmd.h"
#include "drd/core/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int srv_fd = -1;
static pthread_t srv_thread;
static volatile int srv_stop;
static drd_http_render srv_render;
static void *srv_ctx;

static void serve_one(int fd)
{
    char req[2048];
    size_t n = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (n < sizeof req - 1 && poll(&p, 1, 2000) > 0) {
        ssize_t r = read(fd, req + n, sizeof req - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    req[n] = 0;
    char path[256] = "/";
    if (sscanf(req, "GET %255s", path) != 1) {
        const char *bad = "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)!write(fd, bad, strlen(bad));
        return;
    }
    dr_buf body = {0};
    const char *ctype = "text/plain; charset=utf-8";
    int status = srv_render(srv_ctx, path, &body, &ctype);
    dr_buf out = {0};
    dr_buf_printf(&out,
                  "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n",
                  status,
                  status == 200   ? "OK"
                  : status == 404 ? "Not Found"
                                  : "Unavailable",
                  ctype, body.len);
    dr_buf_append(&out, body.data ? body.data : "", body.len);
    size_t off = 0;
    while (off < out.len) {
        ssize_t w = write(fd, out.data + off, out.len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    dr_buf_free(&body);
    dr_buf_free(&out);
}

static void *srv_main(void *arg)
{
    (void)arg;
    while (!srv_stop) {
        struct pollfd p = {.fd = srv_fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(c);
        close(c);
    }
    return NULL;
}

int drd_http_start(const char *addr, drd_http_render render, void *ctx)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
        return dr_error_set(DR_EUSAGE, "--status-listen: expected host:port, got '%s'", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    int64_t port;
    if (dr_parse_i64(colon + 1, "--status-listen port", &port) < 0 || port > 65535)
        return dr_error_set(DR_EUSAGE, "--status-listen: bad port in '%s'", addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return dr_error_set(DR_EUSAGE, "--status-listen: '%s' is not an IPv4 address", host);
    srv_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(srv_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(srv_fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(srv_fd, 16) != 0) {
        int e = errno;
        close(srv_fd);
        srv_fd = -1;
        return dr_error_set(DR_EUSAGE, "--status-listen: cannot listen on %s: %s", addr,
                            strerror(e));
    }
    srv_render = render;
    srv_ctx = ctx;
    srv_stop = 0;
    if (pthread_create(&srv_thread, NULL, srv_main, NULL) != 0) {
        close(srv_fd);
        srv_fd = -1;
        return dr_error_set(DR_EGENERIC, "cannot start the status server thread");
    }
    return 0;
}

void drd_http_stop(void)
{
    if (srv_fd < 0)
        return;
    srv_stop = 1;
    pthread_join(srv_thread, NULL);
    close(srv_fd);
    srv_fd = -1;
}
