#!/usr/bin/env bash
# Benchmarks/calls/run.sh - runtime calls per request of Vigil's Swift path:
# the Swift side's stand-in for Benchmarks/instr (valgrind cannot run the
# Swift runtime). Uprobes count calls into the Swift runtime and libc while
# drive.c sends N requests over one loopback connection; the count divided
# by N is the same on every run of one binary, whatever else the machine
# does, so it catches regressions that req/s hides in noise.
#
#   bash Benchmarks/calls/run.sh [SERVER_BINARY]     (root, linux-perf)
#
# SERVER_BINARY defaults to .build/release/vigil-demo. Prints one line per
# depth (1 = keep-alive, 16 = the pipelined benchmark):
#   CALLS depth=16 swift_retain=... swift_release=... ... (per request)
# The probes are added for the run and removed after it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SERVER="${1:-$ROOT/.build/release/vigil-demo}"
OUT="$ROOT/Benchmarks/.build/calls"
N="${CALLS_REQUESTS:-20000}"
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "perf missing (apt-get install linux-perf)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "uprobes need root"; exit 1; }
[ -x "$SERVER" ] || { echo "no server binary $SERVER"; exit 1; }
cc -O2 -Wall -o "$OUT/drive" "$ROOT/Benchmarks/instr/drive.c"

lib() { ldd "$SERVER" | awk -v n="$1" '$1 ~ n {print $3; exit}'; }
SWIFTCORE="$(lib libswiftCore.so)"
CONCURRENCY="$(lib libswift_Concurrency.so)"
LIBC="$(lib libc.so.6)"
# event name (group:name) -> binary:function
PROBES=(
    "vigil_calls:swift_retain $SWIFTCORE swift_retain"
    "vigil_calls:swift_release $SWIFTCORE swift_release"
    "vigil_calls:swift_bridgeObjectRetain $SWIFTCORE swift_bridgeObjectRetain"
    "vigil_calls:swift_bridgeObjectRelease $SWIFTCORE swift_bridgeObjectRelease"
    "vigil_calls:swift_allocObject $SWIFTCORE swift_allocObject"
    "vigil_calls:swift_task_switch $CONCURRENCY swift_task_switch"
    "vigil_calls:swift_task_alloc $CONCURRENCY swift_task_alloc"
    "vigil_calls:malloc $LIBC malloc"
    "vigil_calls:_int_malloc $LIBC _int_malloc"
    "vigil_calls:pthread_mutex_lock $LIBC pthread_mutex_lock"
)

# shellcheck source=Benchmarks/lib.sh
. "$ROOT/Benchmarks/lib.sh"

PID=""
cleanup() {
    # The probes first: a server that hangs on its way out must not leave
    # them in the kernel.
    perf probe -q -d 'vigil_calls:*' 2>/dev/null || true
    if [ -n "$PID" ]; then bench_stop "$PID" 10 || true; fi
}
trap cleanup EXIT
perf probe -q -d 'vigil_calls:*' 2>/dev/null || true
events=()
for p in "${PROBES[@]}"; do
    read -r ev bin fn <<<"$p"
    if perf probe -q -x "$bin" -a "$ev=$fn" 2>/dev/null; then
        events+=("$ev")
    else
        echo "warning: no probe on $fn in $bin" >&2
    fi
done
[ "${#events[@]}" -gt 0 ] || { echo "no probe could be placed"; exit 1; }

PORT="$(bench_free_port)"
"$SERVER" --host 127.0.0.1 --port "$PORT" >"$OUT/server.log" 2>&1 &
PID=$!
bench_wait_listening "$PORT" "$PID" 10 || { echo "server did not start (see $OUT/server.log)"; exit 1; }

list="$(IFS=,; echo "${events[*]}")"
for depth in 1 16; do
    # Warm up (workers, pools, buffers), then count.
    timeout 60 "$OUT/drive" --port "$PORT" --requests 2000 --depth "$depth" >/dev/null
    perf stat -x, -e "$list" -p "$PID" -o "$OUT/stat.$depth" -- \
        timeout 120 "$OUT/drive" --port "$PORT" --requests "$N" --depth "$depth" >/dev/null
    printf 'CALLS depth=%s' "$depth"
    # "<not counted>" / "<not supported>" is no count: n/a, never 0.
    awk -F, -v n="$N" '/vigil_calls:/ {split($3, a, ":");
        if ($1 ~ /^[0-9]+$/) printf " %s=%.2f", a[2], $1 / n; else printf " %s=n/a", a[2]}
        END {print ""}' \
        "$OUT/stat.$depth"
done
