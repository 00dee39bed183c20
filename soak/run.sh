#!/usr/bin/env bash
# soak/run.sh - soak test of the demo server (not part of `make test`).
#
# Builds vigil-demo (release) and soak/soak.c, starts the demo on
# 127.0.0.1:$PORT, records its baseline (open fds, RSS, /stats), runs the
# soak client (10 000 concurrent connections, 1 000 000 requests, random
# keep-alive / pipelined / echo / cancel-by-FIN / cancel-by-RST / abort
# traffic), waits a few seconds and checks that fds, connections_open,
# requests_live and RSS are back near the baseline. Prints a table; exits
# non-zero if the client saw an error, the budget was not reached in time,
# or something did not come back.
#
#   bash soak/run.sh
#   SOAK_CONNS=2000 SOAK_REQUESTS=100000 bash soak/run.sh     a short run
#
# Environment: PORT (18089), SOAK_CONNS (10000), SOAK_REQUESTS (1000000),
# SOAK_TIME (client time limit in s, 480), SOAK_SETTLE (s, 5), SOAK_SEED,
# SOAK_BUILD (SwiftPM scratch path, .build-soak: a separate one so that it
# never waits on, or disturbs, a build in .build), SOAK_RSS_SLACK_MB (64).
set -u -o pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-18089}"
CONNS="${SOAK_CONNS:-10000}"
REQUESTS="${SOAK_REQUESTS:-1000000}"
TIME="${SOAK_TIME:-480}"
SETTLE="${SOAK_SETTLE:-5}"
SEED="${SOAK_SEED:-$RANDOM$RANDOM}"
BUILD="${SOAK_BUILD:-.build-soak}"
RSS_SLACK_MB="${SOAK_RSS_SLACK_MB:-64}"
OUT="$BUILD/soak-run"
mkdir -p "$OUT"

# Both processes need more than 10 000 descriptors.
ulimit -n "$(ulimit -Hn)" || true
echo "soak: RLIMIT_NOFILE $(ulimit -n) (hard $(ulimit -Hn))"

echo "soak: building vigil-demo (release, --scratch-path $BUILD) and the client"
swift build -c release --product vigil-demo --scratch-path "$BUILD" 2>&1 | tail -n 1 || exit 1
DEMO="$BUILD/release/vigil-demo"
cc -O2 -Wall -o "$BUILD/soak" soak/soak.c || exit 1
CLIENT="$BUILD/soak"

if ss -ltn 2>/dev/null | awk '{print $4}' | grep -q ":$PORT\$"; then
  echo "soak: port $PORT is in use; set PORT=..." >&2
  exit 1
fi

"$DEMO" --host 127.0.0.1 --port "$PORT" >"$OUT/demo.log" 2>&1 &
PID=$!
stop_demo() {
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null
  fi
  [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
  wait 2>/dev/null
}
trap stop_demo EXIT

for _ in $(seq 1 100); do
  grep -q "listening" "$OUT/demo.log" && break
  kill -0 "$PID" 2>/dev/null || { echo "soak: the demo exited:"; cat "$OUT/demo.log"; exit 1; }
  sleep 0.1
done
grep -q "listening" "$OUT/demo.log" || { echo "soak: the demo did not start"; exit 1; }
echo "soak: demo pid $PID on 127.0.0.1:$PORT, fd limit $(awk '/Max open files/ {print $4}' /proc/$PID/limits)"

fds()   { ls "/proc/$PID/fd" 2>/dev/null | wc -l; }
rsskb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null; }
stat_of() { awk -v k="$1" '$1 == k {print $2}' "$2"; }

sleep 1
BASE_FDS=$(fds)
BASE_RSS=$(rsskb)
ls -l "/proc/$PID/fd" >"$OUT/fds-base.txt" 2>/dev/null
"$CLIENT" --port "$PORT" --get /stats >"$OUT/stats-base.txt" || { echo "soak: /stats failed"; exit 1; }

# Peak fds and RSS while the client runs (sampled every 0.5 s).
(
  while kill -0 "$PID" 2>/dev/null; do
    echo "$(ls /proc/$PID/fd 2>/dev/null | wc -l) $(awk '/^VmRSS:/ {print $2}' /proc/$PID/status 2>/dev/null)"
    sleep 0.5
  done
) >"$OUT/samples.txt" &
SAMPLER=$!

