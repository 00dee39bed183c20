#!/usr/bin/env bash
# Benchmarks/ab/wrk_ab.sh - interleaved A/B of two vigil-demo builds on the
# small-request figures: per round, for A then B, start the server, wrk
# keep-alive then pipelined (Benchmarks/wrk/pipeline.lua), stop it.
#
#   bash Benchmarks/ab/wrk_ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# Knobs: DURATION (5s), CONNECTIONS (64), PORT (18932).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
A="$1" B="$2" ROUNDS="${3:-3}"
DURATION="${DURATION:-5s}" CONNECTIONS="${CONNECTIONS:-64}" PORT="${PORT:-18932}"
. "$ROOT/Benchmarks/lib.sh"
PID=""
trap '[ -n "$PID" ] && bench_stop "$PID" 10 || true' EXIT
rps() { awk '/^Requests\/sec/ { print $2 }'; }
declare -A ka pl
for r in $(seq "$ROUNDS"); do
    for side in A B; do
        bin="$A"; [ "$side" = B ] && bin="$B"
        "$bin" --host 127.0.0.1 --port "$PORT" >/dev/null 2>&1 &
        PID=$!
        bench_wait_listening "$PORT" "$PID" 10
        k=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$PORT/" | rps)
        p=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$ROOT/Benchmarks/wrk/pipeline.lua" "http://127.0.0.1:$PORT/" | rps)
        echo "round=$r side=$side keepalive=$k pipelined=$p"
        ka[$side]+="$k "; pl[$side]+="$p "
        bench_stop "$PID" 10; PID=""
    done
done
med() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for side in A B; do
    echo "$side median keepalive=$(echo "${ka[$side]}" | med) pipelined=$(echo "${pl[$side]}" | med)"
done
