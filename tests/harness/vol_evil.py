#!/usr/bin/env python3
"""vol_evil.py: a hostile source for the volume replication tests. Speaks drd's volume protocol
(replicate/volume/vol_int.h) over TLS 1.3 with a client certificate, and tries to make the
destination write outside its root. Prints one line per scenario: "NAME: <how the server
answered>" ("ERROR <text>" when it refused, "DONE" / other message types when it went along).

  vol_evil.py HOST PORT CA CERT KEY OUTSIDE SCENARIO...
"""
import hashlib
import socket
import ssl
import struct
import sys
import time

host, port, ca, cert, key, outside = sys.argv[1:7]
scenarios = sys.argv[7:]


def s16(b):
    return struct.pack(">H", len(b)) + b


def entry(kind, path, target=b"", size=0, mode=0o644, mtime=1600000000):
    return (kind + struct.pack(">IIIQIQ", mode, 0, 0, mtime, 0, size) + s16(path) +
            s16(target) + b"\0")


class Conn:
    def __init__(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(ca)
        ctx.load_cert_chain(cert, key)
        raw = socket.create_connection((host, int(port)), timeout=20)
        self.s = ctx.wrap_socket(raw, server_hostname=host)

    def send(self, t, payload=b""):
        self.s.sendall(t + struct.pack(">I", len(payload)) + payload)

    def send_raw(self, b):
        self.s.sendall(b)

    def recv(self):
        h = b""
        while len(h) < 5:
            c = self.s.recv(5 - len(h))
            if not c:
                return "CLOSED", b""
            h += c
        n = struct.unpack(">I", h[1:])[0]
        body = b""
        while len(body) < n:
            c = self.s.recv(n - len(body))
            if not c:
                return "CLOSED", body
            body += c
        return h[:1].decode(), body

    def hello(self, name=b"evil"):
        self.send(b"H", struct.pack(">II", 2, 0) + s16(name))
        return self.recv()

    def ask(self, payload, t=b"N"):
        """sends a message and returns the answer as text"""
        self.send(t, payload)
        typ, body = self.recv()
        if typ == "E":
            return "ERROR " + body[1:].decode(errors="replace")  # after the error number
        return {"u": "DONE", "w": "WANT_WHOLE", "d": "WANT_DELTA", "q": "DIR_DONE",
                "c": "PUBLISHED"}.get(typ, typ)


def root(c):
    return c.ask(entry(b"d", b"", mode=0o755))


def run(name):
    c = Conn()
    typ, _ = c.hello()
    if typ != "h":
        return "no hello: " + typ
    r = root(c)
    if r != "DONE":
        return "root: " + r
    ob = outside.encode()
    if name == "dotdot":
        return c.ask(entry(b"f", b"../evil", size=4))
    if name == "dotdot-deep":
        return c.ask(entry(b"f", b"a/../../evil", size=4))
    if name == "absolute":
        return c.ask(entry(b"f", ob + b"/evil", size=4))
    if name == "nul":
        return c.ask(entry(b"f", b"ok\0evil", size=4))
    if name == "symlink-parent":
        r = c.ask(entry(b"l", b"esc", target=ob))
        if r != "DONE":
            return "symlink: " + r
        return c.ask(entry(b"f", b"esc/evil", size=4))
    if name == "hardlink-through-symlink":
        r = c.ask(entry(b"l", b"esc2", target=ob))
        if r != "DONE":
            return "symlink: " + r
        return c.ask(entry(b"h", b"stolen", target=b"esc2/secret"))
    if name == "publish-symlink":
        # a complete sync whose tree has a symlink out of the root: stored, never followed
        r = c.ask(entry(b"l", b"esc", target=ob))
        if r != "DONE":
            return "symlink: " + r
        c.send(b"Q", s16(b""))
        typ, _ = c.recv()
        while typ == "x":  # names of earlier scenarios, deleted as extraneous
            typ, _ = c.recv()
        if typ != "q":
            return "dir end: " + typ
        return c.ask(struct.pack(">QQ", 0, 0), t=b"C")
    if name == "dir-over-symlink":
        # the previous sync left esc -> outside; a directory esc with a file in it must land in
        # the root, the symlink replaced, never followed
        r = c.ask(entry(b"d", b"esc", mode=0o755))
        if r != "DONE":
            return "dir: " + r
        r = c.ask(entry(b"f", b"esc/evil", size=4))
        if r != "WANT_WHOLE":
            return "file: " + r
        c.send(b"D", struct.pack(">QBI", 0, 0, 4) + b"evil")
        return c.ask(b"\0", t=b"e")
    if name == "data-beyond-size":
        r = c.ask(entry(b"f", b"f", size=4))
        if r != "WANT_WHOLE":
            return "file: " + r
        c.send(b"D", struct.pack(">QBI", 2, 0, 4) + b"evil")
        return c.ask(b"\0", t=b"e")
    if name == "delta-mismatch":
        # a delta whose result is not the file the source announces (as a strong-sum collision
        # would make it): the destination asks for the file whole, and takes it
        r = c.ask(entry(b"f", b"dm", size=8))
        if r != "WANT_WHOLE":
            return "first: " + r
        c.send(b"D", struct.pack(">QBI", 0, 0, 8) + b"abcdefgh")
        r = c.ask(b"\0", t=b"e")
        if r != "DONE":
            return "first end: " + r
        c.s.close()
        for _ in range(100):  # until the server has seen the close and let go of the volume
            c = Conn()
            if c.hello()[0] == "h":
                break
            time.sleep(0.1)
        root(c)
        r = c.ask(entry(b"f", b"dm", size=8, mtime=1600000001))
        if r != "WANT_DELTA":
            return "second: " + r
        # a sum for the one chunk that is not the destination's (the key is the destination's
        # secret: any 16 bytes will do), then the runs and signature come back
        c.send(b"K", bytes(16))
        c.send(b"k")
        typ, body = c.recv()
        if typ != "R" or body != struct.pack(">II", 0, 1):
            return "runs: " + typ
        typ, _ = c.recv()
        while typ == "S":
            typ, _ = c.recv()
        if typ != "Z":
            return "signature: " + typ
        delta = struct.pack(">I", 0x72730236) + b"\x08" + b"XXXXXXXX" + b"\0"
        c.send(b"X", struct.pack(">BI", 0, len(delta)) + delta)
        r = c.ask(b"\1" + hashlib.sha256(b"12345678").digest(), t=b"e")
        if r != "WANT_WHOLE":
            return "after a wrong delta: " + r
        c.send(b"D", struct.pack(">QBI", 0, 0, 8) + b"12345678")
        return "WANT_WHOLE, then " + c.ask(b"\0", t=b"e")
    if name == "huge-frame":
        c.send_raw(b"N" + struct.pack(">I", 0x7FFFFFFF))
        typ, body = c.recv()
        return ("ERROR " + body[1:].decode(errors="replace")) if typ == "E" else typ
    if name == "out-of-order":
        return c.ask(entry(b"f", b"nodir/evil", size=4))
    if name == "complete-early":
        return c.ask(struct.pack(">QQ", 0, 0), t=b"C")
    return "unknown scenario"


for sc in scenarios:
    try:
        print(f"{sc}: {run(sc)}", flush=True)
    except (OSError, ssl.SSLError) as e:
        print(f"{sc}: connection error {e}", flush=True)
