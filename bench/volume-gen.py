#!/usr/bin/env python3
"""volume-gen.py: the data of bench/volume-vs-rsync, a tree that looks like a PVC in production.

  volume-gen.py make DIR MIB SEED      a tree of about MIB MiB (mixed sizes and kinds)
  volume-gen.py change DIR PERCENT SEED   rewrites about PERCENT% of the bytes in place, appends to
                                       logs, adds and deletes a few small files

Kinds, by share of bytes: log files (text lines with timestamps, ids, latencies: zstd ~5x),
database-like files (8 KiB pages, half random bytes, half structured: ~2x), and media (random,
incompressible). Sizes: many small files (4-64 KiB), some medium (1-8 MiB), a few large (64-160
MiB): the tree compresses about 2x overall, as mixed application data does."""
import os
import random
import sys

WORDS = ["GET", "POST", "PUT", "users", "orders", "cart", "search", "api", "v1", "v2", "auth",
         "session", "ok", "error", "timeout", "retry", "cache", "db", "query", "index"]


def log_bytes(r, n):
    out = []
    size = 0
    t = r.randrange(1_700_000_000, 1_800_000_000)
    while size < n:
        t += r.randrange(0, 3)
        line = "%d.%03d level=%s svc=%s path=/%s/%s/%s id=%016x user=%d latency_ms=%d status=%d\n" % (
            t, r.randrange(1000), r.choice(("info", "info", "info", "warn", "error")),
            r.choice(WORDS), r.choice(WORDS), r.choice(WORDS), r.choice(WORDS),
            r.getrandbits(64), r.randrange(100000), r.randrange(2000), r.choice((200, 200, 201, 404, 500)))
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def db_bytes(r, n):
    pages = []
    for _ in range((n + 8191) // 8192):
        hdr = b"PAGE" + r.getrandbits(32).to_bytes(4, "big") + bytes(56)
        body = r.randbytes(4096 - 64) + (b"%08d" % r.randrange(10**8)) * 8 + bytes(4096 - 64)
        pages.append(hdr + body)
    return b"".join(pages)[:n]


def media_bytes(r, n):
    return r.randbytes(n)


def write_file(path, kind, n, r):
    gen = {"log": log_bytes, "db": db_bytes, "media": media_bytes}[kind]
    with open(path, "wb") as f:
        left = n
        while left > 0:
            k = min(left, 4 << 20)
            f.write(gen(r, k))
            left -= k


def make(d, mib, seed):
    r = random.Random(seed)
    total = mib << 20
    plan = []
    # ~45% large, ~35% medium, ~20% small
    left = total * 45 // 100
    while left > (32 << 20):
        n = min(left, r.randrange(64 << 20, 160 << 20))
        plan.append(("large", n))
        left -= n
    left = total * 35 // 100
    while left > 0:
        n = r.randrange(1 << 20, 8 << 20)
        plan.append(("medium", n))
        left -= n
    left = total * 20 // 100
    while left > 0:
        n = r.randrange(4 << 10, 64 << 10)
        plan.append(("small", n))
        left -= n
    for i, (size_class, n) in enumerate(plan):
        kind = r.choices(("log", "db", "media"), (4, 5, 1))[0]
        sub = os.path.join(d, size_class, "d%02d" % (i % 37))
        os.makedirs(sub, exist_ok=True)
        write_file(os.path.join(sub, "%s-%05d.%s" % (kind, i, kind)), kind, n, r)


def change(d, percent, seed):
    r = random.Random(seed)
    files = sorted(os.path.join(p, f) for p, _, fs in os.walk(d) for f in fs)
    total = sum(os.path.getsize(f) for f in files)
    budget = int(total * percent / 100)
    big = [f for f in files if os.path.getsize(f) > (1 << 20)]
    while budget > 0:
        f = r.choice(big)
        size = os.path.getsize(f)
        kind = f.rsplit(".", 1)[1]
        if kind == "log" and r.random() < 0.5:  # logs grow at the end
            data = log_bytes(r, min(budget, r.randrange(16 << 10, 256 << 10)))
            with open(f, "ab") as fh:
                fh.write(data)
        else:  # pages rewritten in place
            n = min(budget, 8192 * r.randrange(1, 16))
            off = r.randrange(0, max(1, size - n)) // 8192 * 8192
            data = {"log": log_bytes, "db": db_bytes, "media": media_bytes}[kind](r, n)
            with open(f, "r+b") as fh:
                fh.seek(off)
                fh.write(data)
        budget -= len(data)
    small = [f for f in files if os.path.getsize(f) <= (64 << 10)]
    for f in r.sample(small, min(5, len(small))):
        os.unlink(f)
    for i in range(5):
        write_file(os.path.join(d, "small", "new-%d-%d.log" % (seed, i)), "log", r.randrange(4 << 10, 64 << 10), r)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "change":
        change(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
