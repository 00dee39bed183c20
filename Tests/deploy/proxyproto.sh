#!/usr/bin/env bash
# Tests/deploy/proxyproto.sh BIN - the client's address through Debian's
# HAProxy with the PROXY protocol: vigil-demo started with
# --proxy-protocol v1 and v2 behind deploy/haproxy/haproxy-proxyproto.cfg
# (`send-proxy` / `send-proxy-v2`; only its ports rewritten, a stats socket
# added), on loopback:
#   - GET /whoami through each frontend, IPv4 (the client bound to
#     127.0.0.2, so that it is not the proxy's address) and IPv6: the
#     handler's remote address is the client's, port included, its peer
#     the proxy, its destination the frontend's address;
#   - HAProxy's health checks (v1 "PROXY UNKNOWN", v2 LOCAL) pass: L7OK;
#   - a client connecting to Vigil directly, without a header or with the
#     other version's, is closed unanswered;
#   - X-Forwarded-For reaches the handler as HAProxy sent it;
#   - a second client right after a first is not given the first's
#     address (HAProxy does not reuse a connection that carried a header
#     for another client).
# Installs haproxy and curl when missing (as root), without letting Debian
# start its service; stops everything it started. About 5 s.
set -u
BIN="${1:-.build/release/vigil-demo}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONF="$ROOT/deploy/haproxy/haproxy-proxyproto.cfg"
PASSED=0; FAILED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

install_missing() {
  local missing=""
  for p in haproxy curl; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && return 0
  echo "installing:$missing"
  local SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  # Debian starts a package's service on install: a policy-rc.d that says
  # no keeps this test the only one starting HAProxy.
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && made=1
  fi
  $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=120 $missing >/dev/null
  local rc=$?
  [ -n "$made" ] && $SUDO rm -f "$policy"
  return $rc
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

T=$(mktemp -d /tmp/vigil-proxyproto.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT

install_missing || { echo "not ok - could not install haproxy/curl"; exit 1; }
[ -f "$CONF" ] || { echo "not ok - $CONF missing"; exit 1; }
HAVE_V6=1
python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null || HAVE_V6=0

D1=$(free_port); D2=$(free_port); F1=$(free_port); F2=$(free_port)

# A raw exchange with the demo, straight to it (no proxy): prints what it
# answered, nothing when it closed unanswered.
raw() { # PORT BYTES(printf %b)
  timeout 5 python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(sys.argv[2].encode("latin-1").decode("unicode_escape").encode("latin-1"))
out = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        out += d
except socket.timeout:
    out += b"<no close within 3 s>"
sys.stdout.write(out.decode("latin-1"))
PY
}

for v in 1 2; do
  port=$([ $v = 1 ] && echo "$D1" || echo "$D2")
  "$BIN" --host 127.0.0.1 --port "$port" --proxy-protocol "v$v" >"$T/demo$v.log" 2>&1 &
  PIDS+=($!)
done
for port in "$D1" "$D2"; do
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1)" 2>/dev/null && break
    sleep 0.05
  done
done

# The deploy file, only its ports rewritten, and a stats socket to read
# the health checks' results.
sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$D1/" -e "s/127\.0\.0\.1:8081/127.0.0.1:$D2/" \
    -e "s/bind 127\.0\.0\.1:80$/bind 127.0.0.1:$F1/" -e "s/bind \[::1\]:80$/bind [::1]:$F1/" \
    -e "s/bind 127\.0\.0\.1:81$/bind 127.0.0.1:$F2/" -e "s/bind \[::1\]:81$/bind [::1]:$F2/" \
    -e "/^global/a\\    stats socket $T/haproxy.sock mode 600 level admin" \
    "$CONF" >"$T/haproxy.cfg"
[ "$HAVE_V6" = 1 ] || sed -i '/bind \[::1\]/d' "$T/haproxy.cfg"
if haproxy -c -q -f "$T/haproxy.cfg" >"$T/check.out" 2>&1; then
  ok "haproxy -c accepts the deploy file"
else
  fail "haproxy -c: $(cat "$T/check.out")"
fi
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -S "$T/haproxy.sock" ] && break; sleep 0.05; done

# whoami NAME URL CURL-ARGS... : GET /whoami through HAProxy; checks the
# handler's view against curl's own endpoints.
whoami() {
  local name="$1" url="$2"; shift 2
  local out
  out=$(curl -s -m 5 "$@" -w 'curl-local %{local_ip} %{local_port}\ncurl-remote %{remote_ip} %{remote_port}\n' "$url")
  local lip lport rip rport
  read -r _ lip lport <<<"$(grep '^curl-local' <<<"$out")"
  read -r _ rip rport <<<"$(grep '^curl-remote' <<<"$out")"
  local fmt_l="$lip:$lport" fmt_r="$rip:$rport"
  if [[ "$lip" == *:* ]]; then fmt_l="[$lip]:$lport"; fmt_r="[$rip]:$rport"; fi
  local remote peer dest xff
  remote=$(sed -n 's/^remote //p' <<<"$out"); peer=$(sed -n 's/^peer //p' <<<"$out")
  dest=$(sed -n 's/^destination //p' <<<"$out"); xff=$(sed -n 's/^x-forwarded-for //p' <<<"$out")
  if [ -n "$lport" ] && [ "$remote" = "$fmt_l" ] && [ "$dest" = "$fmt_r" ] &&
     [[ "$peer" == 127.0.0.1:* ]] && [ "$peer" != "$remote" ] && [ "$xff" = "$lip" ]; then
    ok "$name: remote $remote (the client), peer $peer (HAProxy), destination $dest, X-Forwarded-For $xff"
  else
    fail "$name: client $fmt_l to $fmt_r; the handler saw: $(tr '\n' ';' <<<"$out")"
  fi
}

