/*
 * Thread-local error message and the error catalog lookups.
 * Must never print: reporting is the caller's (the CLI prints the message once).
 */
#include "drd/core/core.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char err_msg[1024];
static _Thread_local int err_code;

int dr_error_set(int code, const char *fmt, ...)
{
    /* Format into a scratch buffer first: callers may pass dr_error_msg() (our own buffer) as an
     * argument, and vsnprintf must not read from the buffer it writes into. */
    char msg[sizeof err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(err_msg, msg, sizeof err_msg);
    err_code = code;
    return code;
}

int dr_error_wrap(int code, const char *fmt, ...)
{
    char prefix[512];
    char old[sizeof err_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, sizeof old);
    size_t n = strlen(prefix);
    memcpy(err_msg, prefix, n + 1);
    if (old[0] && n + 2 < sizeof err_msg) {
        memcpy(err_msg + n, ": ", 3);
        size_t room = sizeof err_msg - n - 3;
        size_t ol = strlen(old);
        if (ol > room)
            ol = room;
        memcpy(err_msg + n + 2, old, ol);
        err_msg[n + 2 + ol] = 0;
    }
    err_code = code;
    return code;
}

const char *dr_error_msg(void)
{
    return err_msg;
}
int dr_error_code(void)
{
    return err_code;
}

void dr_error_clear(void)
{
    err_msg[0] = 0;
    err_code = 0;
}

const char *dr_error_name(int code)
{
    switch (code) {
#define X(name, num, desc)                                                                         \
    case -(num):                                                                                   \
        return #name;
#include "drd/core/errors.def"
#undef X
    case 0:
        return "OK";
    }
    return "unknown";
}

const char *dr_error_desc(int code)
{
    switch (code) {
#define X(name, num, desc)                                                                         \
    case -(num):                                                                                   \
        return desc;
#include "drd/core/errors.def"
#undef X
    case 0:
        return "success";
    }
    return "unknown error";
}

int dr_error_exit_status(int code)
{
    if (code >= 0)
        return 0;
    if (code < -125)
        return 1;
    return -code;
}
