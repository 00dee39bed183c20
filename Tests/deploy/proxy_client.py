#!/usr/bin/env python3
"""Clients for Tests/deploy/proxies.sh: talk to a proxy in front of
vigil-demo, and check what reached the demo through its own port.

  abort  --proxy P --direct D --mode fin|rst [--trials N] [--expect none]
         A GET /wait through the proxy; once the demo runs it, the client
         closes (FIN) or resets (RST, SO_LINGER 0) its connection to the
         proxy. The demo records when its handler saw the cancellation
         (GET /cancels, CLOCK_REALTIME ns); prints the latency from the
         client's close to the handler's cancellation per trial.
         --expect none: the handler must NOT be cancelled within 2 s.
  count  --proxy P --direct D --conns C --requests K
         K GETs over C keep-alive connections to the proxy, every one
         answered 200; the demo's requests_total must grow by exactly K
         (plus the /stats calls themselves): no request lost, none served
         twice (a proxy retrying a request it had already sent).

Every wait is bounded; exit status 1 on any failure.
"""
import argparse
import socket
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
BOUND = 5.0  # seconds: the longest any single wait may take


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def read_response(sock, deadline):
    """One HTTP/1.1 response with Content-Length or chunked framing.
    Returns (status, body bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if b"content-length" in fields:
        n = int(fields[b"content-length"])
        while len(rest) < n:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the body")
            rest += chunk
        return status, rest[:n]
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed inside a chunked body")
                rest += chunk
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed inside a chunk")
                rest += chunk
            if size == 0:
                return status, body
            body += rest[:size]
            rest = rest[size + 2:]
    raise ConnectionError("response without length")


def get(port, path):
    deadline = time.monotonic() + BOUND
    with socket.create_connection((HOST, port), timeout=BOUND) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return read_response(s, deadline)


def stats(direct):
    status, body = get(direct, "/stats")
    if status != 200:
        fail("GET /stats answered %d" % status)
    out = {}
    for line in body.decode().splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v)
    return out


def cancels(direct):
    status, body = get(direct, "/cancels")
    if status != 200:
        fail("GET /cancels answered %d" % status)
    return [int(x) for x in body.decode().split()]


def abort(args):
    latencies = []
    for trial in range(args.trials):
        # The previous trial's request may still be finishing.
        deadline = time.monotonic() + BOUND
        while stats(args.direct)["requests_live"] > 1:
            if time.monotonic() > deadline:
                fail("a request is still live in the demo before trial %d" % trial)
            time.sleep(0.01)
        before = len(cancels(args.direct))
        s = socket.create_connection((HOST, args.proxy), timeout=BOUND)
        s.sendall(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        # Wait until the demo runs the handler: requests_live counts the
        # /wait request and the /stats request asking.
        deadline = time.monotonic() + BOUND
        while stats(args.direct)["requests_live"] < 2:
            if time.monotonic() > deadline:
                fail("the request never reached the demo through the proxy")
            time.sleep(0.01)
        if args.mode == "rst":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        closed_at = time.time_ns()
        s.close()
        wait = 2.0 if args.expect == "none" else BOUND
        deadline = time.monotonic() + wait
        seen = None
        while time.monotonic() < deadline:
            got = cancels(args.direct)
            if len(got) > before:
                seen = got[before]
                break
            time.sleep(0.005)
        if args.expect == "none":
            if seen is not None:
                fail("trial %d: the handler was cancelled, expected it not to be" % trial)
            print("trial %d (%s): not cancelled within %.0f s, as expected" % (trial, args.mode, wait))
            continue
        if seen is None:
            fail("trial %d (%s): the handler was not cancelled within %.0f s" % (trial, args.mode, wait))
        latencies.append((seen - closed_at) / 1e6)
    if latencies:
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        print("%s: handler cancelled in every trial (%d); client close -> handler: p50 %.2f ms, max %.2f ms"
              % (args.mode, len(latencies), p50, latencies[-1]), flush=True)


def count(args):
    before = stats(args.direct)["requests_total"]
    per = [args.requests // args.conns] * args.conns
    for i in range(args.requests % args.conns):
        per[i] += 1
    errors = []
    done = [0]
    lock = threading.Lock()

    def worker(n):
        deadline = time.monotonic() + 60
        try:
            s = socket.create_connection((HOST, args.proxy), timeout=BOUND)
            for _ in range(n):
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                status, body = read_response(s, min(deadline, time.monotonic() + BOUND))
                if status != 200 or body != b"Hello, World!":
                    raise ValueError("status %d body %r" % (status, body[:40]))
                with lock:
                    done[0] += 1
            s.close()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    if any(t.is_alive() for t in threads):
        fail("a client thread did not finish")
    if errors:
        fail("%d connections failed, first: %s" % (len(errors), errors[0]))
    # The second /stats call counts itself (the first one's count is in
    # `before`): exactly one more than the clients' requests.
    served = stats(args.direct)["requests_total"] - before - 1
    print("count: %d requests over %d connections, %d answered 200, the demo served %d"
          % (args.requests, args.conns, done[0], served), flush=True)
    if done[0] != args.requests:
        fail("only %d of %d requests answered" % (done[0], args.requests))
    if served != args.requests:
        fail("the demo served %d requests for %d sent (lost or served twice)" % (served, args.requests))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("abort")
    a.add_argument("--proxy", type=int, required=True)
    a.add_argument("--direct", type=int, required=True)
    a.add_argument("--mode", choices=["fin", "rst"], required=True)
    a.add_argument("--trials", type=int, default=5)
    a.add_argument("--expect", choices=["cancel", "none"], default="cancel")
    c = sub.add_parser("count")
    c.add_argument("--proxy", type=int, required=True)
    c.add_argument("--direct", type=int, required=True)
    c.add_argument("--conns", type=int, default=16)
    c.add_argument("--requests", type=int, default=4000)
    args = p.parse_args()
    abort(args) if args.cmd == "abort" else count(args)


if __name__ == "__main__":
    main()
