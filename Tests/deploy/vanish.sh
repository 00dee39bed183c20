#!/usr/bin/env bash
# Tests/deploy/vanish.sh BIN - clients that vanish: their host's network
# goes away mid-request, so no FIN and no RST ever comes. Two network
# namespaces made here (and removed on every exit), joined by a veth pair:
# vigil-demo (BIN, the release build) in one at 10.213.0.1, the client in
# the other at 10.213.0.2. The client's link is taken down
# (`ip link set ... down` in its namespace) while its request runs, and the
# server's own view, GET /reasons asked over the server namespace's
# loopback, says when and why the handler was cancelled:
#   1. keepalive: a request whose handler waits (GET /wait: nothing in
#      flight to the client) is cancelled with peerUnreachable within
#      idle + interval * count (+ slack) of the link going down;
#   2. the same with 5 probes and a user timeout: cancelled within the
#      user timeout (+ slack), not after 5 probes (tcp(7): the user
#      timeout replaces the count);
#   3. user timeout: a request whose handler is writing (GET /stream,
#      a chunk every 100 ms: data in flight, which keepalive does not
#      probe) is cancelled with peerUnreachable within tcpUserTimeout
#      (+ slack); with keepalive alone it is not, within that bound (why
#      tcpUserTimeout exists: vigil.h);
#   4. zero window: a client that stops reading a large response (link
#      up) is cut by the write timeout: timedOut (write) within two
#      periods (+ slack) of its last read.
# Prints each measured detection time. Needs root (CAP_NET_ADMIN) for the
# namespaces: without it, it says so and skips (exit 0). Installs iproute2
# when missing. About 25 s.
#
# VANISH_WITHOUT=1 runs the same cases against a demo without keepalive and
# without a user timeout, and the write timeout at its 30 s default: how
# the server behaved before these options; cases 1, 3 and 4 then fail.
set -u
BIN="${1:-.build/release/vigil-demo}"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
WITHOUT="${VANISH_WITHOUT:-}"
PASSED=0; FAILED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

PORT=18300              # inside the server's namespace: nothing else there
SRV=10.213.0.1; CLI=10.213.0.2
SLACK_MS=2000           # scheduling on a busy machine, probe timer jitter
KA_IDLE=1000; KA_INTVL=1000; KA_CNT=2
UTO=2000
WTO=1000

if [ "$(id -u)" != 0 ]; then
  echo "skip - vanish.sh: not root: cannot make network namespaces (needs CAP_NET_ADMIN); not run"
  exit 0
fi
if ! command -v ip >/dev/null 2>&1; then
  echo "installing: iproute2"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null \
    || { echo "not ok - could not install iproute2"; exit 1; }
fi
[ -x "$BIN" ] || { echo "not ok - no demo binary at $BIN"; exit 1; }

# Names unique to this run (pid), so runs in parallel do not collide; veth
# names stay within IFNAMSIZ (15).
ID=$$
NS_S="vigil-vs-$ID"; NS_C="vigil-vc-$ID"
V_S="vvs$ID"; V_C="vvc$ID"
T=$(mktemp -d /tmp/vigil-vanish.XXXXXX)
PIDS=()

