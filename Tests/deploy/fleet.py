#!/usr/bin/env python3
"""Tests/deploy/fleet.py BIN - a fleet of vigil-demo processes on one
socket, started and restarted the way deploy/systemd/vigil.socket and
vigil@.service tell systemd to, under load:

  - the socket: ListenStream= (its port rewritten to a free one) and
    Backlog= from vigil.socket, bound and held by this script as systemd
    holds it;
  - each instance: ExecStart= from vigil@.service (the binary path
    rewritten to BIN), the socket as fd 3, LISTEN_FDS=1 and LISTEN_PID set
    to the instance's pid, as systemd passes it (Sockets=);
  - a restart: KillSignal= (SIGTERM), wait for the exit (at most
    TimeoutStopSec=), start the instance again, as `systemctl restart`.

While wrk keeps 32 keep-alive connections busy and a second client opens a
new connection per request, every instance is restarted in turn, ROUNDS
times. Passes when wrk saw no socket error and no non-2xx answer, the
per-request-connection client no failure, and every stopped instance
exited 0 within TimeoutStopSec. Prints the figures. Loopback only; kills
what it started on every path.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UNITS = os.path.join(ROOT, "deploy", "systemd")
INSTANCES = int(os.environ.get("FLEET_INSTANCES", "2"))
ROUNDS = int(os.environ.get("FLEET_ROUNDS", "2"))


def unit_values(path):
    values = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            values.setdefault(k.strip(), []).append(v.strip())
    return values


def seconds(value):
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    if not m:
        raise ValueError("unsupported time span %r" % value)
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def install_wrk():
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def verify_units(binary):
    """systemd-analyze verify on the two unit files (the binary path
    rewritten to one that exists), when systemd's tools are installed
    (Tests/deploy/restart.sh installs them)."""
    if not shutil.which("systemd-analyze"):
        print("# systemd-analyze not installed: unit files not verified")
        return []
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        for name, dest in (("vigil.socket", "vigil.socket"), ("vigil@.service", "vigil@1.service")):
            text = open(os.path.join(UNITS, name)).read().replace("/usr/local/bin/vigil-demo", binary)
            open(os.path.join(d, dest), "w").write(text)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", "vigil.socket", "vigil@1.service"],
                           cwd=d, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        return ["systemd-analyze verify: " + (r.stderr.strip() or "exit %d" % r.returncode)]
    print("ok - systemd-analyze verify: vigil.socket and vigil@.service are valid units")
    return []


def main():
    install_wrk()
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/release/vigil-demo")
    sock_unit = unit_values(os.path.join(UNITS, "vigil.socket"))
    svc_unit = unit_values(os.path.join(UNITS, "vigil@.service"))
    listen = sock_unit["ListenStream"][0]
    host = listen.rpartition(":")[0] or "0.0.0.0"
    backlog = int(sock_unit.get("Backlog", ["4096"])[0])
    argv = svc_unit["ExecStart"][0].split()
    argv[0] = binary
    assert svc_unit["KillSignal"][0] == "SIGTERM"
    stop_timeout = seconds(svc_unit["TimeoutStopSec"][0])
    assert svc_unit["Sockets"][0] == "vigil.socket"

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, 0))
    lsock.listen(backlog)
    port = lsock.getsockname()[1]
    print("# fleet: %d instances of %s on %s:%d (socket held like vigil.socket, backlog %d)"
          % (INSTANCES, " ".join(argv), host, port, backlog), flush=True)

    procs = {}
    failures = verify_units(binary)

    def start(i):
        def child():
            # After fork, before exec; close_fds=False below, or Python
            # would close fd 3 after this runs.
            os.dup2(lsock.fileno(), 3)
            os.set_inheritable(3, True)
        env = dict(os.environ, LISTEN_FDS="1")
        # LISTEN_PID is the instance's own pid: the shell sets it and execs.
        p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"'] + argv,
                             env=env, preexec_fn=child, close_fds=False,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs[i] = p

    def stop(i):
        p = procs.pop(i)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            failures.append("instance %d did not exit within TimeoutStopSec=%ds" % (i, stop_timeout))
            return
        if rc != 0:
            failures.append("instance %d exited %d: %s" % (i, rc, p.stderr.read().decode()[-500:]))

    def ready(deadline):
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if b"200 OK" in s.recv(4096):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    wrk = per_conn = None
    stop_flag = threading.Event()
    try:
        for i in range(INSTANCES):
            start(i)
        if not ready(time.monotonic() + 10):
            print("not ok - the fleet did not start")
            return 1
        # Let every instance reach its accept loop before the load starts.
        time.sleep(0.5)
        duration = 4 + ROUNDS * INSTANCES * 2
        wrk = subprocess.Popen(["wrk", "-t1", "-c32", "-d%ds" % duration, "http://%s:%d/" % (host, port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        counts = {"ok": 0, "failed": 0, "first": None}

        def per_connection():
            # A new connection per request, as health checkers and many
            # clients do: the ones that meet a restarting instance's queue.
            while not stop_flag.is_set():
                try:
                    with socket.create_connection((host, port), timeout=5) as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                        data = b""
                        while True:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            data += chunk
                    if data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, World!"):
                        counts["ok"] += 1
                    else:
                        raise ValueError("answer %r" % data[:60])
                except Exception as e:  # noqa: BLE001 - counted and reported
                    counts["failed"] += 1
                    counts["first"] = counts["first"] or repr(e)

        per_conn = threading.Thread(target=per_connection, daemon=True)
        per_conn.start()
        time.sleep(2)
        restarts = 0
        for _ in range(ROUNDS):
            for i in range(INSTANCES):
                stop(i)   # systemctl restart: stop, then start
                start(i)
                restarts += 1
                time.sleep(1)
        out, _ = wrk.communicate(timeout=duration + 30)
        out = out.decode()
        stop_flag.set()
        per_conn.join(10)
        reqs = re.search(r"(\d+) requests in", out)
        errs = re.search(r"Socket errors:.*", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        print("# %d restarts during %d s of load: wrk %s requests, %s, %s; one connection per request: %d ok, %d failed"
              % (restarts, duration, reqs.group(1) if reqs else "?",
                 errs.group(0) if errs else "0 socket errors",
                 "%s non-2xx" % non2xx.group(1) if non2xx else "0 non-2xx",
                 counts["ok"], counts["failed"]), flush=True)
        if not reqs:
            failures.append("wrk printed no result: " + out[-300:])
        if errs:
            failures.append("wrk: " + errs.group(0))
        if non2xx:
            failures.append("wrk: %s non-2xx answers" % non2xx.group(1))
        if counts["failed"]:
            failures.append("%d per-connection requests failed, first: %s" % (counts["failed"], counts["first"]))
        if counts["ok"] == 0:
            failures.append("the per-connection client got no answer")
    finally:
        stop_flag.set()
        if wrk and wrk.poll() is None:
            wrk.kill()
        if per_conn is not None and per_conn.is_alive():
            per_conn.join(10)
        for i in list(procs):
            stop(i)
        lsock.close()
    for f in failures:
        print("not ok - " + f)
    if not failures:
        print("ok - a rolling restart of the fleet under load lost nothing")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
