#!/usr/bin/env bash
# The cost of VigilMetrics and VigilTracing (make bench-observe).
#
#   bash Benchmarks/observe/run.sh              3 interleaved rounds, 5 s each
#   QUICK=1 bash Benchmarks/observe/run.sh      1 round, 2 s
#   BASE=<git rev> bash Benchmarks/observe/run.sh
#                                               also vigil-demo built at BASE
#                                               against vigil-demo of the work
#                                               tree: the core's own cost
#
# Servers, all `GET /` -> 200 "Hello, World!" on 127.0.0.1:
#   off       vigil-observe-bench --mode off: the plain handler
#   metrics   the handler in VigilMetrics' MetricsMiddleware, recording into
#             a Prometheus registry (swift-prometheus)
#   tracing   the handler in VigilTracing's TracingMiddleware, spans into
#             swift-distributed-tracing's InMemoryTracer (emptied each second)
#   tracing-noop  TracingMiddleware with swift-distributed-tracing's
#             NoOpTracer: the wrapper's own work (extraction, the task-local,
#             the attributes it computes), no tracer's
#   both      metrics around tracing
#   demo, demo-base (with BASE)  vigil-demo of the work tree and of BASE
# For r in 1..ROUNDS, for each server: start it, wait until it listens,
# `wrk -t1 -c64 -d5s` (keep-alive), with the server's CPU time read from
# /proc before and after, stop it. Prints a Markdown table of the medians of
# req/s and of server CPU per request, and their ratio to `off` (to
# `demo-base` for `demo`); raw wrk output goes to
# Benchmarks/observe/.build/latest.raw.
#
# Knobs: ROUNDS=3 DURATION=5s CONNECTIONS=64 THREADS=1 SKIP_BUILD=1
#        MODES="off metrics tracing tracing-noop both"
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=Benchmarks/lib.sh
. "$ROOT/Benchmarks/lib.sh"
WORK="$HERE/.build"
RAW="$WORK/latest.raw"
HOST=127.0.0.1
if [ "${QUICK:-0}" = "1" ]; then
    ROUNDS="${ROUNDS:-1}"
    DURATION="${DURATION:-2s}"
fi
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
MODES="${MODES:-off metrics tracing tracing-noop both}"
BASE="${BASE:-}"
mkdir -p "$WORK"
: >"$RAW"

log() { printf '[observe %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v wrk >/dev/null 2>&1 || {
    log "installing wrk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}

# The Swift builds run under a fixed environment, as Benchmarks/run.sh's do:
# SwiftPM rebuilds a package whose manifest reads the environment when it
# changes.
swift_build() { # DIR ARGS...
    local dir="$1"
    shift
    (cd "$dir" && env -i PATH="$PATH" HOME="$HOME" LANG="${LANG:-C.UTF-8}" swift build -c release "$@")
}

BENCH="$ROOT/.build/release/vigil-observe-bench"
DEMO="$ROOT/.build/release/vigil-demo"
BASE_DIR="$WORK/base"
BASE_DEMO="$BASE_DIR/.build/release/vigil-demo"
if [ "${SKIP_BUILD:-0}" != "1" ]; then
    log "building vigil-observe-bench (release)"
    swift_build "$ROOT" --product vigil-observe-bench >"$WORK/build.log" 2>&1 ||
        { log "build failed: $WORK/build.log"; exit 1; }
    if [ -n "$BASE" ]; then
        log "building vigil-demo (release) of the work tree and of $BASE"
        swift_build "$ROOT" --product vigil-demo >>"$WORK/build.log" 2>&1 ||
            { log "build failed: $WORK/build.log"; exit 1; }
        rm -rf "$BASE_DIR"
        mkdir -p "$BASE_DIR"
        git -C "$ROOT" archive "$BASE" | tar -C "$BASE_DIR" -xf -
        swift_build "$BASE_DIR" --product vigil-demo >>"$WORK/build.log" 2>&1 ||
            { log "build of $BASE failed: $WORK/build.log"; exit 1; }
    fi
fi

SERVERS="$MODES"
[ -n "$BASE" ] && SERVERS="$SERVERS demo-base demo"

command_for() { # NAME PORT
    case "$1" in
    demo) echo "$DEMO --host $HOST --port $2" ;;
    demo-base) echo "$BASE_DEMO --host $HOST --port $2" ;;
    *) echo "$BENCH --port $2 --mode $1" ;;
    esac
}

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done; }
trap cleanup EXIT

