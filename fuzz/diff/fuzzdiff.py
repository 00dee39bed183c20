#!/usr/bin/env python3
"""fuzzdiff.py - differential framing fuzzer: Vigil against Go net/http and
Node http (llhttp 9). See fuzz/README.md, "Differential framing fuzzer".

  fuzzdiff.py fuzz  --seconds N [--seed S]     generate, compare, report
  fuzzdiff.py cases FILE.jsonl...               the case suites
  fuzzdiff.py one   --file F [--splits 3,10]    one input, print outcomes
  fuzzdiff.py repro DIR                         a finding directory again

Servers: started from --bin (.build-fuzz-diff) on free loopback ports and
always stopped (SIGTERM, then SIGKILL after 3 s; they also die with this
process: PR_SET_PDEATHSIG), or given with --addr vigil=P,go=P,node=P.
Exit status: 0 no finding, 1 findings, 2 usage or setup error.
Python 3 standard library only.
"""
import argparse
import ctypes
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ("vigil", "go", "node")

# ---------------------------------------------------------------------------
# servers


def _pdeathsig():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Servers:
    """The three report servers; stop() is bounded and idempotent."""

    def __init__(self, bindir, logdir, node="node"):
        self.procs = {}
        os.makedirs(logdir, exist_ok=True)
        self.ports = {}
        cmds = {
            "vigil": [os.path.join(bindir, "vigil_report"), "--port", "0"],
            "go": [os.path.join(bindir, "vigil-diff-go"), "--port", "0"],
            "node": [node, os.path.join(HERE, "report.js"), "--port", "0"],
        }
        try:
            for name, cmd in cmds.items():
                # stderr kept: a sanitizer report of the Vigil server lands there.
                with open(os.path.join(logdir, "%s.stderr" % name), "ab") as err:
                    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL, preexec_fn=_pdeathsig)
                self.procs[name] = p
            deadline = time.monotonic() + 10
            for name, p in self.procs.items():
                line = b""
                while not line.endswith(b"\n"):
                    left = deadline - time.monotonic()
                    if left <= 0 or p.poll() is not None:
                        raise RuntimeError("%s report server did not start" % name)
                    r, _, _ = select.select([p.stdout], [], [], left)
                    if r:
                        c = os.read(p.stdout.fileno(), 1)
                        if not c:
                            raise RuntimeError("%s report server exited" % name)
                        line += c
                m = re.match(rb"listening (\d+)", line)
                if not m:
                    raise RuntimeError("%s: unexpected %r" % (name, line))
                self.ports[name] = int(m.group(1))
        except BaseException:
            self.stop()
            raise

    def alive(self):
        return all(p.poll() is None for p in self.procs.values())

    def dead(self):
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.terminate()
                except OSError:
                    pass
        deadline = time.monotonic() + 3
        for p in self.procs.values():
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(2)
        self.procs = {}


# ---------------------------------------------------------------------------
# one connection


