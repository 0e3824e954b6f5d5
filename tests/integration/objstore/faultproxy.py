#!/usr/bin/env python3
"""faultproxy.py: an HTTP proxy in front of a real S3 server that injects faults, for the retry,
resume and timeout tests of drd's S3 client (tests/integration/objstore_s3.sh).

usage: faultproxy.py PORT_FILE TARGET_HOST:PORT RULE...
  Listens on a free 127.0.0.1 port, writes it to PORT_FILE, forwards to TARGET.
  RULE is ACTION:COUNT:REGEX: the first COUNT requests whose request line ("PUT /b/k?x HTTP/1.1")
  matches REGEX get ACTION instead of the server's answer:
    slowdown   503 with an S3 <Error><Code>SlowDown</Code>
    error500   500 with <Code>InternalError</Code>
    close      the connection is closed without an answer
    stall      no answer at all (the client must time out)
    cut=N      forwarded, but the connection is closed after N bytes of the answer
  Every other request is forwarded unchanged. Each forwarded request gets "Connection: close"
  (not a signed header), so a connection carries one request and every request is inspected.
  Each injected fault is logged to stderr as "fault ACTION REQUEST-LINE".

It listens on 127.0.0.1 only and runs until killed (the harness stops it by PID).
"""
import os
import re
import socket
import sys
import threading

lock = threading.Lock()


class Rule:
    def __init__(self, spec):
        action, count, regex = spec.split(":", 2)
        self.action = action
        self.count = int(count)
        self.regex = re.compile(regex)


def take_rule(rules, reqline):
    with lock:
        for r in rules:
            if r.count > 0 and r.regex.search(reqline):
                r.count -= 1
                return r
    return None


def error_answer(status, reason, code):
    body = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
            "<Message>injected by faultproxy</Message></Error>" % code).encode()
    return (("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
             "Connection: close\r\n\r\n") % (status, reason, len(body))).encode() + body


def pipe(src, dst, limit=None):
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if limit is not None and sent + len(data) >= limit:
                dst.sendall(data[: limit - sent])
                break
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def handle(c, target, rules):
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = c.recv(65536)
            if not chunk:
                c.close()
                return
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        reqline = lines[0].decode("latin-1")
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.strip().lower()] = v.strip().lower()
        rule = take_rule(rules, reqline)
        if rule and not rule.action.startswith("cut="):
            print("fault %s %s" % (rule.action, reqline), file=sys.stderr, flush=True)
            if rule.action == "stall":
                while c.recv(65536):
                    pass
                c.close()
                return
            if hdrs.get(b"expect") != b"100-continue":
                need = int(hdrs.get(b"content-length", b"0"))
                while len(rest) < need:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
            if rule.action == "slowdown":
                c.sendall(error_answer(503, "Slow Down", "SlowDown"))
            elif rule.action == "error500":
                c.sendall(error_answer(500, "Internal Server Error", "InternalError"))
            c.close()
            return
        limit = None
        if rule:
            limit = int(rule.action[4:])
            print("fault %s %s" % (rule.action, reqline), file=sys.stderr, flush=True)
        kept = [l for l in lines[1:] if not l.lower().startswith(b"connection:")]
        s = socket.create_connection(target)
        s.sendall(b"\r\n".join([lines[0]] + kept + [b"Connection: close", b""]) + b"\r\n" + rest)
        t = threading.Thread(target=pipe, args=(c, s), daemon=True)
        t.start()
        pipe(s, c, limit)
        t.join(timeout=5)
    except OSError:
        pass
    finally:
        c.close()


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: faultproxy.py PORT_FILE TARGET_HOST:PORT RULE...")
    host, port = sys.argv[2].rsplit(":", 1)
    target = (host, int(port))
    rules = [Rule(r) for r in sys.argv[3:]]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c, target, rules), daemon=True).start()


if __name__ == "__main__":
    main()
