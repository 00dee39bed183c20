#!/usr/bin/env bash
# soak/run.sh - soak test of the demo server (not part of `make test`).
#
# Builds vigil-demo (release) and soak/soak.c, starts the demo on
# 127.0.0.1:$PORT, records its baseline (open fds, RSS, /stats), runs the
# soak client in two rounds (each with 10 000 concurrent connections,
# together 1 000 000 answered requests; random
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
# SOAK_ROUNDS (2: the budget is split over this many client runs, each
# with all the connections), SOAK_TIME (client time limit per round in s,
# 240), SOAK_SETTLE (s, 5), SOAK_SEED, SOAK_BUILD (SwiftPM scratch path,
# .build-soak: a separate one so that it never waits on, or disturbs, a
# build in .build), SOAK_RSS_SLACK_MB (64), SOAK_RSS_GROWTH_MB (8).
set -u -o pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-18089}"
CONNS="${SOAK_CONNS:-10000}"
REQUESTS="${SOAK_REQUESTS:-1000000}"
TIME="${SOAK_TIME:-240}"
SETTLE="${SOAK_SETTLE:-5}"
SEED="${SOAK_SEED:-$RANDOM$RANDOM}"
BUILD="${SOAK_BUILD:-.build-soak}"
RSS_SLACK_MB="${SOAK_RSS_SLACK_MB:-64}"
RSS_GROWTH_MB="${SOAK_RSS_GROWTH_MB:-8}"
ROUNDS="${SOAK_ROUNDS:-2}"
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

# The budget is split over ROUNDS runs of the client, each with all the
# connections; after each one the server must be back at its baseline. RSS
# after the last round vs after the first shows growth per request (a
# leak) apart from what the allocator keeps after the first peak.
PER=$(( (REQUESTS + ROUNDS - 1) / ROUNDS ))
T0=$(date +%s)
declare -a R_FDS R_RSS R_RC
for round in $(seq 1 "$ROUNDS"); do
  echo "soak: round $round/$ROUNDS: $CONNS connections, $PER requests, ${TIME}s limit, seed $SEED$round"
  timeout $((TIME + 90)) "$CLIENT" --port "$PORT" --conns "$CONNS" --requests "$PER" \
    --time "$TIME" --seed "$SEED$round" | tee "$OUT/client-$round.txt"
  R_RC[$round]=${PIPESTATUS[0]}
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "soak: FAIL: the demo server died during round $round"; cat "$OUT/demo.log"; exit 1
  fi
  sleep "$SETTLE"
  R_FDS[$round]=$(fds)
  R_RSS[$round]=$(rsskb)
  ls -l "/proc/$PID/fd" >"$OUT/fds-after-$round.txt" 2>/dev/null
  "$CLIENT" --port "$PORT" --get /stats >"$OUT/stats-after-$round.txt" ||
    { echo "soak: /stats failed after round $round"; exit 1; }
done
T1=$(date +%s)
echo "soak: after each round: RSS (KiB) ${R_RSS[*]}; fds ${R_FDS[*]}"
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; SAMPLER=
PEAK_FDS=$(awk 'BEGIN{m=0} $1>m {m=$1} END{print m}' "$OUT/samples.txt")
PEAK_RSS=$(awk 'BEGIN{m=0} $2>m {m=$2} END{print m}' "$OUT/samples.txt")

B="$OUT/stats-base.txt"; A="$OUT/stats-after-$ROUNDS.txt"
FAIL=0
row() { printf '%-26s %11s %11s %11s %11s  %s\n' "$@"; }
verdict() { if [ "$1" = 1 ]; then echo "ok"; else echo "FAIL"; fi; }
judge() { [ "$1" = 1 ] || FAIL=1; }
cmp_le() { [ "$1" -le "$2" ] && echo 1 || echo 0; }
sum_client() { local t=0 v; for r in $(seq 1 "$ROUNDS"); do v=$(stat_of "$1" "$OUT/client-$r.txt"); t=$((t + ${v:-0})); done; echo "$t"; }
min_client() { local m="" v; for r in $(seq 1 "$ROUNDS"); do v=$(stat_of "$1" "$OUT/client-$r.txt"); v=${v:-0}; if [ -z "$m" ] || [ "$v" -lt "$m" ]; then m=$v; fi; done; echo "$m"; }

