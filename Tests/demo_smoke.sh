#!/usr/bin/env bash
# Tests/demo_smoke.sh BIN - the demo server as `make run` starts it: every
# route answers as the README says, and SIGTERM and SIGINT stop it (exit 0)
# within a bounded time. Only 127.0.0.1; prints "N passed, M failed".
set -u
BIN="${1:-.build/release/vigil-demo}"
PASSED=0; FAILED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

# request PORT RAW: send a raw request, print the whole answer (bounded).
request() {
  local port="$1" raw="$2"
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$port"'; printf "%b" "$0" >&3; cat <&3' "$raw" 2>/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {
  PORT=$(free_port)
  "$BIN" --host 127.0.0.1 --port "$PORT" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    request "$PORT" 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | grep -q "Hello, World!" && return 0
    sleep 0.1
  done
  return 1
}

stops_on() {
  local sig="$1"
  kill -"$sig" "$PID"
  for _ in $(seq 1 50); do
    if ! kill -0 "$PID" 2>/dev/null; then
      wait "$PID"; local rc=$?
      [ "$rc" = 0 ] && ok "SIG$sig stops the demo (exit 0)" || fail "SIG$sig: exit status $rc"
      return
    fi
    sleep 0.1
  done
  fail "SIG$sig did not stop the demo within 5 s"
  kill -9 "$PID" 2>/dev/null
}

if start; then ok "demo serves GET /"; else fail "demo did not start"; fi
# HEAD is answered as GET without the body (RFC 9110 §9.3.2; curl -I, health
# checks): fails before the fix: 404.
a=$(request "$PORT" 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
[[ "$a" == "HTTP/1.1 200"* && "$a" == *"Content-Length: 13"* && "$a" != *"Hello"* ]] \
  && ok "HEAD / (200, GET's Content-Length, no body)" || fail "HEAD /: $a"
a=$(request "$PORT" 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\necho me')
[[ "$a" == *"echo me"* ]] && ok "POST /echo" || fail "POST /echo: $a"
a=$(request "$PORT" 'GET /stream?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
[[ "$a" == *"chunk 2"* && "$a" == *"Transfer-Encoding: chunked"* ]] && ok "GET /stream?n=3" || fail "GET /stream: $a"
a=$(request "$PORT" 'GET /whoami HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\n')
[[ "$a" == *"remote 127.0.0.1:"* && "$a" == *"destination -"* && "$a" == *"x-forwarded-for 198.51.100.9"* ]] \
  && ok "GET /whoami (the peer, no PROXY header, X-Forwarded-For as sent)" || fail "GET /whoami: $a"
"$BIN" --proxy-protocol v3 >/dev/null 2>&1
[ $? = 2 ] && ok "--proxy-protocol v3 is refused (exit 2)" || fail "--proxy-protocol v3 accepted"
timeout 0.3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$PORT"'; printf "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n" >&3; sleep 0.2' 2>/dev/null
sleep 0.2
a=$(request "$PORT" 'GET /cancels HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
[[ "$a" =~ [0-9]{18,} ]] && ok "GET /wait cancelled by the client's close, time in /cancels" || fail "GET /cancels: $a"
a=$(request "$PORT" 'GET /reasons HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
[[ "$a" =~ [0-9]{18,}\ /wait\ clientClosed ]] && ok "GET /reasons: the /wait cancelled with clientClosed" || fail "GET /reasons: $a"
a=$(request "$PORT" 'GET /stream?n=2&size=3&ms=10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
[[ "$a" == *"xxx"* && "$a" != *"chunk 0"* ]] && ok "GET /stream?n=2&size=3&ms=10" || fail "GET /stream with size: $a"
stops_on TERM
if start; then stops_on INT; else fail "demo did not restart"; fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