def exchange(port, data, splits=(), pause=0.005, quiet=0.03, fin_wait=2.0, conn_timeout=2.0):
    """Send `data` (cut at `splits`, `pause` between the pieces) on a fresh
    connection, read until nothing arrives for `quiet` seconds or the server
    closes, then shutdown(SHUT_WR) and read until close (at most fin_wait).
    Returns dict(pre=bytes, post=bytes, closed_before_fin, fin_timeout,
    reset). Every socket operation is bounded."""
    s = socket.create_connection(("127.0.0.1", port), timeout=conn_timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pre = bytearray()
    post = bytearray()
    res = {"closed_before_fin": False, "fin_timeout": False, "reset": False, "send_error": None}

    def drain(buf, wait, until_close, bound):
        """Read into buf; returns 'closed', 'quiet' or 'timeout'."""
        end = time.monotonic() + bound
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return "timeout"
            r, _, _ = select.select([s], [], [], min(left, wait) if not until_close else left)
            if not r:
                if until_close:
                    return "timeout"
                return "quiet"
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                res["reset"] = True
                return "closed"
            except socket.timeout:
                continue
            if not chunk:
                return "closed"
            buf += chunk

    try:
        cuts = [0] + sorted(set(c for c in splits if 0 < c < len(data))) + [len(data)]
        state = None
        for i in range(len(cuts) - 1):
            try:
                s.sendall(data[cuts[i]:cuts[i + 1]])
            except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
                res["send_error"] = type(e).__name__
                break
            if i < len(cuts) - 2 and pause > 0:
                state = drain(pre, pause, False, pause)
                if state == "closed":
                    break
        if state != "closed":
            state = drain(pre, quiet, False, 5.0)
        if state == "closed":
            res["closed_before_fin"] = True
        else:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            st = drain(post, fin_wait, True, fin_wait)
            res["fin_timeout"] = st == "timeout"
    finally:
        s.close()
    res["pre"] = bytes(pre)
    res["post"] = bytes(post)
    return res


# ---------------------------------------------------------------------------
# responses -> outcome


def parse_responses(buf):
    """Split a byte stream of responses. Returns (list of dicts, rest)."""
    out = []
    pos = 0
    while pos < len(buf):
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = buf[pos:end].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/(\d\.\d) (\d{3})", head[0])
        if not m:
            break
        status = int(m.group(2))
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs.setdefault(k.strip().lower(), v.strip())
        body_start = end + 4
        report = None
        if "x-report" in hdrs:
            try:
                report = json.loads(hdrs["x-report"])
            except ValueError:
                report = None
        if 100 <= status < 200 or status in (204, 304) or (report and report.get("method") == "HEAD"):
            body_end = body_start
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            p = body_start
            ok = False
            while True:
                e = buf.find(b"\r\n", p)
                if e < 0:
                    break
                try:
                    n = int(buf[p:e].split(b";")[0], 16)
                except ValueError:
                    break
                p = e + 2 + n + 2
                if n == 0:
                    ok = True
                    break
            if not ok:
                body_end = len(buf)
            else:
                body_end = p
        elif "content-length" in hdrs:
            try:
                body_end = body_start + int(hdrs["content-length"])
            except ValueError:
                body_end = len(buf)
        else:
            body_end = len(buf)  # until close
        conn = [t.strip().lower() for t in hdrs.get("connection", "").split(",")]
        if m.group(1) == "1.0":
            keep = "keep-alive" in conn
        else:
            keep = "close" not in conn
        out.append({"status": status, "version": m.group(1), "headers": hdrs, "report": report, "keep": keep,
                    "end": min(body_end, len(buf)), "start": pos})
        pos = min(body_end, len(buf))
    return out, buf[pos:]


def outcome(res):
    """The normalized outcome of one exchange:
    {"reports": [[method, target, version, body_len, sha256-prefix, keep]...],
     "end": "rejected S" | "closed" | "open" | "upgrade" | "garbage" | "hang"}"""
    buf = res["pre"] + res["post"]
    npre = len(res["pre"])
    resps, rest = parse_responses(buf)
    reports = []
    end = None
    error = None
    notes = []
    for r in resps:
        if 100 <= r["status"] < 200:
            continue
        rep = r["report"]
        if rep is None and r["status"] == 200 and r["headers"].get("content-length") == "0":
            # Go answers `OPTIONS *` itself (net/http's globalOptionsHandler)
            # without calling the handler: no report, an empty 200.
            if r["start"] >= npre:
                # It reads the body first and answers at EOF even when the
                # body was cut short by our FIN: an incomplete message, not
                # a request read (as the error answers below).
                notes.append("after FIN: OPTIONS * answered")
                end = "open"
                break
            rep = {"method": "OPTIONS", "target": "*", "version": r["version"],
                   "body_len": None, "sha256": ""}
        if rep is not None and r["status"] == 200:
            if rep.get("upgrade"):
                reports.append([rep["method"], rep["target"], rep["version"], None, None, None])
                end = "upgrade"
                break
            if rep["method"] == "OPTIONS" and rep["target"] == "*":
                rep = dict(rep, body_len=None, sha256="")  # see above: not comparable
            reports.append([rep["method"], rep["target"], rep["version"], rep["body_len"],
                            rep["sha256"][:16], r["keep"]])
            continue
        if r["start"] >= npre:
            # An answer only after our FIN: how a server ends an incomplete
            # message at EOF, not a reading of the bytes (README).
            notes.append("after FIN: %d" % r["status"])
            end = "open"
        else:
            end = "rejected %d" % r["status"]
            error = r["headers"].get("x-error")
        break
    if end is None:
        if rest.strip():
            end = "garbage"
            notes.append("unparsed %r" % rest[:80])
        elif res["closed_before_fin"]:
            end = "closed"
        else:
            end = "open"
    if res["fin_timeout"]:
        notes.append("no close within the bound after FIN")
    return {"reports": reports, "end": end, "notes": notes, "error": error}


def key(o):
    """What is compared: reports then end (notes are not)."""
    return (tuple(tuple(r) for r in o["reports"]), o["end"])


def truncate_upgrade(outs):
    """A CONNECT or Upgrade request ends the comparison where any server
    saw one: only method, target and version of that request count."""
    k = None
    for o in outs.values():
        for i, r in enumerate(o["reports"]):
            if r[3] is None or r[0] == "CONNECT":
                k = i if k is None else min(k, i)
                break
    if k is None:
        return outs
    t = {}
    for n, o in outs.items():
        reps = [list(r) for r in o["reports"][:k + 1]]
        if len(reps) == k + 1:
            reps[k] = reps[k][:3] + [None, None, None]
            t[n] = {"reports": reps, "end": "upgrade", "notes": o["notes"], "error": None}
        else:
            t[n] = {"reports": reps, "end": o["end"], "notes": o["notes"], "error": o.get("error")}
    return t


# ---------------------------------------------------------------------------
# comparison


def is_reject(o):
    return o["end"].startswith("rejected")


def stops(o):
    """The connection ends by the server's decision: a rejection, a close,
    or a last answer with Connection: close."""
    return is_reject(o) or o["end"] == "closed" or (o["reports"] and o["reports"][-1][5] is False)


def conservative(a, b):
    """True when outcome `a` reads strictly less of the stream than `b`
    and then stops: a's requests are b's first ones (the last may say
    close where b's says keep-alive), and a rejects or closes where b reads
    on. A server that waits for more bytes (open) is not conservative: it
    reads what follows as part of the current request."""
    ar, br = a["reports"], b["reports"]
    if not stops(a) or len(ar) > len(br) or key(a) == key(b):
        return False
    if ar[:-1] != br[:len(ar) - 1] if ar else False:
        return False
    if ar:
        x, y = ar[-1], br[len(ar) - 1]
        if x != y and not (x[:5] == y[:5] and x[5] is False and y[5] is True):
            return False
    if len(ar) < len(br):
        return True
    # same requests: a rejects / closes where b stays open or closes later
    return not stops(b) or (is_reject(a) and not is_reject(b)) or (ar and ar[-1] != br[-1])


def rest_after(v, data):
    """The bytes after the requests Vigil read, found with Content-Length
    framing or plain chunked framing (None for anything else: extensions,
    trailers, other codings, lengths that do not fit): what a rule's "rest" pattern is matched against, for shapes a
    pattern on the whole input cannot place (a body that ends in CR, then LF)."""
    off = 0
    for r in v["reports"]:
        while data.startswith(b"\r\n", off):
            off += 2
        end = data.find(b"\r\n\r\n", off)
        if end < 0:
            return None
        head = data[off:end + 2].decode("latin-1")
        off = end + 4
        if re.search(r"(?im)^transfer-encoding[ \t]*:[ \t]*chunked[ \t]*\r?$", head):
            # Plain chunked framing only (size lines without extensions).
            while True:
                m = re.compile(rb"([0-9a-fA-F]+)\r\n").match(data, off)
                if not m:
                    return None
                size = int(m.group(1), 16)
                off = m.end()
                if size == 0:
                    break
                if data[off + size:off + size + 2] != b"\r\n":
                    return None
                off += size + 2
            if not data.startswith(b"\r\n", off):
                return None
            off += 2
            continue
        if re.search(r"(?im)^transfer-encoding", head):
            return None
        m = re.search(r"(?im)^content-length[ \t]*:[ \t]*([0-9]+)[ \t]*\r?$", head)
        n = int(m.group(1)) if m else 0
        if r[3] is not None and r[3] != n:
            return None
        off += n
    return data[off:].decode("latin-1")


def allowed(kind, v, data, allow, ref=None, who=None, node=None):
    """The id of the allowlist rule that covers this difference, or None.
    A rule's optional "report" ({"method"|"target"|"version": regex}) must
    fully match the first request Vigil read beyond the reference's."""
    text = data.decode("latin-1")
    vstatus = int(v["end"].split()[1]) if is_reject(v) else None
    extra = None
    if ref is not None and len(v["reports"]) > len(ref["reports"]):
        extra = v["reports"][len(ref["reports"])]
    for rule in allow:
        kinds = rule.get("kind", "stricter")
        if kind not in ([kinds] if isinstance(kinds, str) else kinds):
            continue
        if who is not None and rule.get("ref", who) != who:
            continue
        if rule.get("status") and vstatus not in rule["status"]:
            continue
        if rule.get("report"):
            if extra is None:
                continue
            fields = {"method": extra[0], "target": extra[1], "version": extra[2]}
            if not all(re.fullmatch(rx, fields[f], re.S) for f, rx in rule["report"].items()):
                continue
        if rule.get("node_error"):
            # Node's report server names llhttp's error (X-Error): the rule
            # holds only when Node refused for that reason.
            if node is None or not re.fullmatch(rule["node_error"], node.get("error") or ""):
                continue
        if rule.get("rest") is not None:
            # Matched at the start of the bytes after Vigil's requests.
            rest = rest_after(v, data)
            if rest is not None and re.match(rule["rest"], rest, re.S):
                return rule["id"]
            continue
        if re.search(rule["match"], text, re.S):
            return rule["id"]
    return None


def verdict(outs, data, allow):
    """None when Vigil reads the stream as the references do (the rules are
    in fuzz/README.md); else (kind, detail, allowlist rule id or None).
    Kinds:
      stricter  Vigil rejects where the (stricter) reference reads on, or
                closes (its last answer says close) where it keeps alive;
                a rule with "status" covers rejections only
      status    Vigil rejects at the same point with another status
      lenient   the references disagree, one stops earlier, and Vigil reads
                on like the other (a smuggling shape unless allowlisted)
      laxer     Vigil reads on where both references reject
      framing   any other difference (Vigil's reading is neither's)"""
    outs = truncate_upgrade(outs)
    v, g, n = outs["vigil"], outs["go"], outs["node"]
    kv = key(v)
    if key(g) == key(n):
        if kv == key(g):
            return None
        strict = lax = g
    elif conservative(g, n):
        strict, lax = g, n
    elif conservative(n, g):
        strict, lax = n, g
    else:
        # Two different readings: Vigil may take either.
        if kv == key(g) or kv == key(n):
            return None
        strict = lax = None
    if strict is not None and kv == key(strict):
        return None
    if lax is not None and kv == key(lax):
        kind = "lenient"
    elif strict is not None and conservative(v, strict) and stops(v):
        kind = "stricter"
    elif any(is_reject(r) and is_reject(v) and r["reports"] == v["reports"] for r in (g, n)):
        kind = "status"
    elif any(conservative(v, r) and is_reject(v) for r in (g, n)):
        kind = "stricter"
    elif all(is_reject(r) and (conservative(r, v) or r["reports"] == v["reports"]) for r in (g, n)):
        kind = "laxer"
    else:
        kind = "framing"
    rid = allowed(kind, v, data, allow, strict, node=n) if kind in ("stricter", "status", "lenient") else None
    if kind == "laxer":
        # Both references refuse, each for a reason of its own that a
        # lenient rule already answers (Go's 400 for an empty line first,
        # Node's for a method it does not list): Vigil reading on is each
        # rule applied to its reference. Allowed only when both are covered.
        ids = [allowed("lenient", v, data, allow, r, who, n) for r, who in ((g, "go"), (n, "node"))]
        if all(ids):
            rid = "+".join(dict.fromkeys(ids))
    if not rid and strict is not None and lax is not None and strict is not lax:
        # The conservative reference refused for a reason of its own that a
        # lenient rule answers (Go's 400 for an empty line first): judge
        # Vigil against the other reference alone.
        who = "go" if strict is g else "node"
        lid = allowed("lenient", v, data, allow, strict, who, n)
        if lid:
            sub = verdict(dict(outs, **{who: lax}), data, allow)
            if sub is None:
                rid = lid
            elif sub[1] == "allowed":
                rid = lid + "+" + sub[2]
            elif conservative(lax, v):
                # Vigil reads on where the other reference stops too: as for
                # laxer, allowed when a lenient rule answers that refusal.
                other = "node" if who == "go" else "go"
                lid2 = allowed("lenient", v, data, allow, lax, other, n)
                if lid2:
                    rid = lid + "+" + lid2
    if rid:
        return (kind, "allowed", rid)
    return (kind, diff_field(v, g, n), None)


def diff_field(v, g, n):
    """Where Vigil first differs from the nearer reference, for grouping."""
    best = None
    for ref in (g, n):
        vr, rr = v["reports"], ref["reports"]
        i = 0
        while i < min(len(vr), len(rr)) and vr[i] == rr[i]:
            i += 1
        if i < min(len(vr), len(rr)):
            names = ["method", "target", "version", "body", "body", "keep-alive"]
            f = next(names[j] for j in range(6) if vr[i][j] != rr[i][j])
            d = (i, "report %d %s" % (i, f))
        elif len(vr) != len(rr):
            d = (i, "request count %d/%d" % (len(vr), len(rr)))
        else:
            d = (i + 1, "end %s/%s" % (v["end"], ref["end"]))
        if best is None or d[0] > best[0]:
            best = d
    return best[1]


def signature(verd, outs):
    kind, detail, _ = verd
    cls = lambda o: re.sub(r"\d+", "N", o["end"]) if not is_reject(o) else o["end"]
    return "%s | %s | vigil %s | go %s | node %s" % (
        kind, re.sub(r"\d+", "N", detail), cls(outs["vigil"]), cls(outs["go"]), cls(outs["node"]))


def load_allow(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        rules = json.load(f)["rules"]
    for r in rules:
        re.compile(r["match"])
        for k in ("id", "match", "rule", "rfc"):
            if k not in r:
                raise ValueError("allowlist rule without %r: %r" % (k, r))
        for f, rx in r.get("report", {}).items():
            if f not in ("method", "target", "version"):
                raise ValueError("allowlist rule %s: report field %r" % (r["id"], f))
            re.compile(rx)
    return rules


class Runner:
    def __init__(self, ports, allow, quiet=0.03, pause=0.005):
        self.ports = ports
        self.allow = allow
        self.quiet = quiet
        self.pause = pause
        self.pool = ThreadPoolExecutor(max_workers=3 * 4)

    def run(self, data, splits=(), quiet=None, pause=None):
        q = self.quiet if quiet is None else quiet
        p = self.pause if pause is None else pause
        futs = {n: self.pool.submit(self._one, self.ports[n], data, splits, p, q) for n in SERVERS}
        raw = {n: f.result() for n, f in futs.items()}
        outs = {n: outcome(r) for n, r in raw.items()}
        return outs, raw

    @staticmethod
    def _one(port, data, splits, pause, quiet):
        try:
            return exchange(port, data, splits, pause, quiet)
        except OSError as e:  # connect refused / timed out: a dead server
            return {"pre": b"", "post": b"", "closed_before_fin": True, "fin_timeout": False,
                    "reset": True, "send_error": "connect: %s" % e}

    def check(self, data, splits=()):
        outs, raw = self.run(data, splits)
        v = verdict(outs, data, self.allow)
        if v is None or v[2] is not None:
            return v, outs, raw
        # Confirm with longer waits: a loaded machine can make a quiet gap
        # look like the end of the answers.
        for _ in range(2):
            outs2, raw2 = self.run(data, splits, quiet=0.25, pause=max(self.pause, 0.02))
            v2 = verdict(outs2, data, self.allow)
            if v2 is None or v2[2] is not None:
                return ("flaky",) + tuple(v[1:]), outs, raw
            outs, raw, v = outs2, raw2, v2
        return v, outs, raw


# ---------------------------------------------------------------------------
# inputs

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a?b=c HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n",
    b"PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz",
    b"GET /1 HTTP/1.0\r\n\r\n",
    b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"DELETE /d HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n\r\n",
]

WS = [b" ", b"\t", b"", b"  ", b"\x0b", b"\x0c", b"\r", b"\x00"]
CL_VALUES = [b"0", b"1", b"5", b"4", b"6", b"05", b"+5", b"-5", b"5 5", b"5,5", b"5, 5", b"5,6",
             b"0x5", b"5.0", b" 5", b"5\t", b"", b"99999999999999999999", b"1e1", b"\xa05"]
TE_VALUES = [b"chunked", b"Chunked", b"CHUNKED", b"chunked, chunked", b"gzip, chunked",
             b"chunked, gzip", b"identity", b"identity, chunked", b" chunked", b"chunked\t",
             b"chunked ", b"xchunked", b"chunk", b"\"chunked\"", b"chunked;q=1", b"gzip",
             b"chunked\r\n ", b"chunked,", b",chunked"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1",
            b"HTTP/1.1 ", b"HTTP/11", b"HTTP/1.01", b"HTTP/1", b"HTTP/9.9", b"HTTPS/1.1", b"RTSP/1.0"]
METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"PATCH", b"QUERY", b"get", b"G\x00T",
           b"MKCOLA", b"DELETE", b"TRACE", b"PRI", b"CONNECT", b"G ET", b"GET\t", b"SEARCH"]
