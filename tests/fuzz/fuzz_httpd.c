/*
 * Fuzz target: the request path of the status server (drd_http_respond, drd/app/httpd.c), with
 * a render like replicate's (fixed paths, 404 otherwise). The input is what a client sent, cut
 * to the server's request buffer. Checks that every answer is a whole HTTP/1.0 response.
 */
#include "drd/app/cmd.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static int render(void *ctx, const char *path, void *out, const char **ctype)
{
    dr_buf *b = out;
    (void)ctx;
    if (strlen(path) > 255)
        abort();
    if (!strcmp(path, "/metrics")) {
        *ctype = "text/plain; version=0.0.4";
        dr_buf_printf(b, "drd_up 1\n");
        return 200;
    }
    if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz") || !strcmp(path, "/status")) {
        dr_buf_printf(b, "ok\n");
        return 200;
    }
    dr_buf_printf(b, "not found\n");
    return 404;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *req = fuzz_strndup(data, size < DRD_HTTP_REQUEST_MAX ? size : DRD_HTTP_REQUEST_MAX - 1);
    dr_buf out = {0};
    if (drd_http_respond(req, render, NULL, &out) != 0 || out.len < 9 ||
        memcmp(out.data, "HTTP/1.0 ", 9) != 0 || !strstr(out.data, "\r\n\r\n"))
        abort();
    dr_buf_free(&out);
    free(req);
    return 0;
}
