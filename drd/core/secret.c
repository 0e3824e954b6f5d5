/*
 * Secret files and private directories: the one check every secret file goes through (keyring,
 * S3 credentials file, TLS private keys, PSKs), reading one without leaving copies behind, wiping
 * memory, private scratch dirs.
 * Must never put a secret file's contents into a message, and never weaken a refusal into a
 * warning: a secret others could read is exposed, one another user owns could be theirs.
 */
#include "drd/core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void dr_secure_zero(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

/* The owners trusted with a private file or dir: ourselves, and root (who can change any file). */
static int owner_ok(uid_t uid)
{
    return uid == geteuid() || uid == 0;
}

int dr_fs_check_secret_fd(int fd, const char *path, const char *what)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return dr_error_set(DR_EIO, "cannot stat %s '%s': %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return dr_error_set(DR_EIO, "%s '%s' is not a regular file", what, path);
    if (st.st_mode & 077)
        return dr_error_set(DR_EAUTH,
                            "%s '%s' has mode %04o: group or others may access it; it must be "
                            "private to its owner\nHINT: chmod 600 '%s' (and consider what it "
                            "holds exposed if others could read it)",
                            what, path, (unsigned)(st.st_mode & 07777), path);
    if (!owner_ok(st.st_uid))
        return dr_error_set(DR_EAUTH,
                            "%s '%s' is owned by uid %lu, not by uid %lu that drd runs as: "
                            "another user could have put their secret there\nHINT: chown %lu '%s' "
                            "after checking what it holds",
                            what, path, (unsigned long)st.st_uid, (unsigned long)geteuid(),
                            (unsigned long)geteuid(), path);
    return 0;
}

static int open_secret(const char *path, const char *what, int *fd)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "cannot open %s '%s': %s",
                            what, path, strerror(errno));
    int rc = dr_fs_check_secret_fd(*fd, path, what);
    if (rc < 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

int dr_fs_check_secret_file(const char *path, const char *what)
{
    int fd = -1;
    int rc = open_secret(path, what, &fd);
    if (fd >= 0)
        close(fd);
    return rc;
}

int dr_fs_read_secret(const char *path, const char *what, size_t max, char **out, size_t *out_len)
{
    int rc = 0, fd = -1;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    if ((rc = open_secret(path, what, &fd)) < 0)
        goto out;
    if (fstat(fd, &st) != 0) {
        rc = dr_error_set(DR_EIO, "cannot stat %s '%s': %s", what, path, strerror(errno));
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = dr_error_set(DR_EIO, "%s '%s' is larger than %zu bytes", what, path, max);
        goto out;
    }
    /* one allocation of the final size, with a spare byte to notice a file that grows while
     * being read, and one for the NUL */
    cap = (size_t)st.st_size + 2;
    if (!(buf = malloc(cap))) {
        rc = dr_error_set(DR_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = dr_error_set(DR_EIO, "cannot read %s '%s': %s", what, path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap - 1) {
            rc = dr_error_set(DR_EIO, "%s '%s' changed while being read", what, path);
            goto out;
        }
    }
    buf[len] = 0;
    *out = buf;
    if (out_len)
        *out_len = len;
    buf = NULL;
out:
    if (buf) {
        dr_secure_zero(buf, cap);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int dr_fs_check_private_dir(const char *dir, const char *what)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "cannot stat %s '%s': %s",
                            what, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return dr_error_set(DR_EIO, "%s '%s' is not a directory", what, dir);
    if (!owner_ok(st.st_uid))
        return dr_error_set(DR_EAUTH,
                            "%s '%s' is owned by uid %lu, not by uid %lu that drd runs as\nHINT: "
                            "use a directory of your own",
                            what, dir, (unsigned long)st.st_uid, (unsigned long)geteuid());
    if (st.st_mode & 022)
        return dr_error_set(DR_EAUTH,
                            "%s '%s' has mode %04o: others may create or replace files in it\n"
                            "HINT: chmod 700 '%s', or use a directory of your own",
                            what, dir, (unsigned)(st.st_mode & 07777), dir);
    return 0;
}

int dr_fs_mkdtemp(const char *name, char *out, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if (snprintf(out, cap, "%s/drd-%s-XXXXXX", tmp, name) >= (int)cap) {
        out[0] = 0;
        return dr_error_set(DR_EUSAGE, "TMPDIR '%s' is too long", tmp);
    }
    if (!mkdtemp(out)) {
        int e = errno;
        out[0] = 0;
        return dr_error_set(DR_EIO, "cannot create a private directory under '%s': %s", tmp,
                            strerror(e));
    }
    return 0;
}

int dr_buf_escape(dr_buf *b, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = p;
    int rc = 0;
    size_t run = 0; /* printable bytes not yet appended, ending at s[i] */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            run++;
            continue;
        }
        if (run)
            rc = dr_buf_append(b, s + i - run, run);
        run = 0;
        if (rc == 0 && c == '\\')
            rc = dr_buf_append(b, "\\\\", 2);
        else if (rc == 0) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            rc = dr_buf_append(b, e, 4);
        }
    }
    if (rc == 0 && run)
        rc = dr_buf_append(b, s + n - run, run);
    if (rc == 0 && !b->data)
        rc = dr_buf_append(b, "", 0);
    return rc;
}