TARGETS = [b"/", b"*", b"http://a/", b"http://a", b"a:80", b"/a b", b"/%00", b"/\x7f", b"//x",
           b"/?", b"/#f", b"/\xff", b"", b"/a\tb", b"HTTP://A/x"]
CHUNK_SIZES = [b"05", b"5 ", b"5\t", b"0x5", b"+5", b"-5", b"5;a=b", b"5;a=b;c=d", b"5;a", b"5 ;a=b",
               b"5;a=\"b\"", b"5;a=\"b;c\"", b"5; a=b", b"5;=", b"5;a=b c", b"000000000000000005",
               b"ffffffffffffffffff", b"5\r", b"5;\x00", b"A"]
HEADERS = [b"Connection: close", b"Connection: close\t", b"Connection: keep-alive", b"Connection:close",
           b"Connection: close, upgrade", b"Connection: Close", b"Content-Length: 0",
           b"Transfer-Encoding: chunked", b"Host: b", b"Host:", b"X: \x01", b"X : y", b" X: y",
           b"X\t: y", b"X: y\r\n z", b"X-Y: a\x80b", b"Content-Length : 5", b"Transfer-Encoding : chunked",
           b"Expect: 100-continue", b"Expect: nope", b"Trailer: T", b"X\x00: y", b":x", b"X:"]
