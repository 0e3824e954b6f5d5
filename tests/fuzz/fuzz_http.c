/*
 * Fuzz target: the request path of the status server (drd/lib/http: libmicrohttpd with drd's
 * answer callback and limits), through a real loopback connection: the input is what a client
 * sends, then it closes its side. The server runs for the whole process, with a handler like
 * replicate's (fixed paths, 404 otherwise). Checks that the server answers every request with a
 * whole HTTP/1.x response or closes the connection, within 5 s, and stays up for the next one.
 */
#include "drd/lib/http/http.h"
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static dr_http_server *server;
static struct sockaddr_in addr;

static int handler(void *ctx, const char *path, dr_buf *body, const char **ctype)
{
    (void)ctx;
    if (!strcmp(path, "/metrics")) {
        *ctype = "text/plain; version=0.0.4";
        dr_buf_printf(body, "drd_up 1\n");
        return 200;
    }
    if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz") || !strcmp(path, "/status")) {
        dr_buf_printf(body, "ok\n");
        return 200;
    }
    dr_buf_printf(body, "not found\n");
    return 404;
}

/* Starts the server on a free loopback port (tried from one the pid picks). */
static void start(void)
{
    char a[64];
    dr_http_opts o = {.max_connections = 8, .timeout_s = 3};
    for (int i = 0; i < 200 && !server; i++) {
        int port = 20000 + (int)((getpid() * 7 + i * 131) % 40000);
        snprintf(a, sizeof a, "127.0.0.1:%d", port);
        if (dr_http_start(a, "fuzz", &o, handler, NULL, &server) == 0) {
            addr.sin_family = AF_INET;
            addr.sin_port = htons((uint16_t)port);
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
    }
    if (!server) {
        fprintf(stderr, "fuzz_http: cannot start the server: %s\n", dr_error_msg());
        abort();
    }
}

/* connect(2), which libFuzzer's own timer signals may interrupt (EINTR: the connection goes on;
 * wait for it). A harness failure, not a finding, was how the first campaign run of this target
 * ended. */
static int connect_all(int fd)
{
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    while (poll(&p, 1, 5000) < 0)
        if (errno != EINTR)
            return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
        errno = err ? err : errno;
        return -1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char resp[65536];
    fuzz_quiet();
    if (!server)
        start();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect_all(fd) != 0) {
        perror("fuzz_http: connect");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the server may close early (a bad request): fine */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, 5000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            fprintf(stderr, "fuzz_http: no answer and no close within 5 s\n");
            abort();
        }
        ssize_t r = read(fd, resp + n, sizeof resp - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof resp - 1)
            n = 0; /* pipelined answers: only the first bytes matter */
    }
    resp[n] = 0;
    close(fd);
    /* whatever came back starts as an HTTP/1.x status line (nothing at all is a close) */
    if (n && strncmp(resp, "HTTP/1.", n < 7 ? n : 7) != 0) {
        fprintf(stderr, "fuzz_http: answer does not start with a status line\n");
        abort();
    }
    dr_error_clear();
    return 0;
}
