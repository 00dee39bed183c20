#!/usr/bin/env bash
# Benchmarks/instr/run.sh - instructions per request of Vigil's C path, by
# callgrind: a figure that does not move with machine noise (catches
# regressions that the noisy req/s cannot).
#
#   bash Benchmarks/instr/run.sh [SERVER_BINARY]
#
# The server (default .build-c/vigil-c-bench: examples/c/hello.c on
# libvigil.a) runs under `valgrind --tool=callgrind`; drive.c sends N
# requests `GET /` over one loopback connection, DEPTH per write (1 =
# keep-alive, 16 = the pipelined benchmark). Two runs per depth, N=200 and
# N=2200: the difference over 2000 requests cancels start-up and shutdown.
# User-space instructions of the server process, every thread.
#
# The Swift demo cannot be measured this way: valgrind 3.19 crashes on the
# Swift runtime (SIGSEGV inside valgrind itself). Prints one line per depth:
#   INSTR depth=1 instructions_per_request=N
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SERVER="${1:-$ROOT/.build-c/vigil-c-bench}"
OUT="$ROOT/Benchmarks/.build/instr"
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind missing (apt-get install valgrind)"; exit 1; }
[ -x "$SERVER" ] || { echo "no server binary $SERVER (make vigil-c-bench)"; exit 1; }
cc -O2 -Wall -o "$OUT/drive" "$ROOT/Benchmarks/instr/drive.c"

# shellcheck source=Benchmarks/lib.sh
. "$ROOT/Benchmarks/lib.sh"

total() { # total Ir of a callgrind output file
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

run_one() { # depth requests -> callgrind out file
    local depth=$1 n=$2 port log file pid ok=0
    port="$(bench_free_port)"
    file="$OUT/callgrind.$depth.$n"
    log="$OUT/server.$depth.$n.log"
    rm -f "$file" # never read a previous run's figures
    valgrind --tool=callgrind --callgrind-out-file="$file" "$SERVER" --port "$port" >"$log" 2>&1 &
    pid=$!
    # valgrind starts slowly: up to 20 s
    if bench_wait_listening "$port" "$pid" 20; then
        timeout 120 "$OUT/drive" --port "$port" --requests "$n" --depth "$depth" && ok=1
    fi
    # Killed, callgrind writes no totals: the run does not count.
    bench_stop "$pid" 60 || ok=0
    [ "$ok" = 1 ] && [ -s "$file" ] || { echo "run depth=$depth n=$n failed (see $log)" >&2; return 1; }
    echo "$file"
}

for depth in 1 16; do
    a="$(run_one "$depth" 200)" || exit 1
    b="$(run_one "$depth" 2200)" || exit 1
    ta="$(total "$a")"
    tb="$(total "$b")"
    [[ "$ta" =~ ^[0-9]+$ && "$tb" =~ ^[0-9]+$ ]] || { echo "no callgrind totals in $a / $b" >&2; exit 1; }
    echo "INSTR depth=$depth instructions_per_request=$(( (tb - ta) / 2000 ))"
done