JUNK = [b"\r\n", b"\n", b"\r", b" ", b"\t", b"\x00", b"0", b"1", b";", b":", b",", b"\"", b"\x80",
        b"\xff", b"GET", b"HTTP/1.1", b"\r\n\r\n", b"0\r\n\r\n"]


def rsub(rng, data, pattern, choices):
    """Replace one random match of `pattern` by a choice."""
    ms = list(re.finditer(pattern, data))
    if not ms:
        return data
    m = rng.choice(ms)
    g = 1 if m.groups() else 0
    rep = rng.choice(choices) if isinstance(choices, list) else choices(m)
    return data[:m.start(g)] + rep + data[m.end(g):]


def mutate_once(rng, d):
    op = rng.randrange(18)
    if op == 0:   # line ending
        return rsub(rng, d, rb"\r\n", [b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\r\n", b"\r\n "])
    if op == 1:   # whitespace around a field value / colon
        return rsub(rng, d, rb"(:) ?", lambda m: rng.choice([b":", b": ", b":\t", b": \t", b" :", b":  "]))
    if op == 2:   # trailing whitespace on a line
        return rsub(rng, d, rb"[^\r\n](\r?\n)", lambda m: rng.choice(WS) + m.group(1))
    if op == 3:   # Content-Length value
        if not re.search(rb"(?i)content-length", d) or rng.random() < 0.3:
            d = add_header(rng, d, b"Content-Length: 5")
        return rsub(rng, d, rb"(?i)content-length[^:\r\n]*:[ \t]*([^\r\n]*)", CL_VALUES)
    if op == 4:   # Transfer-Encoding value
        if not re.search(rb"(?i)transfer-encoding", d) or rng.random() < 0.3:
            d = add_header(rng, d, b"Transfer-Encoding: chunked")
        return rsub(rng, d, rb"(?i)transfer-encoding[^:\r\n]*:[ \t]*([^\r\n]*)", TE_VALUES)
    if op == 5:   # version
        return rsub(rng, d, rb"(HTTP/\d\.\d)\r?\n", VERSIONS)
    if op == 6:   # method
        return rsub(rng, d, rb"(?:^|\n)([A-Z]+) ", METHODS)
    if op == 7:   # target
        return rsub(rng, d, rb"(?:^|\n)[A-Za-z]+ (\S*) HTTP", TARGETS)
    if op == 8:   # chunk size line
        return rsub(rng, d, rb"\r\n\r\n(5|3|1)\r\n", lambda m: b"\r\n\r\n" + rng.choice(CHUNK_SIZES) + b"\r\n") \
            if rng.random() < 0.5 else rsub(rng, d, rb"\n([0-9a-fA-F]+(?:;[^\r\n]*)?)\r?\n", CHUNK_SIZES)
    if op == 9:   # pipelining
        other = rng.choice(SEEDS)
        return d + other if rng.random() < 0.7 else other + d
    if op == 10:  # a header line
        return add_header(rng, d, rng.choice(HEADERS))
    if op == 11:  # empty lines before a request
        return rsub(rng, d, rb"(?:^|\r\n\r\n)()", lambda m: rng.choice([b"\r\n", b"\n", b"\r\n\r\n", b" \r\n"])) \
            if rng.random() < 0.5 else rng.choice([b"\r\n", b"\n"]) + d
    if op == 12:  # delete a byte
        if not d:
            return d
        i = rng.randrange(len(d))
        return d[:i] + d[i + 1:]
    if op == 13:  # insert junk
        i = rng.randrange(len(d) + 1)
        return d[:i] + rng.choice(JUNK) + d[i:]
    if op == 14:  # duplicate a line
        lines = d.split(b"\r\n")
        if len(lines) > 2:
            i = rng.randrange(1, len(lines) - 1)
            lines.insert(i, lines[i])
        return b"\r\n".join(lines)
    if op == 15:  # body length off by a few
        return rsub(rng, d, rb"(hello|abc|xyz|ok|Z)", [b"", b"hell", b"hello!", b"hello\r\n", b"x", b"0\r\n\r\n"])
    if op == 16:  # last chunk / trailer variants
        return rsub(rng, d, rb"(0\r\n(?:T: v\r\n)?\r\n)$", [b"0\r\n\r\n", b"0\r\n\n", b"0\n\r\n", b"0\n\n",
                                                          b"0\r\nT: v\n\r\n", b"0\r\nT: v\r\n\n",
                                                          b"0\r\n", b"00\r\n\r\n", b"0;x\r\n\r\n",
                                                          b"0\r\nT:\x01\r\n\r\n", b"0\r\n \r\n\r\n"])
    # case flip of one letter
    letters = [i for i, c in enumerate(d) if 65 <= (c | 32) <= 90 and (c | 32) >= 97]
    if not letters:
        return d
    i = rng.choice(letters)
    return d[:i] + bytes([d[i] ^ 32]) + d[i + 1:]


def add_header(rng, d, line):
    """Insert a header line into one request head."""
    heads = [m.end() for m in re.finditer(rb"HTTP/[^\r\n]*\r?\n", d)]
    if not heads:
        return d
    at = rng.choice(heads)
    return d[:at] + line + b"\r\n" + d[at:]


def generate(seed, index):
    """Input `index` of the run with seed `seed`: (bytes, splits)."""
    rng = random.Random("%s:%d" % (seed, index))
    d = rng.choice(SEEDS)
    if rng.random() < 0.3:
        d += rng.choice(SEEDS)
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        d = mutate_once(rng, d)
    splits = []
    if rng.random() < 0.35 and len(d) > 1:
        splits = sorted(rng.randrange(1, len(d)) for _ in range(rng.choice([1, 1, 2, 3])))
    return d[:4096], splits


# ---------------------------------------------------------------------------
# minimizing and writing findings


def minimize(runner, data, splits, sig, budget):
    """Remove byte spans (and the splits) while the finding's signature
    stays the same; bounded by `budget` seconds."""
    end = time.monotonic() + budget

    def same(d, sp):
        outs, _ = runner.run(d, sp, quiet=0.08)
        v = verdict(outs, d, runner.allow)
        return v is not None and v[2] is None and signature(v, outs) == sig

    if splits and same(data, []):
        splits = []
    n = max(1, len(data) // 2)
    while n >= 1 and time.monotonic() < end:
        i = 0
        changed = False
        while i < len(data) and time.monotonic() < end:
            cand = data[:i] + data[i + n:]
            sp = [c - (n if c > i else 0) for c in splits if not (i < c <= i + n)]
            if cand and same(cand, sp):
                data, splits, changed = cand, sp, True
            else:
                i += n
        if not changed:
            n //= 2
    return data, splits


def show(outs):
    lines = []
    for n in SERVERS:
        o = outs[n]
        reps = "; ".join("%s %s %s body=%s %s%s" % (r[0], r[1], r[2], r[3], r[4],
                                                      "" if r[5] is None else (" keep" if r[5] else " close"))
                         for r in o["reports"])
        lines.append("  %-5s %d request(s) [%s] then %s%s" % (
            n, len(o["reports"]), reps, o["end"], (" (" + "; ".join(o["notes"]) + ")") if o["notes"] else ""))
    return "\n".join(lines)


def write_finding(outdir, name, data, splits, verd, outs, raw, extra):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "input.bin"), "wb") as f:
        f.write(data)
    meta = dict(extra, splits=splits, kind=verd[0], detail=verd[1], signature=signature(verd, outs),
                input=data.decode("latin-1"))
    with open(os.path.join(d, "finding.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(d, "outcomes.txt"), "w") as f:
        f.write("input %r\nsplits %r\n%s\n%s\n\n" % (data, splits, signature(verd, outs), show(outs)))
        for n in SERVERS:
            f.write("---- %s raw (before FIN) ----\n%r\n---- after FIN ----\n%r\n" % (
                n, raw[n]["pre"], raw[n]["post"]))
    return d


# ---------------------------------------------------------------------------
# modes


def start_servers(args):
    if args.addr:
        ports = {}
        for part in args.addr.split(","):
            n, _, p = part.partition("=")
            ports[n] = int(p)
        return None, ports
    srv = Servers(args.bin, args.out)
    return srv, srv.ports


def mode_fuzz(args, runner, srv):
    outdir = args.out
    os.makedirs(outdir, exist_ok=True)
    seed = args.seed if args.seed is not None else int(time.time())
    deadline = time.monotonic() + args.seconds
    tried = allowed = flaky = 0
    found = {}
    print("fuzz-diff: seed %s, %d s, ports %s" % (seed, args.seconds, runner.ports), flush=True)
    i = 0
    batch = ThreadPoolExecutor(max_workers=args.jobs)
    while time.monotonic() < deadline and (not args.inputs or i < args.inputs):
        if srv and not srv.alive():
            print("fuzz-diff: FINDING: report server(s) died: %s (stderr in %s/)" % (srv.dead(), args.out))
            found["server died"] = [None]
            break
        idx = list(range(i, i + args.jobs))
        i += args.jobs
        inputs = [generate(seed, k) for k in idx]
        results = list(batch.map(lambda di: runner.check(*di), inputs))
        for k, (d, sp), (v, outs, raw) in zip(idx, inputs, results):
            tried += 1
            if v is None:
                continue
            if v[2] is not None:
                allowed += 1
                continue
            if v[0] == "flaky":
                flaky += 1
                continue
            sig = signature(v, outs)
            if sig in found:
                found[sig].append(k)
                continue
            found[sig] = [k]
            md, msp = d, sp
            if args.minimize > 0 and time.monotonic() < deadline:
                md, msp = minimize(runner, d, sp, sig, min(args.minimize, max(1, deadline - time.monotonic())))
                outs2, raw2 = runner.run(md, msp, quiet=0.25)
                v2 = verdict(outs2, md, runner.allow)
                if v2 is not None and v2[2] is None and signature(v2, outs2) == sig:
                    d, sp, outs, raw = md, msp, outs2, raw2
            path = write_finding(outdir, "%03d" % len(found), d, sp, v, outs, raw,
                                 {"seed": seed, "index": k})
            print("fuzz-diff: FINDING %d (%s): %r splits=%s\n%s\n  -> %s" % (
                len(found), sig, d, sp, show(outs), path), flush=True)
    batch.shutdown()
    print("fuzz-diff: %d inputs, %d distinct findings (%d inputs), %d allowed differences (allowlist), "
          "%d unconfirmed (flaky) differences; seed %s" % (
              tried, len(found), sum(len(x) for x in found.values()), allowed, flaky, seed))
    for sig, ks in found.items():
        print("  %4d x %s" % (len(ks), sig))
    return 1 if found else 0


def load_cases(paths):
    cases = []
    for p in paths:
        with open(p) as f:
            for ln, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("//"):
                    continue
                c = json.loads(line)
                c["_where"] = "%s:%d" % (p, ln)
                cases.append(c)
    return cases


def mode_cases(args, runner):
    cases = load_cases(args.files)
    ok = allowed = 0
    bad = []
    unconfirmed = []
    os.makedirs(args.out, exist_ok=True)
    jobs = []
    for c in cases:
        data = c["input"].encode("latin-1")
        jobs.append((c, "whole", data, []))
        if c.get("bytewise"):
            jobs.append((c, "bytewise", data, list(range(1, len(data)))))
    with ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results = list(ex.map(lambda j: runner.check(j[2], j[3]) if j[1] == "whole"
                              else check_bytewise(runner, j[2]), jobs))
    for (c, how, data, sp), (v, outs, raw) in zip(jobs, results):
        tag = "%s [%s]" % (c["id"], how)
        if v is None:
            ok += 1
            if args.verbose:
                print("ok       %s" % tag)
            continue
        if v[2] is not None:
            allowed += 1
            if args.verbose:
                print("allowed  %s (%s)" % (tag, v[2]))
            continue
        if v[0] == "flaky":
            # Differed once, agreed when re-run with longer waits.
            unconfirmed.append(tag)
            print("unconfirmed %s (%s): differed once, agreed on a slower re-run" % (tag, v[1]))
            continue
        bad.append(tag)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "%s-%s" % (c["id"], how))[:100]
        path = write_finding(os.path.join(args.out, "cases"), name, data, sp if how == "whole" else "bytewise",
                             v, outs, raw, {"case": c["id"], "source": c.get("source"), "mode": how})
        print("FINDING  %s (%s) %s: %r\n%s\n  -> %s" % (tag, c["_where"], signature(v, outs), data, show(outs), path))
    print("fuzz-cases: %d case runs: %d agree, %d allowed differences (allowlist), %d unconfirmed, "
          "%d findings" % (len(jobs), ok, allowed, len(unconfirmed), len(bad)))
    return 1 if bad else 0


def check_bytewise(runner, data):
    # One byte per write: pause long enough that each is its own segment.
    outs, raw = runner.run(data, list(range(1, len(data))), pause=0.002)
    v = verdict(outs, data, runner.allow)
    if v is None or v[2] is not None:
        return v, outs, raw
    outs2, raw2 = runner.run(data, list(range(1, len(data))), pause=0.01, quiet=0.25)
    v2 = verdict(outs2, data, runner.allow)
    if v2 is None or v2[2] is not None:
        return ("flaky",) + tuple(v[1:]), outs, raw
    return v2, outs2, raw2


def mode_one(args, runner, data, splits):
    outs, raw = runner.run(data, splits, quiet=args.quiet)
    v = verdict(outs, data, runner.allow)
    print("input %r splits %s" % (data, splits))
    print(show(outs))
    if args.verbose:
        for n in SERVERS:
            print("---- %s ----\n%r\n%r" % (n, raw[n]["pre"], raw[n]["post"]))
    if v is None:
        print("agree")
        return 0
    print("%s%s" % (signature(v, outs), (" (allowed: %s)" % v[2]) if v[2] else ""))
    return 0 if v[2] else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["fuzz", "cases", "one", "repro"])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--seconds", type=float, default=60)
    # A fixed seed and count replay the same inputs on any machine: what
    # `make test` runs (fuzz-diff-smoke), so that its verdict does not
    # depend on how fast the machine generates inputs.
    ap.add_argument("--inputs", type=int, default=0, help="stop after N inputs (0: no limit)")
    ap.add_argument("--seed", default=None)
    ap.add_argument("--bin", default=".build-fuzz-diff")
    ap.add_argument("--addr", default=None, help="vigil=P,go=P,node=P: servers already running")
    ap.add_argument("--out", default=".build-fuzz-diff/findings")
    ap.add_argument("--allow", default=os.path.join(HERE, "allowlist.json"))
    ap.add_argument("--jobs", type=int, default=3, help="inputs in flight at once")
    ap.add_argument("--minimize", type=float, default=20, help="seconds per new finding (0: off)")
    ap.add_argument("--quiet", type=float, default=0.03, help="idle gap that ends the answers before FIN")
    ap.add_argument("--file", default=None)
    ap.add_argument("--hex", default=None)
    ap.add_argument("--splits", default="")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_intermixed_args()

    allow = load_allow(args.allow)

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)

    srv = None
    try:
        srv, ports = start_servers(args)
        runner = Runner(ports, allow, quiet=args.quiet)
        if args.mode == "fuzz":
            rc = mode_fuzz(args, runner, srv)
        elif args.mode == "cases":
            if not args.files:
                ap.error("cases: give the .jsonl files")
            rc = mode_cases(args, runner)
        else:
            if args.mode == "repro":
                if not args.files:
                    ap.error("repro: give a finding directory")
                with open(os.path.join(args.files[0], "finding.json")) as f:
                    meta = json.load(f)
                data = meta["input"].encode("latin-1")
                splits = meta["splits"] if isinstance(meta["splits"], list) else list(range(1, len(data)))
            else:
                if args.file:
                    with open(args.file, "rb") as f:
                        data = f.read()
                elif args.hex:
                    data = bytes.fromhex(args.hex)
                else:
                    ap.error("one: --file F or --hex H")
                splits = [int(x) for x in args.splits.split(",") if x]
            rc = mode_one(args, runner, data, splits)
        if srv and not srv.alive():
            print("fuzz-diff: report server(s) died: %s" % srv.dead())
            rc = 1
        runner.pool.shutdown(wait=True)
        return rc
    except KeyboardInterrupt:
        print("fuzz-diff: interrupted")
        return 2
    except RuntimeError as e:
        print("fuzz-diff: %s" % e)
        return 2
    finally:
        if srv:
            srv.stop()


if __name__ == "__main__":
    sys.exit(main())
