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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

total() { # total Ir of a callgrind output file
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

run_one() { # depth requests -> callgrind out file
    local depth=$1 n=$2 port log file pid ok=0
    port="$(free_port)"
    file="$OUT/callgrind.$depth.$n"
    log="$OUT/server.$depth.$n.log"
    valgrind --tool=callgrind --callgrind-out-file="$file" "$SERVER" --port "$port" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do  # valgrind starts slowly: up to 20 s
        sleep 0.2
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ok=1; break; fi
    done
    if [ "$ok" = 1 ]; then
        timeout 120 "$OUT/drive" --port "$port" --requests "$n" --depth "$depth" || ok=0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    timeout 60 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ "$ok" = 1 ] || { echo "run depth=$depth n=$n failed (see $log)" >&2; return 1; }
    echo "$file"
}

for depth in 1 16; do
    a="$(run_one "$depth" 200)"
    b="$(run_one "$depth" 2200)"
    echo "INSTR depth=$depth instructions_per_request=$(( ($(total "$b") - $(total "$a")) / 2000 ))"
done