# The server's user + system CPU time in clock ticks (/proc/PID/stat
# fields 14 and 15). CPU per request moves far less than req/s when other
# work shares the machine: req/s drops with every cycle the server waits
# for a core, CPU per request only with what it runs.
HZ="$(getconf CLK_TCK)"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

declare -A RESULTS CPU
for ((round = 1; round <= ROUNDS; round++)); do
    for name in $SERVERS; do
        port="$(bench_free_port)"
        # shellcheck disable=SC2046
        $(command_for "$name" "$port") >>"$WORK/server.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        if ! bench_wait_listening "$port" "$pid" 20; then
            log "$name did not listen (see $WORK/server.log)"
            bench_stop "$pid" 5
            continue
        fi
        secs="${DURATION%s}"
        before="$(cpu_ticks "$pid")"
        out="$(timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://$HOST:$port/" 2>&1)"
        after="$(cpu_ticks "$pid")"
        printf '=== %s round %d (server cpu ticks %s -> %s)\n%s\n' "$name" "$round" "$before" "$after" "$out" >>"$RAW"
        rps="$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')"
        requests="$(echo "$out" | awk '/requests in/ {print $1}')"
        cpu="$(awk -v a="$before" -v b="$after" -v n="${requests:-0}" -v hz="$HZ" \
            'BEGIN { if (n > 0 && b > a) printf "%.2f", (b - a) / hz * 1e6 / n; else print "err" }')"
        echo "$out" | grep -q 'Non-2xx\|Socket errors' && log "$name round $round: $(echo "$out" | grep 'Non-2xx\|Socket errors' | xargs)"
        RESULTS[$name]="${RESULTS[$name]:-} ${rps:-err}"
        CPU[$name]="${CPU[$name]:-} $cpu"
        log "$name round $round: ${rps:-err} req/s, $cpu µs of server CPU per request"
        bench_stop "$pid" 5
    done
done

median() {
    printf '%s\n' "$@" | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -g |
        awk '{a[NR]=$1} END { if (NR==0) {print "NA"; exit}
                              if (NR%2) printf "%.2f\n", a[(NR+1)/2];
                              else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) {print "—"; exit}; printf "%.3f", a/b }'; }

# shellcheck disable=SC2086
off="$(median ${RESULTS[off]:-})"; off_cpu="$(median ${CPU[off]:-})"
# shellcheck disable=SC2086
base="$(median ${RESULTS[demo-base]:-})"; base_cpu="$(median ${CPU[demo-base]:-})"
echo "| server | keep-alive req/s (median) | ratio | server CPU µs/request (median) | ratio | req/s by round | CPU µs by round |"
echo "|---|---|---|---|---|---|---|"
for name in $SERVERS; do
    # shellcheck disable=SC2086
    m="$(median ${RESULTS[$name]:-})"
    # shellcheck disable=SC2086
    c="$(median ${CPU[$name]:-})"
    case "$name" in
    demo) r="$(ratio "$m" "$base") ×demo-base"; rc="$(ratio "$c" "$base_cpu") ×demo-base" ;;
    demo-base | off) r="1"; rc="1" ;;
    *) r="$(ratio "$m" "$off") ×off"; rc="$(ratio "$c" "$off_cpu") ×off" ;;
    esac
    echo "| $name | $(printf '%.0f' "$m" 2>/dev/null || echo "$m") | $r | $c | $rc |${RESULTS[$name]:-} |${CPU[$name]:-} |"
done