stop_pid() { # PID: TERM, then KILL after 1 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 20); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

cleanup() {
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  # Deleting a namespace deletes its end of the veth pair, and so the pair.
  ip netns del "$NS_C" 2>/dev/null
  ip netns del "$NS_S" 2>/dev/null
  ip link del "$V_S" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! ip netns add "$NS_S" 2>"$T/err"; then
  echo "skip - vanish.sh: cannot make a network namespace ($(cat "$T/err")); not run"
  exit 0
fi
ip netns add "$NS_C" &&
  ip link add "$V_S" type veth peer name "$V_C" &&
  ip link set "$V_S" netns "$NS_S" &&
  ip link set "$V_C" netns "$NS_C" &&
  ip -n "$NS_S" addr add "$SRV/30" dev "$V_S" &&
  ip -n "$NS_C" addr add "$CLI/30" dev "$V_C" &&
  ip -n "$NS_S" link set lo up &&
  ip -n "$NS_C" link set lo up &&
  ip -n "$NS_S" link set "$V_S" up &&
  ip -n "$NS_C" link set "$V_C" up ||
  { echo "not ok - could not set up the namespaces and the veth pair"; exit 1; }

now_ns() { date +%s%N; }

# in_server CMD...: run in the server's namespace.
in_server() { ip netns exec "$NS_S" "$@"; }

# get PATH: a GET over the server namespace's loopback (bash only), body.
get() {
  in_server timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$PORT"' || exit 1
    printf "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" "$0" >&3
    cat <&3' "$1" 2>/dev/null | sed '1,/^\r$/d'
}

DEMO=""
start_demo() { # FLAGS...
  # `ip netns exec` execs the demo: $! is the demo itself (a function run
  # in the background would be a subshell, and killing it would leave the
  # demo running).
  ip netns exec "$NS_S" "$BIN" --host 0.0.0.0 --port "$PORT" "$@" >"$T/demo.log" 2>&1 &
  DEMO=$!
  PIDS+=("$DEMO")
  for _ in $(seq 1 100); do
    get / | grep -q "Hello, World!" && return 0
    sleep 0.05
  done
  echo "not ok - vigil-demo did not start in the server namespace"; cat "$T/demo.log"
  exit 1
}

stop_demo() { stop_pid "$DEMO"; }

# client SCRIPT: a bash client in the client's namespace, in the
# background, its socket on fd 3 (it ends with `exec sleep`, so killing
# its pid closes the socket). Sets CLIENT.
CLIENT=""
client() {
  ip netns exec "$NS_C" bash -c 'exec 3<>/dev/tcp/'"$SRV"'/'"$PORT"' || exit 1
    '"$1" >/dev/null 2>&1 &
  CLIENT=$!
  PIDS+=("$CLIENT")
}

# wait_live N: until the server holds N live requests (the /stats query is
# one of them), 5 s.
wait_live() {
  for _ in $(seq 1 100); do
    local n
    n=$(get /stats | sed -n 's/^requests_live //p')
    [ -n "$n" ] && [ "$n" -ge "$1" ] && return 0
    sleep 0.05
  done
  return 1
}

# wait_reason ROUTE SINCE_NS LIMIT_MS: poll /reasons until ROUTE's line
# appears, or LIMIT_MS after SINCE_NS; prints the line ("" if none).
wait_reason() {
  local route="$1" since="$2" limit="$3" line
  while :; do
    line=$(get /reasons | awk -v r="$route" '$2 == r { print; exit }')
    if [ -n "$line" ]; then echo "$line"; return 0; fi
    [ $(( ($(now_ns) - since) / 1000000 )) -ge "$limit" ] && return 1
    sleep 0.05
  done
}

link_down() { ip -n "$NS_C" link set "$V_C" down; }
link_up() { ip -n "$NS_C" link set "$V_C" up; }

# What the server's kernel and the demo say, after a failure.
diagnose() {
  echo "# server sockets:"; in_server ss -tino 2>/dev/null | sed 's/^/#   /'
  echo "# server neighbours:"; ip -n "$NS_S" neigh 2>/dev/null | sed 's/^/#   /'
  echo "# /reasons:"; get /reasons | sed 's/^/#   /'
}

# check NAME ROUTE SINCE_NS BOUND_MS WANT...: the handler of ROUTE was
# cancelled with the words WANT (reason [timeout]) within BOUND_MS of
# SINCE_NS; prints the measured time. Waits BOUND_MS + 2 s for a late
# answer, to say how late.
check() {
  local name="$1" route="$2" since="$3" bound="$4"
  shift 4
  local want="$*" line
  line=$(wait_reason "$route" "$since" $((bound + 2000)))
  if [ -z "$line" ]; then
    fail "$name: not cancelled within $((bound + 2000)) ms (bound $bound ms)"
    diagnose
    return
  fi
  local t got ms
  t=$(echo "$line" | awk '{ print $1 }')
  got=$(echo "$line" | cut -d' ' -f3-)
  ms=$(( (t - since) / 1000000 ))
  echo "# $name: $route cancelled with \"$got\" $ms ms after the event (bound $bound ms)"
  if [ "$got" = "$want" ] && [ "$ms" -le "$bound" ]; then
    ok "$name: $got in $ms ms (bound $bound ms)"
  else
    fail "$name: \"$got\" in $ms ms; want \"$want\" within $bound ms"
  fi
}

if [ -n "$WITHOUT" ]; then
  echo "# VANISH_WITHOUT: no keepalive, no user timeout, write timeout 30 s (the cases below should fail)"
  KA_FLAGS=(--tcp-keepalive off)
  UTO_FLAGS=()
  WTO_FLAGS=()
else
  KA_FLAGS=(--tcp-keepalive "$KA_IDLE,$KA_INTVL,$KA_CNT")
  UTO_FLAGS=(--tcp-user-timeout "$UTO")
  WTO_FLAGS=(--write-timeout "$WTO")
fi

# ---------------------------------------------------------------------------
# 1. keepalive: nothing in flight to the client, its link goes down.
start_demo "${KA_FLAGS[@]}"
client 'printf "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n" >&3; exec sleep 60'
wait_live 2 || { fail "keepalive: GET /wait did not reach the server"; }
sleep 0.2
link_down
T0=$(now_ns)
check "keepalive (idle ${KA_IDLE} ms, interval ${KA_INTVL} ms, count $KA_CNT), handler waiting" \
  /wait "$T0" $((KA_IDLE + KA_INTVL * KA_CNT + SLACK_MS)) peerUnreachable
stop_pid "$CLIENT"; stop_demo; link_up

# 2. keepalive with a user timeout: the user timeout replaces the count
# (tcp(7)), so 5 probes are not waited for: the connection ends at the
# first probe at or after the user timeout.
if [ -z "$WITHOUT" ]; then
  start_demo --tcp-keepalive "$KA_IDLE,$KA_INTVL,5" "${UTO_FLAGS[@]}"
  client 'printf "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n" >&3; exec sleep 60'
  wait_live 2 || fail "keepalive + user timeout: GET /wait did not reach the server"
  sleep 0.2
  link_down
  T0=$(now_ns)
  check "keepalive (count 5) with user timeout ${UTO} ms, handler waiting (count 5 alone: $((KA_IDLE + KA_INTVL * 5)) ms)" \
    /wait "$T0" $((UTO + SLACK_MS)) peerUnreachable
  stop_pid "$CLIENT"; stop_demo; link_up
fi

# ---------------------------------------------------------------------------
# 3. user timeout: the handler writes a chunk every 100 ms; data is in
# flight when the link goes down, so keepalive never probes.
STREAM='printf "GET /stream?n=100000&ms=100 HTTP/1.1\r\nHost: x\r\n\r\n" >&3; exec cat <&3 >/dev/null'
start_demo "${KA_FLAGS[@]}" "${UTO_FLAGS[@]}"
client "$STREAM"
wait_live 2 || fail "user timeout: GET /stream did not reach the server"
sleep 0.5
link_down
T0=$(now_ns)
check "user timeout (${UTO} ms, keepalive as above), handler writing" \
  /stream "$T0" $((UTO + SLACK_MS)) peerUnreachable
stop_pid "$CLIENT"; stop_demo; link_up

if [ -z "$WITHOUT" ]; then
  # The same with keepalive alone: not noticed within that bound (the
  # kernel does not probe while data is unacknowledged; it retransmits,
  # for ~15 minutes by default).
  start_demo "${KA_FLAGS[@]}"
  client "$STREAM"
  wait_live 2 || fail "keepalive alone: GET /stream did not reach the server"
  sleep 0.5
  link_down
  T0=$(now_ns)
  line=$(wait_reason /stream "$T0" $((UTO + SLACK_MS)))
  if [ -z "$line" ]; then
    ok "keepalive alone, handler writing: not noticed within $((UTO + SLACK_MS)) ms (tcpUserTimeout is what bounds it)"
  else
    fail "keepalive alone, handler writing: noticed ($line): vigil.h's account of the two paths is wrong"
  fi
  stop_pid "$CLIENT"; stop_demo; link_up
fi

# ---------------------------------------------------------------------------
# 4. zero window, link up: the client reads 256 KiB of a large response,
# says when, then never reads again.
start_demo "${WTO_FLAGS[@]}"
client 'printf "GET /stream?n=1000000&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n" >&3
  head -c 262144 <&3 >/dev/null; date +%s%N >'"$T"'/stopped; exec sleep 60'
for _ in $(seq 1 100); do [ -s "$T/stopped" ] && break; sleep 0.05; done
if [ -s "$T/stopped" ]; then
  T0=$(cat "$T/stopped")
  check "zero window (write timeout ${WTO} ms), client stopped reading" \
    /stream "$T0" $((2 * WTO + SLACK_MS)) timedOut write
else
  fail "zero window: the client did not read the start of the response"
fi
stop_pid "$CLIENT"; stop_demo

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
