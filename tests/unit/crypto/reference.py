#!/usr/bin/env python3
"""Reference implementation of drd's encrypted object format (docs/format.md "Encryption"), written
from the document with the `cryptography` package, and a test that drd (through crypto-tool)
agrees with it in both directions and rejects objects forged with the right keys but the wrong
structure (which drd's own writer cannot produce).

usage: reference.py CRYPTO_TOOL    (exits non-zero on the first disagreement)
Never prints key material.
"""
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"DRDCRYPT"
DR_EAUTH, DR_ECHECKSUM, DR_EPROTO = 10, 11, 16  # drd exit statuses (docs/error-codes.md)


def load_keyring(text):
    keys, current = {}, None
    for line in text.splitlines():
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        if f[0] == "key" and len(f) == 3 and len(f[2]) == 64:
            if f[1] in keys:
                raise ValueError("duplicate key name")
            keys[f[1]] = bytes.fromhex(f[2])
        elif f[0] == "current" and len(f) == 2 and current is None:
            current = f[1]
        else:
            raise ValueError("malformed keyring line")
    if current not in keys:
        raise ValueError("no current key")
    return keys, current


def header(name, master, dkey, chunk, version=1, wrap_nonce=None):
    n = name.encode()
    a = MAGIC + bytes([version]) + struct.pack(">IB", chunk, len(n)) + n
    a += wrap_nonce if wrap_nonce is not None else os.urandom(12)
    return a + AESGCM(master).encrypt(a[-12:], dkey, a)


def seal(gcm, hh, i, data, final):
    return gcm.encrypt(bytes(4) + struct.pack(">Q", i), data, hh + struct.pack(">QB", i, final))


def encrypt(pt, name, master, chunk=65536, dkey=None, hdr=None, last_flag=1, full_final=False):
    """The documented writer. The keyword arguments forge objects that break one rule."""
    dkey = dkey or os.urandom(32)
    hdr = hdr or header(name, master, dkey, chunk)
    hh, gcm = hashlib.sha256(hdr).digest(), AESGCM(dkey)
    pieces = [pt[i:i + chunk] for i in range(0, len(pt), chunk)]
    if full_final and pieces and len(pieces[-1]) == chunk:
        pass  # forgery: the last full chunk carries the final flag, no empty chunk after it
    elif not pieces or len(pieces[-1]) == chunk:
        pieces.append(b"")
    out = [hdr]
    for i, p in enumerate(pieces):
        last = i == len(pieces) - 1
        out.append(seal(gcm, hh, i, p, last_flag if last else 0))
    return b"".join(out)


def decrypt(obj, keys):
    """The documented reader; raises on anything the format rejects."""
    if obj[:8] != MAGIC or len(obj) < 14 or obj[8] != 1:
        raise ValueError("not a drd encrypted object, version 1")
    chunk, n = struct.unpack(">IB", obj[9:14])
    if not 1 <= chunk <= 1 << 24 or not 1 <= n <= 64:
        raise ValueError("bad chunk size or name length")
    name = obj[14:14 + n].decode()
    hlen = 74 + n
    if len(obj) < hlen:
        raise ValueError("truncated header")
    dkey = AESGCM(keys[name]).decrypt(obj[14 + n:26 + n], obj[26 + n:hlen], obj[:26 + n])
    hh, gcm = hashlib.sha256(obj[:hlen]).digest(), AESGCM(dkey)
    out, pos, i = [], hlen, 0
    while True:
        part = obj[pos:pos + chunk + 16]
        if len(part) < 16:
            raise ValueError("truncated")
        final = len(part) < chunk + 16
        out.append(gcm.decrypt(bytes(4) + struct.pack(">Q", i), part,
                               hh + struct.pack(">QB", i, final)))
        pos, i = pos + len(part), i + 1
        if final:
            return b"".join(out)


