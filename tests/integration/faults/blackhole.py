#!/usr/bin/env python3
"""blackhole.py: a TCP proxy that can black-hole its connections, for the test of how drd notices
a peer that stops answering without closing (tests/integration/replicate_blackhole.sh).

usage: blackhole.py PORT_FILE TARGET_HOST:PORT [RATE]
  Listens on a free 127.0.0.1 port, writes it to PORT_FILE, forwards every connection to TARGET.
  RATE (bytes per second): answers from TARGET are forwarded no faster than that, per connection
  (a slow link, so that a test can watch a long transfer: tests/integration/progress.sh).
  SIGUSR1: every connection open at that moment stops forwarding in both directions and is kept
  open (nothing is read, nothing is sent, nothing is closed): a black hole. Connections made
  afterwards are forwarded normally. Each black-holed connection is logged to stderr.
It listens on 127.0.0.1 only and runs until killed (the harness stops it by PID).
"""
import os
import signal
import socket
import sys
import threading
import time

lock = threading.Lock()
conns = []  # [client, upstream, holed(Event)]


def pump(src, dst, holed, rate=0):
    piece = max(1024, rate // 20) if rate else 65536
    try:
        while not holed.is_set():
            data = src.recv(piece)
            if not data or holed.is_set():
                break
            dst.sendall(data)
            if rate:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    if not holed.is_set():
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def on_usr1(signum, frame):
    with lock:
        for c in conns:
            if not c[2].is_set():
                c[2].set()
                print("black-holed a connection", file=sys.stderr, flush=True)


def main():
    port_file, target = sys.argv[1], sys.argv[2]
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    host, port = target.rsplit(":", 1)
    signal.signal(signal.SIGUSR1, on_usr1)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(tmp, port_file)
    while True:
        try:
            c, _ = ls.accept()
        except InterruptedError:
            continue
        try:
            u = socket.create_connection((host, int(port)))
        except OSError:
            c.close()
            continue
        holed = threading.Event()
        with lock:
            conns.append([c, u, holed])
        threading.Thread(target=pump, args=(c, u, holed), daemon=True).start()
        threading.Thread(target=pump, args=(u, c, holed, rate), daemon=True).start()


main()
