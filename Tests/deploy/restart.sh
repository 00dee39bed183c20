#!/usr/bin/env bash
# Tests/deploy/restart.sh [short|full] - restarts that lose no request.
#
# Starts the release demo (`swift build -c release --product vigil-demo`,
# the only thing built here) on 127.0.0.1, port 0, two loops, and puts it
# under load for the whole run:
#   - wrk keep-alive (8 connections),
#   - wrk with `Connection: close`: a new connection for every request,
#   - before each hand-over, slow requests in flight (GET /slow?ms=1500,
#     curl), which the old process must finish;
# and meanwhile replaces the running process N times with SIGUSR2 (the demo
# hands its listening socket to a new process of itself, then drains and
# exits: Server.handOver, vigil_server_handover). Checks: zero wrk socket
# errors (connect, read, write, timeout), zero non-2xx answers, every slow
# request answered 200 (each is sent before its hand-over begins, so the
# old process accepted it, and a connection never moves: that process
# answered it; only the status is checked), every old process
# gone within its grace period, a new pid after each hand-over. Prints the
# figures. Then, if systemd-socket-activate is there (Debian's systemd
# package; installed when missing and possible), the demo started by it
# serves the socket it was given (LISTEN_FDS), and hands over from there.
#
#   short (make test, ~30 s): 12 s of load, 3 hand-overs
#   full: 40 s of load, 10 hand-overs
# Installs wrk (and curl) with apt-get when missing (as root). Stops
# everything it started (trap EXIT). Last line "N passed, M failed".
set -u -o pipefail
cd "$(dirname "$0")/../.."

MODE="${1:-short}"
case "$MODE" in
  short) DURATION=12; HANDOVERS=3 ;;
  full) DURATION=40; HANDOVERS=10 ;;
  *) echo "usage: $0 [short|full]"; exit 2 ;;
esac
ACT_PORT="${ACT_PORT:-18150}" # systemd-socket-activate needs a fixed port

PASSED=0; FAILED=0
ok()   { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

need() { # need CMD PACKAGE: install PACKAGE when CMD is missing
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "# $1 missing and not root: cannot install $2"; return 1; }
  echo "# installing $2"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1
}
need wrk wrk || { echo "0 passed, 1 failed"; exit 1; }
need curl curl || { echo "0 passed, 1 failed"; exit 1; }

swift build -c release --product vigil-demo 2>&1 | tail -n 1
BIN=.build/release/vigil-demo
[ -x "$BIN" ] || { echo "no $BIN"; echo "0 passed, 1 failed"; exit 1; }

W="$(mktemp -d /tmp/vigil-restart.XXXXXX)"
PIDS=()       # every demo pid seen, to stop at the end
BG=()         # wrk, curl, socket activator
cleanup() {
  for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}" "${BG[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT

get() { curl -s --max-time 5 "http://127.0.0.1:$1$2"; }

# gone PID: exited (a zombie counts: its parent may not have reaped it yet)
gone() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" || return 0
  [ -z "$st" ] || [[ "$st" == Z* ]] || [[ "$st" == X* ]]
}

# ---------------------------------------------------------------------------
# the restart under load

# DEMO_ARGS: more demo flags, for experiments (e.g. --shutdown-idle-ms 0)
"$BIN" --host 127.0.0.1 --port 0 --loops 2 ${DEMO_ARGS:-} >"$W/demo.log" 2>&1 &
FIRST=$!
PIDS+=("$FIRST")
PORT=""
for _ in $(seq 1 100); do
  PORT="$(sed -n 's/^vigil-demo listening on 127.0.0.1:\([0-9]*\) .*/\1/p' "$W/demo.log" | head -n 1)"
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { cat "$W/demo.log"; fail "the demo did not start"; echo "$PASSED passed, $FAILED failed"; exit 1; }
echo "# demo pid $FIRST on 127.0.0.1:$PORT; $DURATION s of load, $HANDOVERS hand-overs"

wrk -t1 -c8 -d"${DURATION}s" --timeout 5s "http://127.0.0.1:$PORT/" >"$W/wrk-ka.txt" 2>&1 &
BG+=($!); WRK_KA=$!
wrk -t1 -c4 -d"${DURATION}s" --timeout 5s -H "Connection: close" "http://127.0.0.1:$PORT/" \
  >"$W/wrk-close.txt" 2>&1 &
BG+=($!); WRK_CLOSE=$!

sleep 1
CUR="$(get "$PORT" /pid)"
SLOW=0
GAP=$(( (DURATION - 3) / HANDOVERS ))
[ "$GAP" -ge 1 ] || GAP=1
HANDED=0
for i in $(seq 1 "$HANDOVERS"); do
  # slow requests in flight on the process about to be replaced
  for k in 1 2; do
    SLOW=$((SLOW + 1))
    curl -s --max-time 15 -o /dev/null -w '%{http_code}\n' \
      "http://127.0.0.1:$PORT/slow?ms=1500" >"$W/slow.$SLOW" 2>&1 &
    BG+=($!)
  done
  sleep 0.2
  OLD="$CUR"
  t0=$(date +%s%N)
  kill -USR2 "$OLD"
  NEW=""
  for _ in $(seq 1 100); do
    NEW="$(get "$PORT" /pid)"
    [ -n "$NEW" ] && [ "$NEW" != "$OLD" ] && break
    sleep 0.05
  done
  if [ -z "$NEW" ] || [ "$NEW" = "$OLD" ]; then
    fail "hand-over $i: no new process answers (still $OLD)"
    break
  fi
  PIDS+=("$NEW")
  t1=$(date +%s%N)
  exited=""
  for _ in $(seq 1 120); do # the demo's grace period is 10 s
    if gone "$OLD"; then exited=1; break; fi
    sleep 0.1
  done
  t2=$(date +%s%N)
  if [ -n "$exited" ]; then
    HANDED=$((HANDED + 1))
    echo "# hand-over $i: pid $OLD -> $NEW, new pid answering after $(( (t1 - t0) / 1000000 )) ms, old exited after $(( (t2 - t0) / 1000000 )) ms"
  else
    fail "hand-over $i: old process $OLD still running 12 s later"
  fi
  CUR="$NEW"
  sleep "$GAP"
done
[ "$HANDED" = "$HANDOVERS" ] && ok "$HANDOVERS hand-overs: each gave a new pid, each old process exited"

wait "$WRK_KA"; wait "$WRK_CLOSE"
wait_slow_deadline=$(( $(date +%s) + 15 ))
for i in $(seq 1 "$SLOW"); do
  while [ ! -s "$W/slow.$i" ] && [ "$(date +%s)" -lt "$wait_slow_deadline" ]; do sleep 0.1; done
done

# wrk's figures: requests, socket errors, non-2xx
figures() { # FILE -> "requests errors non2xx"
  local f="$1" req err non
  req="$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' "$f")"
  err="$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$f" |
         awk '{print $1+$2+$3+$4}')"
  non="$(sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' "$f")"
  echo "${req:-0} ${err:-0} ${non:-0}"
}
read -r KA_REQ KA_ERR KA_NON <<<"$(figures "$W/wrk-ka.txt")"
read -r CL_REQ CL_ERR CL_NON <<<"$(figures "$W/wrk-close.txt")"
SLOW_OK=$(cat "$W"/slow.* 2>/dev/null | grep -c '^200$')
echo "# keep-alive wrk (8 connections): $KA_REQ requests, $KA_ERR socket errors, $KA_NON non-2xx"
echo "# new connection per request (wrk, Connection: close, 4 connections): $CL_REQ requests, $CL_ERR socket errors, $CL_NON non-2xx"
echo "# slow requests in flight at a hand-over: $SLOW_OK of $SLOW answered 200"
grep -h "Socket errors" "$W"/wrk-*.txt | sed 's/^/# /'
if [ "$KA_REQ" -gt 0 ] && [ "$KA_ERR" = 0 ] && [ "$KA_NON" = 0 ]; then
  ok "keep-alive load across $HANDOVERS hand-overs: $KA_REQ requests, 0 socket errors, 0 non-2xx"
