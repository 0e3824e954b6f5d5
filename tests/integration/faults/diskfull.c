/*
 * An LD_PRELOAD shim for the full-disk and I/O-error tests: from the Nth write or sync on a file
 * whose path contains DRD_FAULT_PATH, fail with DRD_FAULT_ERRNO (ENOSPC or EIO), as a full or
 * failing disk would. Everything else passes through.
 *   DRD_FAULT_PATH   substring of the file's path (/proc/self/fd/N); unset: the shim is inert
 *   DRD_FAULT_AFTER  the first failing call (1: the first one); counted per process
 *   DRD_FAULT_OPS    "write" (write, pwrite, writev), "sync" (fsync, fdatasync) or "all"
 *   DRD_FAULT_ERRNO  "ENOSPC" (default) or "EIO"
 * A test harness part, never linked into drd.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long counter;

static int hit(int fd, int is_sync)
{
    const char *want = getenv("DRD_FAULT_PATH");
    if (!want || !*want)
        return 0;
    const char *ops = getenv("DRD_FAULT_OPS");
    if (ops && strcmp(ops, "all") != 0 && strcmp(ops, is_sync ? "sync" : "write") != 0)
        return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = 0;
    if (!strstr(path, want))
        return 0;
    long after = getenv("DRD_FAULT_AFTER") ? atol(getenv("DRD_FAULT_AFTER")) : 1;
    if (__atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST) < after)
        return 0;
    const char *e = getenv("DRD_FAULT_ERRNO");
    errno = e && strcmp(e, "EIO") == 0 ? EIO : ENOSPC;
    return 1;
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void *buf, size_t n)
{
    return hit(fd, 0) ? -1 : NEXT(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return hit(fd, 0) ? -1 : NEXT(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return hit(fd, 0) ? -1 : NEXT(pwrite64)(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    return hit(fd, 0) ? -1 : NEXT(writev)(fd, iov, cnt);
}

int fsync(int fd)
{
    return hit(fd, 1) ? -1 : NEXT(fsync)(fd);
}

int fdatasync(int fd)
{
    return hit(fd, 1) ? -1 : NEXT(fdatasync)(fd);
}
