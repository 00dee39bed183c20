#!/usr/bin/env python3
"""Regenerate the seed corpus fuzz/corpus/ for fuzz_request.

Each seed is: one flags byte, one byte per split point, then the bytes the
client sends (see the comment at the top of fuzz_request.c). Run from the
repository root: python3 fuzz/gen_corpus.py
"""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

ABRUPT = 0x08     # close() instead of shutdown(SHUT_WR)
FINISH = 0x10     # server B: half_close FINISH
NOWAIT = 0x20     # pieces back to back
LEAVE = 0x40      # FIN, then close without reading
PROXY = 0x80      # servers D/E/F: a PROXY protocol header required


def seed(name, data, flags=0, splits=()):
    if isinstance(data, str):
        data = data.encode("latin-1")
    assert len(splits) <= 7
    head = bytes([flags | len(splits)]) + bytes(splits)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(head + data)


H = "Host: a\r\n"


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    # well-formed
    seed("get", "GET / HTTP/1.1\r\n" + H + "\r\n")
    seed("get-split", "GET /index HTTP/1.1\r\n" + H + "User-Agent: x\r\n\r\n",
         0, (3, 40, 90, 200))
    seed("pipelined-gets", ("GET / HTTP/1.1\r\n" + H + "\r\n") * 3 +
         "GET /close HTTP/1.1\r\n" + H + "\r\n", FINISH)
    seed("pipelined-mixed",
         "GET /defer HTTP/1.1\r\n" + H + "\r\n"
         "GET /thread HTTP/1.1\r\n" + H + "\r\n"
         "GET /threads HTTP/1.1\r\n" + H + "\r\n"
         "GET /big HTTP/1.1\r\n" + H + "\r\n"
         "GET /stream HTTP/1.1\r\n" + H + "\r\n", FINISH, (128,))
    seed("post-cl", "POST /echo HTTP/1.1\r\n" + H +
         "Content-Length: 11\r\n\r\nhello world", 0, (100, 230))
    seed("post-cl-late", "POST /echo-late HTTP/1.1\r\n" + H +
         "Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n" + H + "\r\n", FINISH)
    seed("post-chunked", "POST /echo HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
         FINISH, (60, 120, 180))
    seed("chunk-ext", "POST /echo-late HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n"
         "3;name=value;x\r\nabc\r\n2;q=\"quoted\"\r\nde\r\n0\r\n\r\n", FINISH)
    seed("chunk-trailers", "POST /echo HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", FINISH)
    seed("expect-100", "POST /echo HTTP/1.1\r\n" + H +
         "Expect: 100-continue\r\nContent-Length: 4\r\n\r\nbody", FINISH, (128,))
    seed("expect-ignored", "POST /ignore HTTP/1.1\r\n" + H +
         "Expect: 100-continue\r\nContent-Length: 4\r\n\r\nbody"
         "GET / HTTP/1.1\r\n" + H + "\r\n", FINISH)
    seed("head", "HEAD / HTTP/1.1\r\n" + H + "\r\nHEAD /stream HTTP/1.1\r\n" + H + "\r\n",
         FINISH)
    seed("head-noresp", "HEAD / HTTP/1.1\r\n" + H + "\r\nHEAD /noresp HTTP/1.1\r\n" + H +
         "\r\nGET / HTTP/1.1\r\n" + H + "\r\n", FINISH)
    seed("http10-keepalive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
         "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", FINISH)
    seed("hijack", "GET /hijack HTTP/1.1\r\n" + H +
         "Connection: Upgrade\r\nUpgrade: echo\r\n\r\nraw bytes\x00\xff after", FINISH, (150,))
    seed("hijack-cancel", "GET /hijack HTTP/1.1\r\n" + H + "\r\nping", 0)
    seed("hijack-expect", "POST /hijack HTTP/1.1\r\n" + H +
         "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", FINISH)
    seed("pause-limit", "POST /pause HTTP/1.1\r\n" + H + "Content-Length: 20\r\n\r\n" +
         "x" * 20 + "POST /limit HTTP/1.1\r\n" + H + "Content-Length: 20\r\n\r\n" +
         "y" * 20, FINISH | NOWAIT)
    seed("unread-body", "POST /ignore HTTP/1.1\r\n" + H + "Content-Length: 2000\r\n\r\n" +
         "z" * 2000 + "GET / HTTP/1.1\r\n" + H + "\r\n", FINISH, (10, 100))
    seed("odd-responses", "GET /noresp HTTP/1.1\r\n" + H + "\r\nGET /204 HTTP/1.1\r\n" +
         H + "\r\nGET /304 HTTP/1.1\r\n" + H + "\r\nGET /partial HTTP/1.1\r\n" + H +
         "\r\nGET /unended HTTP/1.1\r\n" + H + "\r\n", FINISH)
    # backpressure: pipelined bytes behind a deferred answer pass
    # read_buffer_limit (1 KiB in the harness), so reading pauses
    seed("pipelined-backpressure", "GET /defer HTTP/1.1\r\n" + H + "\r\n" +
         ("GET /thread HTTP/1.1\r\n" + H + "X-Pad: " + "p" * 60 + "\r\n\r\n") * 30, FINISH)
    seed("chunked-over-limit", "POST /limit HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n10\r\n" + "a" * 16 + "\r\n8\r\n" + "b" * 8 +
         "\r\n0\r\n\r\n", FINISH, (120,))
    seed("chunked-drain-over-limit", "POST /ignore HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n" + ("200\r\n" + "d" * 512 + "\r\n") * 4 +
         "0\r\n\r\nGET / HTTP/1.1\r\n" + H + "\r\n", FINISH)
    seed("pause-chunked", "POST /pause HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n",
         FINISH, (90, 110, 130))
    seed("late-body", "POST /late-body HTTP/1.1\r\n" + H + "Content-Length: 3\r\n\r\nabc"
         "GET / HTTP/1.1\r\n" + H + "\r\n", FINISH, (130,))
    seed("absolute-form", "GET http://example.com/x HTTP/1.1\r\n\r\n")
    seed("abrupt-mid-body", "POST /echo HTTP/1.1\r\n" + H +
         "Content-Length: 100\r\n\r\nonly a part", ABRUPT)
    seed("leave-early", ("GET /big HTTP/1.1\r\n" + H + "\r\n") * 4, LEAVE)

    # malformed and smuggling shapes
    seed("obs-fold", "GET / HTTP/1.1\r\n" + H + "X-A: one\r\n two\r\n\r\n")
    seed("bare-lf", "GET / HTTP/1.1\n" + H + "\n\n", FINISH)
    seed("crlf-lf-end", "GET / HTTP/1.1\r\n" + H + "\r\n\n", FINISH)
    seed("empty-name", "GET / HTTP/1.1\r\n" + H + ": x\r\n\r\n")
    seed("cl-te", "POST / HTTP/1.1\r\n" + H +
         "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", FINISH)
    seed("te-cl", "POST / HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", FINISH)
    seed("double-cl", "POST / HTTP/1.1\r\n" + H +
         "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", FINISH)
    seed("te-gzip", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\nabc",
         FINISH)
    seed("bad-chunk-size", "POST /echo HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", FINISH)
    seed("chunk-overflow", "POST /echo HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n", FINISH)
    seed("chunk-ext-huge", "POST /echo HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n1;" + "e" * 200 + "\r\na\r\n0\r\n\r\n", FINISH)
    seed("huge-header", "GET / HTTP/1.1\r\n" + H + "X-Big: " + "b" * 5000 + "\r\n\r\n",
         FINISH, (20, 200))
    seed("many-headers", "GET / HTTP/1.1\r\n" + H + "".join(
        "X-%d: v\r\n" % i for i in range(40)) + "\r\n", FINISH)
    seed("no-host", "GET / HTTP/1.1\r\n\r\n", FINISH)
    seed("two-hosts", "GET / HTTP/1.1\r\n" + H + H + "\r\n", FINISH)
    seed("bad-version", "GET / HTTP/2.0\r\n" + H + "\r\nGET / HTTP/1.2\r\n\r\n", FINISH)
    seed("http09", "GET /\r\n\r\n", FINISH)
    seed("cl-huge", "POST /echo HTTP/1.1\r\n" + H +
         "Content-Length: 99999999999999999999\r\n\r\n", FINISH)
    seed("cl-too-big", "POST /echo HTTP/1.1\r\n" + H + "Content-Length: 70000\r\n\r\nab",
         FINISH)
    seed("ctl-in-value", "GET / HTTP/1.1\r\n" + H + "X-A: a\x01b\r\n\r\n", FINISH)

    # chunked framing and message starts (issue 11: 3, 17, 20)
    seed("trailer-bare-lf", "POST / HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\n"
         "GET /smuggled HTTP/1.1\r\n" + H + "\r\n", FINISH)
    seed("trailer-obs-fold", "POST /echo HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\nX: a\r\n b\r\n\r\n"
         "GET / HTTP/1.1\r\n" + H + "\r\n", FINISH, (150,))
    seed("chunk-ext-pairs", "POST /echo-late HTTP/1.1\r\n" + H +
         "Transfer-Encoding: chunked\r\n\r\n5;a=b;c=d\r\nhello\r\n"
         "3;q=\"x;\\\"y\" ; r = s\r\nabc\r\n0;e=f;g\r\nT: 1\r\n\r\n"
         "GET / HTTP/1.1\r\n" + H + "\r\n", FINISH, (100, 130))
    seed("empty-lines", "POST / HTTP/1.1\r\n" + H + "Content-Length: 4\r\n\r\nq=42\r\n\r\n"
         "GET / HTTP/1.1\r\n" + H + "\r\n\r\nGET /x HTTP/1.1\r\n" + H + "\r\n", FINISH)

    # PROXY protocol (proxy.c): required on D/E/F (bit 7), refused (400)
    # on A/B/C
    get = "GET / HTTP/1.1\r\n" + H + "\r\n"
    sig = "\r\n\r\n\x00\r\nQUIT\n"
    v4 = "\xcb\x00\x71\x07\xc0\x00\x02\x01\xc8\x22\x01\xbb"
    v6 = ("\x20\x01\x0d\xb8" + "\x00" * 11 + "\x07" + "\x00" * 15 + "\x01" +
          "\x9c\x40\x1f\x90")
    unix = "/run/client.sock".ljust(108, "\x00") + "/run/vigil.sock".ljust(108, "\x00")
    def v2(cmd, fam, body):
        return sig + chr(cmd) + chr(fam) + chr(len(body) >> 8) + chr(len(body) & 0xff) + body
    seed("proxy-v1-tcp4", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + get, PROXY)
    seed("proxy-v1-tcp6", "PROXY TCP6 2001:db8::7 ::1 40000 8080\r\n" + get * 2,
         PROXY | FINISH)
    seed("proxy-v1-unknown", "PROXY UNKNOWN\r\n" + get, PROXY)
    seed("proxy-v1-split", "PROXY TCP4 10.0.0.1 10.0.0.2 1 65535\r\n" +
         "POST /echo HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhello", PROXY,
         (2, 9, 30, 60, 61, 120))
    seed("proxy-v2-tcp4-tlv", v2(0x21, 0x11, v4 + "\x02\x00\x03a.b\x04\x00\x00") + get, PROXY)
    seed("proxy-v2-tcp6", v2(0x21, 0x21, v6) + get, PROXY | FINISH, (5, 12, 13, 14, 15, 16))
    seed("proxy-v2-local", v2(0x20, 0x00, "") + get, PROXY)
    seed("proxy-v2-unix", v2(0x21, 0x31, unix) + get, PROXY)
    seed("proxy-missing", get, PROXY)
    seed("proxy-bad-port", "PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n" + get, PROXY)
    seed("proxy-off-v1", "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + get)
    seed("proxy-off-v2", v2(0x21, 0x11, v4) + get, FINISH, (3, 40))


if __name__ == "__main__":
    main()