echo "soak: client: $CONNS connections, $REQUESTS requests, ${TIME}s limit, seed $SEED"
T0=$(date +%s)
timeout $((TIME + 90)) "$CLIENT" --port "$PORT" --conns "$CONNS" --requests "$REQUESTS" \
  --time "$TIME" --seed "$SEED" | tee "$OUT/client.txt"
CLIENT_RC=${PIPESTATUS[0]}
T1=$(date +%s)
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=

if ! kill -0 "$PID" 2>/dev/null; then
  echo "soak: FAIL: the demo server died during the run"; cat "$OUT/demo.log"; exit 1
fi

sleep "$SETTLE"
AFTER_FDS=$(fds)
AFTER_RSS=$(rsskb)
ls -l "/proc/$PID/fd" >"$OUT/fds-after.txt" 2>/dev/null
"$CLIENT" --port "$PORT" --get /stats >"$OUT/stats-after.txt" || { echo "soak: /stats failed after the run"; exit 1; }
PEAK_FDS=$(awk 'BEGIN{m=0} $1>m {m=$1} END{print m}' "$OUT/samples.txt")
PEAK_RSS=$(awk 'BEGIN{m=0} $2>m {m=$2} END{print m}' "$OUT/samples.txt")

B="$OUT/stats-base.txt"; A="$OUT/stats-after.txt"; C="$OUT/client.txt"
FAIL=0
row() { printf '%-26s %12s %12s %12s  %s\n' "$@"; }
verdict() { if [ "$1" = 1 ]; then echo "ok"; else echo "FAIL"; fi; }
judge() { [ "$1" = 1 ] || FAIL=1; }
cmp_le() { [ "$1" -le "$2" ] && echo 1 || echo 0; }

echo
echo "== soak results ($(date -u '+%Y-%m-%d %H:%M:%S UTC'), client ran $((T1 - T0)) s)"
row "" "baseline" "peak/delta" "after" "check"
r=$(cmp_le "$AFTER_FDS" $((BASE_FDS + 2))); judge "$r"
row "server open fds" "$BASE_FDS" "$PEAK_FDS" "$AFTER_FDS" "$(verdict "$r") (after <= baseline + 2)"
for k in connections_open requests_live connections_idle; do
  b=$(stat_of $k "$B"); a=$(stat_of $k "$A")
  r=$([ "$a" = "$b" ] && echo 1 || echo 0); judge "$r"
  row "$k" "$b" "-" "$a" "$(verdict "$r") (after == baseline)"
done
# RSS: allocators keep some freed memory; a leak grows with the 10^6
# requests. Pass if after <= baseline + max(SLACK, 25% of the peak growth).
GROW=$(( PEAK_RSS > BASE_RSS ? PEAK_RSS - BASE_RSS : 0 ))
ALLOW=$(( RSS_SLACK_MB * 1024 > GROW / 4 ? RSS_SLACK_MB * 1024 : GROW / 4 ))
r=$(cmp_le "$AFTER_RSS" $((BASE_RSS + ALLOW))); judge "$r"
row "server RSS (KiB)" "$BASE_RSS" "$PEAK_RSS" "$AFTER_RSS" "$(verdict "$r") (after <= baseline + $((ALLOW / 1024)) MiB)"
for k in connections_accepted requests_total requests_cancelled bad_requests; do
  b=$(stat_of $k "$B"); a=$(stat_of $k "$A")
  row "$k" "$b" "+$((a - b))" "$a" ""
done
SENT=$(stat_of requests_sent "$C"); SENT=${SENT:-0}
PEAKC=$(stat_of peak_open_conns "$C"); PEAKC=${PEAKC:-0}
r=$(cmp_le "$REQUESTS" "$SENT"); judge "$r"
row "client requests sent" "" "$SENT" "" "$(verdict "$r") (target $REQUESTS)"
r=$(cmp_le "$CONNS" "$PEAKC"); judge "$r"
row "client peak open conns" "" "$PEAKC" "" "$(verdict "$r") (target $CONNS)"
r=$([ "$CLIENT_RC" = 0 ] && echo 1 || echo 0); judge "$r"
row "client errors" "" "$(stat_of errors "$C")" "" "$(verdict "$r") (client exit status $CLIENT_RC)"
echo
if [ "$FAIL" = 0 ]; then echo "soak: PASS"; else echo "soak: FAIL"; fi
exit "$FAIL"
