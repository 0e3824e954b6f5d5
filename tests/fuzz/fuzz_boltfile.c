/*
 * Fuzz target: the bbolt file lookup and in-place patch (drd/lib/boltfile/boltfile.c) on a file
 * holding the input: etcd's meta/consistent_index, the greatest key of bucket "key" and of the
 * top level, then an overwrite of the value found. Checks that the patch changes exactly the
 * value's bytes and nothing else, and that a lookup then returns the new value.
 */
#include "drd/lib/boltfile/boltfile.h"
#include "fuzz.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t *read_back(const char *path, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (!p || fd < 0 || pread(fd, p, size, 0) != (ssize_t)size)
        abort();
    close(fd);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t val[4096], val2[4096];
    size_t len = 0, len2 = 0;
    fuzz_quiet();
    const char *path = fuzz_file(data, size);
    (void)dr_boltfile_last_key(path, "key", val, sizeof val, &len);
    (void)dr_boltfile_last_key(path, NULL, val, sizeof val, &len);
    if (dr_boltfile_get(path, "meta", "consistent_index", val, sizeof val, &len) == 0 &&
        len <= sizeof val) {
        for (size_t i = 0; i < len; i++)
            val[i] ^= 0xff;
        if (dr_boltfile_set_same_size(path, "meta", "consistent_index", val, len) != 0)
            abort();
        uint8_t *after = read_back(path, size);
        size_t first = 0, last = 0, diff = 0;
        for (size_t i = 0; i < size; i++)
            if (after[i] != data[i]) {
                if (!diff++)
                    first = i;
                last = i;
            }
        if (diff && last - first >= len)
            abort(); /* bytes changed outside one value's extent */
        free(after);
        if (dr_boltfile_get(path, "meta", "consistent_index", val2, sizeof val2, &len2) != 0 ||
            len2 != len || memcmp(val, val2, len) != 0)
            abort();
    }
    dr_error_clear();
    return 0;
}