def main():
    tool = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="drd-crypto-ref.")
    failures = []

    def path(name):
        return os.path.join(tmp, name)

    def run(*args):
        return subprocess.run([tool, *args], capture_output=True, text=True)

    def check(what, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + what + (": " + detail if detail and not ok else ""))
        if not ok:
            failures.append(what)

    try:
        ring = path("ring")
        r = run("keygen", ring, "ref-1")
        check("keygen", r.returncode == 0, r.stderr)
        r = run("rotate", ring, "ref-2")
        check("rotate", r.returncode == 0, r.stderr)
        with open(ring) as f:
            keys, current = load_keyring(f.read())
        check("keyring parses by the document", current == "ref-2" and set(keys) == {"ref-1", "ref-2"})

        # drd writes, the reference reads
        for size in (0, 1, 65535, 65536, 65537, 3 * 65536 + 5, 1000003):
            pt = os.urandom(size)
            with open(path("pt"), "wb") as f:
                f.write(pt)
            r = run("encrypt", ring, path("pt"), path("ct"))
            with open(path("ct"), "rb") as f:
                ct = f.read()
            try:
                ok = r.returncode == 0 and decrypt(ct, keys) == pt
            except (InvalidTag, ValueError, KeyError) as e:
                ok, r.stderr = False, f"reference reader: {type(e).__name__} {e}"
            ok = ok and len(ct) == 74 + 5 + size + 16 * (size // 65536 + 1)
            check(f"drd -> reference, {size} bytes", ok, r.stderr)

        # the reference writes (other chunk sizes too, and the older key), drd reads
        for chunk, size, name in ((65536, 200000, "ref-2"), (1, 50, "ref-1"), (1000, 5000, "ref-2"),
                                  (1 << 24, 100, "ref-1"), (777, 0, "ref-2")):
            pt = os.urandom(size)
            with open(path("ct"), "wb") as f:
                f.write(encrypt(pt, name, keys[name], chunk))
            r = run("decrypt", ring, path("ct"), path("pt"))
            with open(path("pt"), "rb") as f:
                back = f.read() if r.returncode == 0 else None
            check(f"reference -> drd, chunk {chunk}, {size} bytes", back == pt, r.stderr)

        # forged with the right keys but against the format's rules: drd must refuse
        k2 = keys["ref-2"]
        pt = os.urandom(3 * 1000 + 5)
        dkey = os.urandom(32)
        hdr = header("ref-2", k2, dkey, 1000)
        rewrapped = header("ref-2", k2, dkey, 1000)  # same data key, another wrap nonce
        cases = [
            ("last chunk without the final flag", encrypt(pt, "ref-2", k2, 1000, last_flag=0),
             DR_ECHECKSUM, "truncated"),
            ("full chunk flagged final", encrypt(pt[:3000], "ref-2", k2, 1000, full_final=True),
             DR_ECHECKSUM, "chunk 2"),
            ("chunks under another header with the same data key",
             rewrapped + encrypt(pt, "ref-2", k2, 1000, dkey=dkey, hdr=hdr)[len(hdr):],
             DR_ECHECKSUM, "chunk 0"),
            ("version 2", encrypt(pt, "ref-2", k2, 1000)[:8] + b"\x02" +
             encrypt(pt, "ref-2", k2, 1000)[9:], DR_EPROTO, "version 2"),
            ("chunk size 0", header("ref-2", k2, dkey, 0), DR_EPROTO, "chunk size"),
            ("chunk size 16 MiB + 1", header("ref-2", k2, dkey, (1 << 24) + 1), DR_EPROTO,
             "chunk size"),
            ("unknown key", encrypt(pt, "nope", os.urandom(32), 1000), DR_EAUTH, "'nope'"),
        ]
        # the reference reader agrees on the first three
        for what, obj, _, _ in cases[:3]:
            try:
                decrypt(obj, keys)
                check(f"reference refuses: {what}", False, "accepted")
            except (InvalidTag, ValueError):
                pass
        for what, obj, status, msg in cases:
            if os.path.exists(path("pt")):
                os.remove(path("pt"))
            with open(path("ct"), "wb") as f:
                f.write(obj)
            r = run("decrypt", ring, path("ct"), path("pt"))
            check(f"drd refuses: {what}", r.returncode == status and msg in r.stderr,
                  f"exit {r.returncode}: {r.stderr.strip()}")
            check(f"drd wrote nothing for: {what}", not os.path.exists(path("pt")))
    finally:
        shutil.rmtree(tmp)
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)


if __name__ == "__main__":
    main()
