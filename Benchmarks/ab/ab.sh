#!/usr/bin/env bash
# Benchmarks/ab/ab.sh - interleaved A/B of two server binaries on big
# bodies (Benchmarks/ab/bodyload.c): per round, for A then B, start the
# server, POST /echo of 1 MiB bodies (keep-alive) and GET a 64 MiB
# streamed body, stop it. Prints one RESULT line per run and the medians.
#
#   bash Benchmarks/ab/ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# Either binary: vigil-demo or Benchmarks/vigil-c/bench_server.c (the
# harness's C server) built against some libvigil.a: both serve /echo and
# /stream?n=1024&size=65536 (64 MiB in 64 KiB writes).
# Knobs: POSTS (1000), GETS (10), BODY (1048576), PORT (18931).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
A="$1" B="$2" ROUNDS="${3:-3}"
POSTS="${POSTS:-1000}" GETS="${GETS:-10}" BODY="${BODY:-1048576}" PORT="${PORT:-18931}"
OUT="$ROOT/Benchmarks/.build/ab"
mkdir -p "$OUT"
cc -O2 -Wall -o "$OUT/bodyload" "$ROOT/Benchmarks/ab/bodyload.c"
# shellcheck source=Benchmarks/lib.sh
. "$ROOT/Benchmarks/lib.sh"
GET='/stream?n=1024&size=65536'
PID=""
trap '[ -n "$PID" ] && bench_stop "$PID" 10 || true' EXIT
: >"$OUT/results"
for r in $(seq "$ROUNDS"); do
    for side in A B; do
        bin="$A"; [ "$side" = B ] && bin="$B"
        "$bin" --host 127.0.0.1 --port "$PORT" >"$OUT/server.$side.log" 2>&1 &
        PID=$!
        bench_wait_listening "$PORT" "$PID" 10
        p=$("$OUT/bodyload" --port "$PORT" --pid "$PID" --post "$BODY" --requests "$POSTS")
        g=$("$OUT/bodyload" --port "$PORT" --pid "$PID" --get "$GET" --requests "$GETS")
        echo "round=$r side=$side post: $p" | tee -a "$OUT/results"
        echo "round=$r side=$side get:  $g" | tee -a "$OUT/results"
        bench_stop "$PID" 10; PID=""
    done
done
med() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { awk -v s="side=$1" -v w="$2:" -v k="$3" '$2 == s && $3 == w {
    for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$OUT/results"; }
for what in post get; do
    for side in A B; do
        echo "$side $what median mbps=$(field $side $what mbps | med) cpu_per_gb=$(field $side $what cpu_per_gb | med)"
    done
done
