#!/usr/bin/env bash
# Benchmarks/ab/instr.sh - user-space instructions per MiB of body of a C
# server binary (Benchmarks/vigil-c/bench_server.c built
# against some libvigil.a) under
# callgrind: deterministic, unlike MB/s on a shared machine. Two runs per
# scenario (N and 2N requests), the difference divided by the MiB moved, so
# start-up and shutdown cancel out.
#
#   bash Benchmarks/ab/instr.sh BENCH_SERVER_BINARY
#
# Prints: INSTR get64=<instructions per MiB of a 64 MiB GET, 64 KiB writes>
#               echo1m=<instructions per MiB echoed (in + out), 1 MiB POSTs>
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$1"
OUT="$ROOT/Benchmarks/.build/ab"
mkdir -p "$OUT"
cc -O2 -Wall -o "$OUT/bodyload" "$ROOT/Benchmarks/ab/bodyload.c"
. "$ROOT/Benchmarks/lib.sh"
total() { # args for bodyload -> program total Ir
    local port pid
    port="$(bench_free_port)"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$BIN" --port "$port" >/dev/null 2>&1 &
    pid=$!
    bench_wait_listening "$port" "$pid" 60
    "$OUT/bodyload" --port "$port" "$@" >/dev/null
    kill -TERM "$pid"; wait "$pid" || true
    callgrind_annotate "$OUT/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
g1=$(total --get '/stream?n=1024&size=65536' --requests 1)
g2=$(total --get '/stream?n=1024&size=65536' --requests 3)
e1=$(total --post 1048576 --requests 16)
e2=$(total --post 1048576 --requests 48)
echo "INSTR get64=$(( (g2 - g1) / 128 )) echo1m=$(( (e2 - e1) / 64 ))"