echo
echo "== soak results ($(date -u '+%Y-%m-%d %H:%M:%S UTC'), $ROUNDS rounds, client ran $((T1 - T0)) s incl. ${SETTLE}s settle per round)"
row "" "baseline" "peak" "after r1" "after r$ROUNDS" "check"
ok=1; for r in $(seq 1 "$ROUNDS"); do [ "${R_FDS[$r]}" -le $((BASE_FDS + 2)) ] || ok=0; done; judge $ok
row "server open fds" "$BASE_FDS" "$PEAK_FDS" "${R_FDS[1]}" "${R_FDS[$ROUNDS]}" "$(verdict $ok) (every round: <= baseline + 2)"
for k in connections_open requests_live connections_idle; do
  b=$(stat_of $k "$B"); ok=1
  for r in $(seq 1 "$ROUNDS"); do [ "$(stat_of $k "$OUT/stats-after-$r.txt")" = "$b" ] || ok=0; done; judge $ok
  row "$k" "$b" "-" "$(stat_of $k "$OUT/stats-after-1.txt")" "$(stat_of $k "$A")" "$(verdict $ok) (every round: == baseline)"
done
# RSS. glibc keeps freed memory, so RSS stays near its first peak; what
# must not happen is growth with the number of requests: after the last
# round <= after the first + RSS_GROWTH_MB, and <= baseline + RSS_SLACK_MB.
ok=$(cmp_le "${R_RSS[$ROUNDS]}" $(( R_RSS[1] + RSS_GROWTH_MB * 1024 ))); judge "$ok"
ok2=$(cmp_le "${R_RSS[$ROUNDS]}" $(( BASE_RSS + RSS_SLACK_MB * 1024 ))); judge "$ok2"
row "server RSS (KiB)" "$BASE_RSS" "$PEAK_RSS" "${R_RSS[1]}" "${R_RSS[$ROUNDS]}" \
  "$(verdict $ok) (r$ROUNDS <= r1 + ${RSS_GROWTH_MB} MiB), $(verdict $ok2) (<= baseline + ${RSS_SLACK_MB} MiB)"
for k in connections_accepted requests_total requests_cancelled bad_requests; do
  b=$(stat_of $k "$B")
  row "$k" "$b" "" "+$(( $(stat_of $k "$OUT/stats-after-1.txt") - b ))" "+$(( $(stat_of $k "$A") - b ))" "(cumulative)"
done
ANS=$(sum_client requests_answered)
PEAKC=$(min_client peak_open_answered_conns)
row "client requests sent" "" "" "" "$(sum_client requests_sent)" "(all rounds)"
r=$(cmp_le "$REQUESTS" "$ANS"); judge "$r"
row "client requests answered" "" "" "" "$ANS" "$(verdict "$r") (target $REQUESTS, all rounds)"
row "client conns refused" "" "" "" "$(sum_client refused_before_any_byte)" "(server at max_connections; retried)"
r=$(cmp_le "$CONNS" "$PEAKC"); judge "$r"
row "client conns open at once" "" "" "" "$PEAKC" "$(verdict "$r") (target $CONNS, each answered, every round)"
ERRS=$(sum_client errors); ok=1
for r in $(seq 1 "$ROUNDS"); do [ "${R_RC[$r]}" = 0 ] || ok=0; done; judge $ok
row "client errors" "" "" "" "$ERRS" "$(verdict $ok) (client exit status 0 in every round)"
echo
if [ "$FAIL" = 0 ]; then echo "soak: PASS"; else echo "soak: FAIL"; fi
exit "$FAIL"