whoami "send-proxy (v1), IPv4" "http://127.0.0.1:$F1/whoami" --interface 127.0.0.2
whoami "send-proxy-v2, IPv4" "http://127.0.0.1:$F2/whoami" --interface 127.0.0.2
if [ "$HAVE_V6" = 1 ]; then
  whoami "send-proxy (v1), IPv6 (PROXY TCP6)" "http://[::1]:$F1/whoami" -g
  whoami "send-proxy-v2, IPv6" "http://[::1]:$F2/whoami" -g
else
  echo "# no ::1 on this host: IPv6 skipped"
fi
# Keep-alive: two requests on one connection, one header, the same client.
two=$(curl -s -m 5 --interface 127.0.0.2 "http://127.0.0.1:$F2/whoami" "http://127.0.0.1:$F2/whoami" | grep -c '^remote 127\.0\.0\.2:')
[ "$two" = 2 ] && ok "send-proxy-v2: two requests on one client connection, both from the client" \
  || fail "keep-alive through send-proxy-v2: $two of 2 answers named the client"

# A second client right after the first, through both frontends: HAProxy
# keeps idle server connections for reuse (http-reuse safe), but one that
# began with a PROXY header is the client's own, never handed to another
# (else the handler would see the first client's address).
for f in "$F1" "$F2"; do
  a=$(curl -s -m 5 --interface 127.0.0.2 "http://127.0.0.1:$f/whoami" | sed -n 's/^remote //p')
  b=$(curl -s -m 5 --interface 127.0.0.3 "http://127.0.0.1:$f/whoami" | sed -n 's/^remote //p')
  [[ "$a" == 127.0.0.2:* && "$b" == 127.0.0.3:* ]] \
    && ok "frontend :$f: two clients one after the other, each sees its own address" \
    || fail "frontend :$f: first client seen as '$a', second as '$b'"
done

# The health checks: HAProxy sends them with the header (v1 UNKNOWN, v2
# LOCAL); Vigil must answer them. Wait for a completed check of each
# server (first ones within the 2 s check interval).
checks=""
for _ in $(seq 1 100); do
  checks=$(python3 - "$T/haproxy.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"show stat\n")
data = b""
while True:
    d = s.recv(65536)
    if not d: break
    data += d
rows = [l.split(",") for l in data.decode().splitlines() if l and not l.startswith("#")]
hdr = data.decode().splitlines()[0].lstrip("# ").split(",")
i_s, i_c = hdr.index("status"), hdr.index("check_status")
print(" ".join(f"{r[0]}/{r[1]}:{r[i_s]}:{r[i_c]}" for r in rows if r[1].startswith("vigil")))
PY
)
  [[ "$checks" == *"vigil_v1/vigil1:UP:L7OK"* && "$checks" == *"vigil_v2/vigil2:UP:L7OK"* ]] && break
  sleep 0.1
done
if [[ "$checks" == *"vigil_v1/vigil1:UP:L7OK"* && "$checks" == *"vigil_v2/vigil2:UP:L7OK"* ]]; then
  ok "health checks with the header pass (v1 PROXY UNKNOWN, v2 LOCAL): $checks"
else
  fail "health checks: $checks"
fi

# Straight to Vigil, not through HAProxy: no header, or the other version's.
a=$(raw "$D1" 'GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n')
[ -z "$a" ] && ok "direct, no header: closed unanswered" || fail "direct, no header: $a"
a=$(raw "$D2" 'PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\nGET /whoami HTTP/1.1\r\nHost: x\r\n\r\n')
[ -z "$a" ] && ok "direct, v1 header to the v2 server: closed unanswered" || fail "direct, v1 to v2: $a"
a=$(raw "$D1" 'PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\nGET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
[[ "$a" == *"remote 203.0.113.7:1"* ]] && ok "direct, a header of its own: believed (why only the proxy may reach Vigil)" \
  || fail "direct, own header: $a"

# Stop HAProxy and the demos: they exit 0 on SIGTERM.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
rc_all=0
for p in "${PIDS[@]}"; do
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then rc_all=1; kill -9 "$p" 2>/dev/null; fi
done
for i in 0 1; do wait "${PIDS[$i]}" || rc_all=1; done
PIDS=()
[ "$rc_all" = 0 ] && ok "HAProxy and both demos stopped (the demos with exit status 0)" \
  || fail "something did not stop cleanly: $(cat "$T"/demo*.log "$T/haproxy.out" | tail -5)"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
