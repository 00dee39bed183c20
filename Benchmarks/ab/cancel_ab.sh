#!/usr/bin/env bash
# Benchmarks/ab/cancel_ab.sh - interleaved A/B of two vigil-demo builds on
# cancellation latency (Benchmarks/cancel/cancel_latency.c against /wait):
# per round, for A then B, start the server, FIN then RST rounds, stop it;
# then the kernel's own floor (kernel_floor.c), FIN and RST, once per round.
#
#   bash Benchmarks/ab/cancel_ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# Knobs: CANCEL_ROUNDS (200), PORT (18933).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
A="$1" B="$2" ROUNDS="${3:-3}"
N="${CANCEL_ROUNDS:-200}" PORT="${PORT:-18933}"
OUT="$ROOT/Benchmarks/.build/ab"
mkdir -p "$OUT"
cc -O2 -Wall -o "$OUT/cancel_latency" "$ROOT/Benchmarks/cancel/cancel_latency.c"
cc -O2 -Wall -pthread -o "$OUT/kernel_floor" "$ROOT/Benchmarks/cancel/kernel_floor.c"
. "$ROOT/Benchmarks/lib.sh"
PID=""
trap '[ -n "$PID" ] && bench_stop "$PID" 10 || true' EXIT
p50() { awk '/^RESULT/ { for (i = 1; i <= NF; i++) if ($i ~ /^p50_us=/) { sub("p50_us=", "", $i); print $i } }'; }
declare -A v
for r in $(seq "$ROUNDS"); do
    for side in A B; do
        bin="$A"; [ "$side" = B ] && bin="$B"
        "$bin" --host 127.0.0.1 --port "$PORT" >/dev/null 2>&1 &
        PID=$!
        bench_wait_listening "$PORT" "$PID" 10
        f=$("$OUT/cancel_latency" --port "$PORT" --mode fin --rounds "$N" | p50)
        s=$("$OUT/cancel_latency" --port "$PORT" --mode rst --rounds "$N" | p50)
        echo "round=$r side=$side fin_p50=$f rst_p50=$s"
        v[$side.fin]+="$f "; v[$side.rst]+="$s "
        bench_stop "$PID" 10; PID=""
    done
    kf=$("$OUT/kernel_floor" --rounds "$N" | p50)
    kr=$("$OUT/kernel_floor" --rst --rounds "$N" | p50)
    echo "round=$r kernel fin_p50=$kf rst_p50=$kr"
    v[K.fin]+="$kf "; v[K.rst]+="$kr "
done
med() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for side in A B K; do
    echo "$side median fin_p50=$(echo "${v[$side.fin]}" | med) rst_p50=$(echo "${v[$side.rst]}" | med)"
done
