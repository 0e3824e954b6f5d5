#!/usr/bin/env python3
"""voltree.py: compare directory trees for the volume replication tests, independently of drd.

  voltree.py compare A B [--skip NAME]...   exit 0 when equal, else 1 and one line per difference
  voltree.py list A                          the manifest compared (one line per entry)
  voltree.py sparse-cmp F G                  exit 0 when the files have the same size and bytes,
                                             reading only the data extents of each (holes are
                                             zeros): for huge sparse files

Compared per entry (paths relative, the root as "."): type, permission bits, owner and group,
mtime in nanoseconds (directories too), size, sha256 of files, symlink targets (never followed),
and hard-link groups (each file names the first path, in sorted order, sharing its inode).
Special files (fifos, sockets, devices) are listed as such; --skip drops a name anywhere."""
import hashlib
import os
import stat
import sys


def manifest(root, skip):
    rows = {}
    inodes = {}
    paths = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        rel = os.path.relpath(dirpath, root)
        paths.append(rel)
        for n in sorted(filenames):
            if n not in skip:
                paths.append(os.path.normpath(os.path.join(rel, n)))
    for rel in sorted(paths):
        full = os.path.join(root, rel)
        st = os.lstat(full)
        m = st.st_mode
        row = [stat.S_IFMT(m), oct(stat.S_IMODE(m)), st.st_uid, st.st_gid]
        if stat.S_ISDIR(m):
            row += ["dir", st.st_mtime_ns]
        elif stat.S_ISLNK(m):
            row += ["link", os.readlink(full), st.st_mtime_ns]
        elif stat.S_ISREG(m):
            h = hashlib.sha256()
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            first = inodes.setdefault((st.st_dev, st.st_ino), rel)
            row += ["file", st.st_size, st.st_mtime_ns, h.hexdigest(), "linked-to:" + first]
        else:
            row += ["special"]
        rows[rel] = row
    return rows


def extents(f, size):
    pos = 0
    while pos < size:
        try:
            data = os.lseek(f, pos, os.SEEK_DATA)
        except OSError:
            return
        hole = os.lseek(f, data, os.SEEK_HOLE)
        yield data, min(hole, size)
        pos = hole


def sparse_cmp(a, b):
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    size = os.fstat(fa).st_size
    if os.fstat(fb).st_size != size:
        print(f"sizes differ: {size} != {os.fstat(fb).st_size}")
        return 1
    for f, g in ((fa, fb), (fb, fa)):
        for lo, hi in extents(f, size):
            for off in range(lo, hi, 1 << 20):
                n = min(1 << 20, hi - off)
                if os.pread(f, n, off) != os.pread(g, n, off):
                    print(f"differ in [{off}, {off + n})")
                    return 1
    return 0


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "sparse-cmp":
        return sparse_cmp(args[1], args[2])
    skip = set()
    while "--skip" in args:
        i = args.index("--skip")
        skip.add(args[i + 1])
        del args[i : i + 2]
    if len(args) == 2 and args[0] == "list":
        for k, v in manifest(args[1], skip).items():
            print(k, *v)
        return 0
    if len(args) != 3 or args[0] != "compare":
        print(__doc__, file=sys.stderr)
        return 2
    a, b = manifest(args[1], skip), manifest(args[2], skip)
    bad = 0
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print(f"differs: {k!r}: {a.get(k)} != {b.get(k)}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