else
  fail "keep-alive load: $KA_REQ requests, $KA_ERR socket errors, $KA_NON non-2xx"; cat "$W/wrk-ka.txt"
fi
if [ "$CL_REQ" -gt 0 ] && [ "$CL_ERR" = 0 ] && [ "$CL_NON" = 0 ]; then
  ok "new-connection-per-request load: $CL_REQ requests, 0 socket errors, 0 non-2xx"
else
  fail "new-connection-per-request load: $CL_REQ requests, $CL_ERR socket errors, $CL_NON non-2xx"; cat "$W/wrk-close.txt"
fi
if [ "$SLOW" -gt 0 ] && [ "$SLOW_OK" = "$SLOW" ]; then
  ok "every slow request in flight at a hand-over answered 200 ($SLOW)"
else
  fail "slow requests: $SLOW_OK of $SLOW answered 200"
fi

# the last process stops on SIGTERM
kill -TERM "$CUR"
for _ in $(seq 1 100); do gone "$CUR" && break; sleep 0.1; done
if gone "$CUR"; then ok "the last process stops on SIGTERM"; else fail "pid $CUR still running after SIGTERM"; fi
wait "$FIRST" 2>/dev/null

# ---------------------------------------------------------------------------
# systemd socket activation

if need systemd-socket-activate systemd; then
  systemd-socket-activate -l "127.0.0.1:$ACT_PORT" "$BIN" --port 1 >"$W/act.log" 2>&1 &
  ACT=$!
  PIDS+=("$ACT")
  sleep 0.3
  # The first connection starts the demo (exec: same pid), on the socket
  # systemd-socket-activate made (LISTEN_FDS=1, LISTEN_PID).
  P1="$(get "$ACT_PORT" /pid)"
  if [ "$P1" = "$ACT" ] && grep -q "inherited socket (LISTEN_FDS), port $ACT_PORT" "$W/act.log"; then
    ok "started by systemd-socket-activate: serves the passed socket (pid $P1, port $ACT_PORT)"
  else
    fail "systemd-socket-activate: /pid said '$P1' (activator pid $ACT)"; cat "$W/act.log"
  fi
  kill -USR2 "$ACT" 2>/dev/null
  P2=""
  for _ in $(seq 1 100); do
    P2="$(get "$ACT_PORT" /pid)"
    [ -n "$P2" ] && [ "$P2" != "$P1" ] && break
    sleep 0.05
  done
  if [ -n "$P2" ] && [ "$P2" != "$P1" ]; then
    PIDS+=("$P2")
    ok "a socket-activated demo hands over too (pid $P1 -> $P2)"
    kill -TERM "$P2"
  else
    fail "socket-activated hand-over: /pid still '$P2'"
  fi
  for _ in $(seq 1 100); do gone "$P2" && gone "$ACT" && break; sleep 0.1; done
  wait "$ACT" 2>/dev/null
else
  echo "# systemd-socket-activate not available: socket activation not shown"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
