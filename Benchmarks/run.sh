#!/usr/bin/env bash
# Vigil benchmark driver.  Usage (from the repo root or anywhere):
#
#   bash Benchmarks/run.sh                # full run (3 interleaved rounds, 5 s each)
#   QUICK=1 bash Benchmarks/run.sh        # smoke run (1 round, 2 s)
#
# What it does:
#   1. installs what is missing (Debian: wrk golang-go libuv1-dev pkg-config
#      valgrind linux-perf)
#   2. builds the floor (C/libuv), the Go server, the cancel-latency,
#      kernel-floor and idle-connection tools, the SwiftNIO/Hummingbird
#      package (release), Vigil's vigil-demo (release, from the repo root)
#      and vigil-c-bench (make vigil-c-bench)
#   3. throughput: for r in 1..ROUNDS, for each server: start it, wait until it
#      answers, wrk keep-alive, wrk 16-deep pipelined, stop it
#   4. cancel latency (client FIN and RST, CANCEL_ROUNDS rounds) for the
#      servers that have the /wait + /cancels routes, and the kernel's own
#      figure (kernel_floor, no server) for the floor row
#   3b. the figures users feel (issue 15), interleaved rounds as in 3: for
#      each server, a fresh process (the floor with --full): POST echo of
#      1 MiB bodies and a 64 MiB chunked download (wrk; MB/s and server CPU
#      seconds per GB from /proc/PID/stat), a new connection per request
#      (wrk -H "Connection: close"), and latency percentiles at half the
#      server's own keep-alive median from 3 (Benchmarks/latency, open loop)
#   5. idle keep-alive connection RSS (IDLE_CONNS connections) for each server
#   5b. many long streams: STREAMS clients on GET /stream?ms=1000 (an event a
#      second each), server CPU per event and RSS per stream
#      (Benchmarks/streams)
#   6. instructions per request of Vigil's C path (callgrind, Benchmarks/instr)
#      and runtime calls per request of its Swift path (uprobes,
#      Benchmarks/calls; needs root)
#   7. prints one Markdown table (medians, ratios to floor and to nio) and
#      writes it to Benchmarks/results/latest.md; raw tool output goes to
#      Benchmarks/results/latest.raw
#
# Knobs (environment):
#   ROUNDS=3  DURATION=5s  QUICK=1 (=> ROUNDS=1 DURATION=2s unless set)
#   CONNECTIONS=64  THREADS=1        wrk -t THREADS -c CONNECTIONS
#   CANCEL_ROUNDS=200  IDLE_CONNS=10000
#   BODY_CONNECTIONS=8 DOWNLOAD_CONNECTIONS=4   wrk -c for echo / download
#   BODY_BYTES=1048576 DOWNLOAD_CHUNKS=256 (x 256 KiB = 64 MiB)
#   LATENCY_CONNECTIONS=64  STREAMS=10000 (QUICK: 1000)  STREAM_MEASURE_MS=5000
#   SERVERS="floor go ..."           only these servers (names from the table)
#   SKIP_BUILD=1                     use what is already built
#   SKIP_VIGIL_BUILD=1               do not build the main package
#   SKIP_CALLS=1                     no uprobe call counts (Benchmarks/calls)
#   BASE_PORT=18300                  server i listens on BASE_PORT+i
#   SKIP_CANCEL=1  SKIP_IDLE=1  SKIP_INSTR=1   skip those phases
#   SKIP_BODY=1 SKIP_CLOSE=1 SKIP_LATENCY=1 SKIP_STREAMS=1   skip new scenarios
#
# All traffic goes to 127.0.0.1. Every server started is killed on exit.

set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=Benchmarks/lib.sh
. "$HERE/lib.sh"
BIN="$HERE/.build/bin"
SWIFT_BIN="$HERE/swift/.build/release"
RESULTS="$HERE/results"
LOGDIR="$HERE/.build/logs"
HOST=127.0.0.1

if [ "${QUICK:-0}" = "1" ]; then
    ROUNDS="${ROUNDS:-1}"
    DURATION="${DURATION:-2s}"
fi
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
CANCEL_ROUNDS="${CANCEL_ROUNDS:-200}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
if [ "${QUICK:-0}" = "1" ]; then
    STREAMS="${STREAMS:-1000}"
    STREAM_MEASURE_MS="${STREAM_MEASURE_MS:-3000}"
fi
STREAMS="${STREAMS:-10000}"
STREAM_MEASURE_MS="${STREAM_MEASURE_MS:-5000}"
BODY_CONNECTIONS="${BODY_CONNECTIONS:-8}"
DOWNLOAD_CONNECTIONS="${DOWNLOAD_CONNECTIONS:-4}"
BODY_BYTES="${BODY_BYTES:-1048576}"
DOWNLOAD_CHUNKS="${DOWNLOAD_CHUNKS:-256}"
DOWNLOAD_CHUNK_BYTES=262144
LATENCY_CONNECTIONS="${LATENCY_CONNECTIONS:-64}"
BASE_PORT="${BASE_PORT:-18300}"

# ---------------------------------------------------------------------------
# The servers: ONE table.  name | has /wait+/cancels (y/n) | command line.
# {PORT} is replaced by the server's port. A server whose executable (first
# word) is missing is skipped with a message. Add a line to add a server.
# ---------------------------------------------------------------------------
SERVER_TABLE="
floor       | n | $BIN/floor --host $HOST --port {PORT}
go          | y | $BIN/go-bench --host $HOST --port {PORT}
nio         | n | $SWIFT_BIN/nio-bench --host $HOST --port {PORT}
hummingbird | n | $SWIFT_BIN/hb-bench --host $HOST --port {PORT}
vigil-swift | y | $ROOT/.build/release/vigil-demo --host $HOST --port {PORT}
vigil-c     | y | $BIN/vigil-c-full --host $HOST --port {PORT}
"
# Extra arguments in phase 3b (the floor's --full mode: bodies, downloads,
# Connection: close; without it the floor's hello path is untouched).
declare -A NEW_ARGS=([floor]="--full")

log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- cleanup: kill every server we started ---------------------------------
STARTED_PIDS=()
cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
        fi
    done
    sleep 0.2
    for pid in "${STARTED_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
        fi
    done
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Raise the file-descriptor limit for us and the servers we start (10k idle
# connections need 10k fds on each side).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$BIN" "$RESULTS" "$LOGDIR"

# --- 1. prerequisites ---------------------------------------------------------
install_missing() {
    local missing=()
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v go >/dev/null 2>&1 || missing+=(golang-go)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if ! { [ -f /usr/include/uv.h ] || pkg-config --exists libuv 2>/dev/null; }; then missing+=(libuv1-dev); fi
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    [ "${SKIP_INSTR:-0}" = 1 ] || command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
    [ "${SKIP_CALLS:-0}" = 1 ] || command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
    # Vigil's own build takes llhttp's C sources from Debian's node-llhttp.
    if [ -d "$ROOT/CSources/CLLHTTP" ] && [ ! -f /usr/share/llhttp/llhttp.c ]; then missing+=(node-llhttp); fi
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
        local SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null ||
            { log "apt-get install failed"; exit 1; }
    fi
}

# --- 2. builds ------------------------------------------------------------------
build_all() {
    local uvflags
    uvflags="$(pkg-config --cflags --libs libuv 2>/dev/null || echo -luv)"
    log "building floor, cancel_latency, idle_conns (cc -O2)"
    cc -O2 -o "$BIN/floor" "$HERE/floor/floor.c" $uvflags || { log "floor build failed"; exit 1; }
    cc -O2 -o "$BIN/cancel_latency" "$HERE/cancel/cancel_latency.c" || { log "cancel_latency build failed"; exit 1; }
    cc -O2 -pthread -o "$BIN/kernel_floor" "$HERE/cancel/kernel_floor.c" || { log "kernel_floor build failed"; exit 1; }
    cc -O2 -o "$BIN/idle_conns" "$HERE/mem/idle_conns.c" || { log "idle_conns build failed"; exit 1; }
    cc -O2 -o "$BIN/latency" "$HERE/latency/latency.c" || { log "latency build failed"; exit 1; }
    cc -O2 -o "$BIN/streams" "$HERE/streams/streams.c" || { log "streams build failed"; exit 1; }

    log "building go-bench (go $(go env GOVERSION 2>/dev/null))"
    (cd "$HERE/go" && GOPROXY=off GOFLAGS=-mod=mod go build -o "$BIN/go-bench" .) ||
        log "go-bench build failed: the go server will be skipped"

    # SwiftPM rebuilds when the environment differs from the last build's, so
    # build with a fixed, minimal one (QUICK=1 vs ROUNDS=5 must not rebuild).
    local -a CLEAN_ENV=(env -i "PATH=$PATH" "HOME=${HOME:-/root}" "LANG=${LANG:-C.UTF-8}")
    log "building Benchmarks/swift (nio-bench, hb-bench), release; first build takes minutes"
    "${CLEAN_ENV[@]}" swift build -c release --package-path "$HERE/swift" >"$LOGDIR/swift-bench-build.log" 2>&1 ||
        log "Benchmarks/swift build failed (see $LOGDIR/swift-bench-build.log): nio and hummingbird will be skipped"

    if [ "${SKIP_VIGIL_BUILD:-0}" != "1" ]; then
        if [ -f "$ROOT/Package.swift" ]; then
            log "building vigil-demo (swift build -c release --product vigil-demo)"
            "${CLEAN_ENV[@]}" swift build -c release --package-path "$ROOT" --product vigil-demo >"$LOGDIR/vigil-build.log" 2>&1 ||
                log "vigil-demo build failed (see $LOGDIR/vigil-build.log): vigil-swift will be skipped"
        else
            log "no $ROOT/Package.swift: vigil-swift will be skipped"
        fi
        # The C handler: examples/c/hello.c on libvigil.a (mk/c.mk). Built
        # here, not left to an earlier `make test-c`: a fresh machine has
        # no .build-c.
        log "building vigil-c-bench (make vigil-c-bench)"
        make -C "$ROOT" --no-print-directory vigil-c-bench BUILD_C=.build-c >"$LOGDIR/vigil-c-build.log" 2>&1 ||
            log "vigil-c-bench build failed (see $LOGDIR/vigil-c-build.log): vigil-c will be skipped"
        # The vigil-c row: every route of the harness in C (GET / as
        # examples/c/hello.c), on the libvigil.a that make just built.
        log "building vigil-c-full (Benchmarks/vigil-c/bench_server.c on libvigil.a)"
        rm -f "$BIN/vigil-c-full"
        [ -f "$ROOT/.build-c/libvigil.a" ] &&
            cc -O2 -pthread -I "$ROOT/include" -o "$BIN/vigil-c-full" "$HERE/vigil-c/bench_server.c" \
                "$ROOT/.build-c/libvigil.a" $uvflags -lpthread >>"$LOGDIR/vigil-c-build.log" 2>&1 ||
            log "vigil-c-full build failed (see $LOGDIR/vigil-c-build.log): vigil-c will be skipped"
    fi
}

# --- helpers ----------------------------------------------------------------
# Names, flags and commands from the table, in table order.
NAMES=()
declare -A CANCEL_OK CMD PORT
parse_table() {
    local i=0 name cancel cmd
    while IFS='|' read -r name cancel cmd; do
        name="$(echo "$name" | xargs)"
        [ -z "$name" ] && continue
        cancel="$(echo "$cancel" | xargs)"
        cmd="$(echo "$cmd" | sed -e 's/^ *//' -e 's/ *$//')"
        PORT[$name]=$((BASE_PORT + i))
        i=$((i + 1))
        if [ -n "${SERVERS:-}" ] && ! [[ " $SERVERS " == *" $name "* ]]; then continue; fi
        NAMES+=("$name")
        CANCEL_OK[$name]="$cancel"
        CMD[$name]="${cmd//\{PORT\}/${PORT[$name]}}"
    done <<<"$SERVER_TABLE"
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# 0 if GET / on the port answers with a status line.
http_answers() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1 || exit 1
        printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
        head -c 12 <&3" 2>/dev/null | grep -q '^HTTP/1\.[01] '
}

SERVER_PID=""
# start_server NAME [EXTRA ARGS...]: starts it, waits until it answers
# (<= 20 s). 0 on success.
start_server() {
    local name="$1" port="${PORT[$1]}" i
    local -a argv
    read -r -a argv <<<"${CMD[$name]}"
    shift
    argv+=("$@")
    if port_in_use "$port"; then
        log "port $port is already in use by something else: not starting $name"
        return 1
    fi
    "${argv[@]}" >>"$LOGDIR/$name.log" 2>&1 &
    SERVER_PID=$!
    STARTED_PIDS+=("$SERVER_PID")
    for i in $(seq 1 200); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$name exited during startup (see $LOGDIR/$name.log)"
            return 1
        fi
        if http_answers "$port"; then return 0; fi
        sleep 0.1
    done
    log "$name did not answer on port $port within 20 s"
    stop_server
    return 1
}

stop_server() {
    [ -z "$SERVER_PID" ] && return 0
    bench_stop "$SERVER_PID" 3
    SERVER_PID=""
}

available() { [ -x "$(first_word "${CMD[$1]}")" ]; }
first_word() { set -- $1; echo "$1"; }

duration_seconds() { # 5s, 2s, 1m -> seconds
    local d="$1"
    case "$d" in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
    esac
}

# run_wrk NAME SCENARIO [wrk args...]: prints req/s (or "err")
run_wrk() {
    local name="$1" scen="$2"
    shift 2
    local port="${PORT[$name]}" out rps secs
    secs="$(duration_seconds "$DURATION")"
    out="$(timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" "http://$HOST:$port/" 2>&1)"
    {
        echo "=== $name $scen round $ROUND: wrk -t$THREADS -c$CONNECTIONS -d$DURATION $*"
        echo "$out"
    } >>"$RAW"
    rps="$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')"
    if echo "$out" | grep -q 'Non-2xx or 3xx responses'; then
        echo "$name $scen round $ROUND: wrk saw non-2xx responses" >>"$WARNFILE"
    fi
    if echo "$out" | grep -q 'Socket errors'; then
        echo "$name $scen round $ROUND: $(echo "$out" | grep 'Socket errors' | xargs)" >>"$WARNFILE"
    fi
    echo "${rps:-err}"
}

# The server's CPU time so far (utime + stime, all threads), in clock ticks.
cpu_ticks() {
    sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# wrk_bytes_per_s OUTPUT: Transfer/sec (response bytes, wrk's binary units)
# in bytes per second, or "err".
wrk_bytes_per_s() {
    echo "$1" | awk '/^Transfer\/sec:/ { v = $2; m = 1
        if (v ~ /KB$/) m = 1024; else if (v ~ /MB$/) m = 1048576; else if (v ~ /GB$/) m = 1073741824
        sub(/[KMG]?B$/, "", v); printf "%.0f\n", v * m; found = 1 }
        END { if (!found) print "err" }'
}

# run_wrk_flow NAME SCENARIO PATH [wrk args...]: wrk against PATH of the
# running server; prints "MB/s CPU-s-per-GB" (MB = 10^6 bytes of response
# body read by wrk per second; CPU of the server process over the run,
# per 10^9 bytes read), or "err err".
run_wrk_flow() {
    local name="$1" scen="$2" path="$3"
    shift 3
    local port="${PORT[$name]}" out secs c0 c1 bps
    secs="$(duration_seconds "$DURATION")"
    c0="$(cpu_ticks "$SERVER_PID")"
    out="$(timeout $((secs + 30)) wrk -t"$THREADS" -d"$DURATION" "$@" "http://$HOST:$port$path" 2>&1)"
    c1="$(cpu_ticks "$SERVER_PID")"
    {
        echo "=== $name $scen round $ROUND: wrk -t$THREADS -d$DURATION $* $path (server CPU ticks $c0 -> $c1, $CLK_TCK/s)"
        echo "$out"
    } >>"$RAW"
    if echo "$out" | grep -q 'Non-2xx or 3xx responses'; then
        echo "$name $scen round $ROUND: wrk saw non-2xx responses" >>"$WARNFILE"
    fi
    if echo "$out" | grep -q 'Socket errors'; then
        echo "$name $scen round $ROUND: $(echo "$out" | grep 'Socket errors' | xargs)" >>"$WARNFILE"
    fi
    bps="$(wrk_bytes_per_s "$out")"
    awk -v b="$bps" -v c0="$c0" -v c1="$c1" -v t="$CLK_TCK" -v s="$secs" 'BEGIN {
        if (b !~ /^[0-9.]+$/ || b == 0) { print "err err"; exit }
        cpu = (c1 - c0) / t; bytes = b * s
        printf "%.1f %.2f\n", b / 1e6, (c0 ~ /^[0-9]+$/ && c1 ~ /^[0-9]+$/) ? cpu / (bytes / 1e9) : "err" }'
}

median() {
    printf '%s\n' "$@" | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -g |
        awk '{a[NR]=$1} END { if (NR==0) {print "NA"; exit}
                              if (NR%2) printf "%.0f\n", a[(NR+1)/2];
                              else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2 }'
}

# get KEY: the value of KEY= in $line (a RESULT line)
get() { echo "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

median_f() { # as median, two decimals
    printf '%s\n' "$@" | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -g |
        awk '{a[NR]=$1} END { if (NR==0) {print "NA"; exit}
                              if (NR%2) printf "%.2f\n", a[(NR+1)/2];
                              else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2 }'
}

fmt_rps() { # 135210 -> 135.2k, 1490000 -> 1.49M
    awk -v v="$1" 'BEGIN { if (v !~ /^[0-9.]+$/) {print v; exit}
        if (v >= 1e6) printf "%.2fM", v/1e6; else if (v >= 1e3) printf "%.1fk", v/1e3; else printf "%.0f", v }'
}

ratio() { # ratio A B -> "0.52" or "—"
    awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) {print "—"; exit}
        printf "%.2f", a/b }'
}

# --- main ---------------------------------------------------------------------
START_TS=$(date +%s)
RAW="$RESULTS/latest.raw"
: >"$RAW"
WARNINGS=()
WARNFILE="$LOGDIR/warnings.txt"
: >"$WARNFILE"
declare -A KA PL CANCEL_FIN CANCEL_RST IDLE SKIPPED
declare -A ECHO_MBS ECHO_CPU DL_MBS DL_CPU CLOSE_RPS LAT_RATE LAT_P50 LAT_P99 LAT_P999 LAT_NOTE
declare -A LATC_P50 LATC_P99 LATC_P999
declare -A FIN_P50 RST_P50 ST_EVENTS ST_CPU ST_RSS ST_NOTE

install_missing
if [ "${SKIP_BUILD:-0}" != "1" ]; then build_all; fi
parse_table
for name in "${NAMES[@]}"; do : >"$LOGDIR/$name.log"; done

for name in "${NAMES[@]}"; do
    if ! available "$name"; then
        SKIPPED[$name]="binary missing: $(first_word "${CMD[$name]}")"
        log "skipping $name: ${SKIPPED[$name]}"
    fi
done
if ! command -v wrk >/dev/null; then log "wrk not found"; exit 1; fi

# 3. throughput, interleaved rounds
for ROUND in $(seq 1 "$ROUNDS"); do
    for name in "${NAMES[@]}"; do
        [ -n "${SKIPPED[$name]:-}" ] && continue
        log "round $ROUND/$ROUNDS: $name (port ${PORT[$name]})"
        if ! start_server "$name"; then
            SKIPPED[$name]="failed to start (see Benchmarks/.build/logs/$name.log)"
            continue
        fi
        ka="$(run_wrk "$name" keep-alive)"
        pl="$(run_wrk "$name" pipelined -s "$HERE/wrk/pipeline.lua")"
        stop_server
        log "  $name: keep-alive $ka req/s, pipelined $pl req/s"
        KA[$name]="${KA[$name]:-} $ka"
        PL[$name]="${PL[$name]:-} $pl"
    done
done

# 3b. the figures users feel: bodies, a connection per request, latency at
# half the server's own keep-alive maximum (its median from 3), interleaved
NEW_PHASE=0
for flag in SKIP_BODY SKIP_CLOSE SKIP_LATENCY; do [ "${!flag:-0}" = 1 ] || NEW_PHASE=1; done
if [ "$NEW_PHASE" = 1 ]; then
    export BODY_BYTES
    DL_PATH="/stream?n=$DOWNLOAD_CHUNKS&size=$DOWNLOAD_CHUNK_BYTES"
    # The common rate: half of NIO's keep-alive median (else of the lowest
    # median measured), the same offered load for every server.
    COMMON_RATE=""
    m="$(median ${KA[nio]:-})"
    if [[ "$m" =~ ^[0-9]+$ ]]; then COMMON_RATE=$((m / 2)); else
        for name in "${NAMES[@]}"; do
            m="$(median ${KA[$name]:-})"
            [[ "$m" =~ ^[0-9]+$ ]] || continue
            if [ -z "$COMMON_RATE" ] || [ $((m / 2)) -lt "$COMMON_RATE" ]; then COMMON_RATE=$((m / 2)); fi
        done
    fi
    # run_latency NAME RATE: the RESULT line of Benchmarks/latency
    run_latency() {
        local secs out
        secs="$(duration_seconds "$DURATION")"
        out="$(timeout $((secs + 30)) "$BIN/latency" --host "$HOST" --port "${PORT[$1]}" \
            --rate "$2" --conns "$LATENCY_CONNECTIONS" --duration-ms $((secs * 1000 + 1000)) \
            --warmup-ms 1000 2>&1)"
        { echo "=== $1 latency round $ROUND at $2 req/s"; echo "$out"; } >>"$RAW"
        echo "$out" | grep '^RESULT' | tail -1
    }
    for ROUND in $(seq 1 "$ROUNDS"); do
        for name in "${NAMES[@]}"; do
            [ -n "${SKIPPED[$name]:-}" ] && continue
            log "round $ROUND/$ROUNDS (bodies, close, latency): $name"
            # shellcheck disable=SC2086
            start_server "$name" ${NEW_ARGS[$name]:-} || continue
            if [ "${SKIP_BODY:-0}" != 1 ]; then
                read -r mbs cpu < <(run_wrk_flow "$name" echo /echo -c"$BODY_CONNECTIONS" -s "$HERE/wrk/post.lua")
                ECHO_MBS[$name]="${ECHO_MBS[$name]:-} $mbs"
                ECHO_CPU[$name]="${ECHO_CPU[$name]:-} $cpu"
                read -r mbs2 cpu2 < <(run_wrk_flow "$name" download "$DL_PATH" -c"$DOWNLOAD_CONNECTIONS")
                DL_MBS[$name]="${DL_MBS[$name]:-} $mbs2"
                DL_CPU[$name]="${DL_CPU[$name]:-} $cpu2"
                log "  $name: echo $mbs MB/s ($cpu CPU s/GB), download $mbs2 MB/s ($cpu2 CPU s/GB)"
            fi
            if [ "${SKIP_CLOSE:-0}" != 1 ]; then
                cl="$(run_wrk "$name" close -H "Connection: close")"
                CLOSE_RPS[$name]="${CLOSE_RPS[$name]:-} $cl"
                log "  $name: Connection: close $cl req/s"
            fi
            if [ "${SKIP_LATENCY:-0}" != 1 ]; then
                max="$(median ${KA[$name]:-})"
                if [[ "$max" =~ ^[0-9]+$ ]] && [ "$max" -gt 0 ]; then
                    rate=$((max / 2))
                    line="$(run_latency "$name" "$rate")"
                    LAT_RATE[$name]="$rate"
                    LAT_P50[$name]="${LAT_P50[$name]:-} $(get p50_us)"
                    LAT_P99[$name]="${LAT_P99[$name]:-} $(get p99_us)"
                    LAT_P999[$name]="${LAT_P999[$name]:-} $(get p999_us)"
                    lost="$(get lost)" errs="$(get errors)"
                    if [ "${lost:-0}" != 0 ] || [ "${errs:-0}" != 0 ]; then
                        LAT_NOTE[$name]="${LAT_NOTE[$name]:-}r$ROUND: lost ${lost:-?} errors ${errs:-?}; "
                    fi
                    log "  $name: latency at $rate req/s: p50 $(get p50_us) p99 $(get p99_us) p99.9 $(get p999_us) µs"
                fi
                if [ -n "$COMMON_RATE" ] && [ "$COMMON_RATE" -gt 0 ]; then
                    line="$(run_latency "$name" "$COMMON_RATE")"
                    LATC_P50[$name]="${LATC_P50[$name]:-} $(get p50_us)"
                    LATC_P99[$name]="${LATC_P99[$name]:-} $(get p99_us)"
                    LATC_P999[$name]="${LATC_P999[$name]:-} $(get p999_us)"
                    lost="$(get lost)" errs="$(get errors)"
                    if [ "${lost:-0}" != 0 ] || [ "${errs:-0}" != 0 ]; then
                        LAT_NOTE[$name]="${LAT_NOTE[$name]:-}r$ROUND common: lost ${lost:-?} errors ${errs:-?}; "
                    fi
                    log "  $name: latency at $COMMON_RATE req/s (common): p50 $(get p50_us) p99 $(get p99_us) p99.9 $(get p999_us) µs"
                fi
            fi
            stop_server
        done
    done
fi

# 4. cancel latency
if [ "${SKIP_CANCEL:-0}" != "1" ]; then
    for name in "${NAMES[@]}"; do
        [ -n "${SKIPPED[$name]:-}" ] && continue
        [ "${CANCEL_OK[$name]}" = "y" ] || continue
        log "cancel latency: $name ($CANCEL_ROUNDS rounds, FIN then RST)"
        start_server "$name" || continue
        for mode in fin rst; do
            out="$(timeout 300 "$BIN/cancel_latency" --host "$HOST" --port "${PORT[$name]}" \
                --rounds "$CANCEL_ROUNDS" --mode "$mode" --gap-ms 2 2>&1)"
            { echo "=== $name cancel $mode"; echo "$out"; } >>"$RAW"
            val="$(bench_cancel_value "$out")"
            echo "$out" | grep -q '^warning' && WARNINGS+=("$name cancel $mode: $(echo "$out" | grep '^warning' | head -1)")
            log "  $name $mode: $val"
            if [ "$mode" = fin ]; then CANCEL_FIN[$name]="$val"; else CANCEL_RST[$name]="$val"; fi
            p50="$(echo "$out" | grep '^RESULT' | tail -1 | sed -n 's/.*p50_us=\([^ ]*\).*/\1/p')"
            if [ "$mode" = fin ]; then FIN_P50[$name]="$p50"; else RST_P50[$name]="$p50"; fi
        done
        stop_server
    done
    # The kernel's own part, no server: in the floor row, what no server's
    # figure can go under on this machine.
    for mode in fin rst; do
        flag=""; [ "$mode" = rst ] && flag="--rst"
        out="$(timeout 120 "$BIN/kernel_floor" $flag --rounds "$CANCEL_ROUNDS" 2>&1)"
        { echo "=== kernel floor $mode"; echo "$out"; } >>"$RAW"
        val="$(bench_cancel_value "$out" "kernel: ")"
        log "  kernel floor $mode: $val"
        if [ "$mode" = fin ]; then CANCEL_FIN[floor]="$val"; else CANCEL_RST[floor]="$val"; fi
        p50="$(echo "$out" | grep '^RESULT' | tail -1 | sed -n 's/.*p50_us=\([^ ]*\).*/\1/p')"
        if [ "$mode" = fin ]; then FIN_P50[floor]="$p50"; else RST_P50[floor]="$p50"; fi
    done
fi

# 5. idle connection RSS
if [ "${SKIP_IDLE:-0}" != "1" ]; then
    for name in "${NAMES[@]}"; do
        [ -n "${SKIPPED[$name]:-}" ] && continue
        log "idle RSS: $name ($IDLE_CONNS connections)"
        start_server "$name" || continue
        out="$(timeout 300 "$BIN/idle_conns" --host "$HOST" --port "${PORT[$name]}" --pid "$SERVER_PID" \
            --conns "$IDLE_CONNS" 2>&1)"
        { echo "=== $name idle"; echo "$out"; } >>"$RAW"
        line="$(echo "$out" | grep '^RESULT' | tail -1)"
        bpc="$(echo "$line" | sed -n 's/.*bytes_per_conn=\([^ ]*\).*/\1/p')"
        conns="$(echo "$line" | sed -n 's/.*conns=\([^ ]*\).*/\1/p')"
        okc="$(echo "$line" | sed -n 's/.* ok=\([^ ]*\).*/\1/p')"
        if [[ "$bpc" =~ ^-?[0-9]+$ ]]; then
            IDLE[$name]="$(awk -v b="$bpc" 'BEGIN{printf "%.1f KiB", b/1024}')"
            [ "$conns" != "$IDLE_CONNS" ] || [ "$okc" != "$conns" ] && IDLE[$name]="${IDLE[$name]} ($okc of $IDLE_CONNS ok)"
            closedc="$(echo "$line" | sed -n 's/.*closed_by_server=\([0-9]*\).*/\1/p')"
            [ -n "$closedc" ] && [ "$closedc" != 0 ] && IDLE[$name]="${IDLE[$name]} ($closedc closed by server)"
        else
            IDLE[$name]="error"
        fi
        log "  $name: ${IDLE[$name]}"
        stop_server
    done
fi

# 5b. many long streams (not the floor: it has no timers)
if [ "${SKIP_STREAMS:-0}" != "1" ]; then
    for name in "${NAMES[@]}"; do
        [ -n "${SKIPPED[$name]:-}" ] && continue
        [ "$name" = floor ] && continue
        log "streams: $name ($STREAMS streams, an event a second each)"
        start_server "$name" || continue
        out="$(timeout 300 "$BIN/streams" --host "$HOST" --port "${PORT[$name]}" --pid "$SERVER_PID" \
            --conns "$STREAMS" --warmup-ms 2500 --measure-ms "$STREAM_MEASURE_MS" 2>&1)"
        { echo "=== $name streams"; echo "$out"; } >>"$RAW"
        line="$(echo "$out" | grep '^RESULT' | tail -1)"
        ST_EVENTS[$name]="$(get events_per_s)"
        ST_CPU[$name]="$(get cpu_us_per_event)"
        ST_RSS[$name]="$(get bytes_per_stream)"
        okc="$(get ok)" silent="$(get silent)" closedc="$(get closed_by_server)"
        opened="$(echo "$line" | sed -n 's/^RESULT conns=\([0-9]*\).*/\1/p')"
        note=""
        [ "${opened:-0}" != "$STREAMS" ] && note="$note ${opened:-0} of $STREAMS opened;"
        [ "${okc:-0}" != "${opened:-0}" ] && note="$note ${okc:-0} answered;"
        [ "${silent:-0}" != 0 ] && note="$note ${silent} silent;"
        [ "${closedc:-0}" != 0 ] && note="$note ${closedc} closed by server;"
        ST_NOTE[$name]="$note"
        log "  $name: ${ST_EVENTS[$name]:-?} events/s, ${ST_CPU[$name]:-?} µs CPU/event, ${ST_RSS[$name]:-?} B/stream$note"
        stop_server
    done
fi

# 6. instructions per request (deterministic, unlike req/s)
INSTR_KA="" INSTR_PL=""
if [ "${SKIP_INSTR:-0}" != "1" ] && [ -x "$ROOT/.build-c/vigil-c-bench" ]; then
    log "instructions per request: vigil-c under callgrind"
    out="$(timeout -k 10 600 bash "$HERE/instr/run.sh" "$ROOT/.build-c/vigil-c-bench" 2>&1)"
    { echo "=== instructions per request"; echo "$out"; } >>"$RAW"
    INSTR_KA="$(echo "$out" | sed -n 's/^INSTR depth=1 instructions_per_request=//p')"
    INSTR_PL="$(echo "$out" | sed -n 's/^INSTR depth=16 instructions_per_request=//p')"
    log "  keep-alive ${INSTR_KA:-error}, pipelined ${INSTR_PL:-error}"
fi

# 6b. runtime calls per request of the Swift path (uprobes: root and perf;
# skipped without them, as valgrind cannot run the Swift runtime)
CALLS_KA="" CALLS_PL=""
if [ "${SKIP_CALLS:-0}" != "1" ] && [ -x "$ROOT/.build/release/vigil-demo" ]; then
    if command -v perf >/dev/null && [ "$(id -u)" = 0 ]; then
        log "runtime calls per request: vigil-swift under uprobes"
        out="$(timeout -k 10 600 bash "$HERE/calls/run.sh" "$ROOT/.build/release/vigil-demo" 2>&1)"
        { echo "=== runtime calls per request"; echo "$out"; } >>"$RAW"
        CALLS_KA="$(echo "$out" | sed -n 's/^CALLS depth=1 //p')"
        CALLS_PL="$(echo "$out" | sed -n 's/^CALLS depth=16 //p')"
        log "  keep-alive ${CALLS_KA:-error}"
        log "  pipelined ${CALLS_PL:-error}"
    else
        log "runtime calls per request: skipped (needs root and perf: apt-get install linux-perf)"
    fi
fi

# 7. report
while IFS= read -r w; do [ -n "$w" ] && WARNINGS+=("$w"); done <"$WARNFILE"
floor_ka="$(median ${KA[floor]:-})"
floor_pl="$(median ${PL[floor]:-})"
nio_ka="$(median ${KA[nio]:-})"
nio_pl="$(median ${PL[nio]:-})"
ELAPSED=$(($(date +%s) - START_TS))
REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
declare -A M_ECHO M_DL M_CLOSE
for name in "${NAMES[@]}"; do
    M_ECHO[$name]="$(median_f ${ECHO_MBS[$name]:-})"
    M_DL[$name]="$(median_f ${DL_MBS[$name]:-})"
    M_CLOSE[$name]="$(median ${CLOSE_RPS[$name]:-})"
done

# over_kernel P50 KERNEL_P50: "+N" µs, or — when either is missing.
over_kernel() {
    awk -v v="${1:-}" -v k="${2:-}" 'BEGIN { if (v ~ /^[0-9.]+$/ && k ~ /^[0-9.]+$/) printf "%+.0f", v - k; else printf "—" }'
}

{
    echo "## Vigil benchmarks — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "$(nproc) cores, $(uname -r), repo $REV. wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS interleaved round(s), median shown;" \
        "pipelined = 16 requests per write. Cancel latency: $CANCEL_ROUNDS rounds, client close → handler sees it, p50 / p99" \
        "(the client sleeps 2 ms after each close; the floor row: the kernel alone, close → a blocked epoll_wait sees it, Benchmarks/cancel/kernel_floor.c)." \
        "Idle RSS: $IDLE_CONNS keep-alive connections, server VmRSS growth per connection. Run took ${ELAPSED}s."
    echo
    echo "### Every scenario side by side"
    echo
    echo "Ratios of the medians below (×nio: to SwiftNIO's figure, ×floor: to the floor's; for CPU per event lower is better);" \
        "p99 at the common load; cancellation: p50 minus the kernel's p50 (kernel_floor), FIN / RST."
    echo
    echo "| server | keep-alive ×nio | pipelined ×nio | echo ×nio | echo ×floor | download ×nio | download ×floor | close ×floor | p99 @common | streams CPU/event ×nio | ×go | RSS per stream | idle conn RSS | cancel over kernel |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for name in "${NAMES[@]}"; do
        [ -z "${KA[$name]:-}${M_ECHO[$name]}${ST_CPU[$name]:-}" ] && continue
        ka="$(median ${KA[$name]:-})"
        pl="$(median ${PL[$name]:-})"
        e="${M_ECHO[$name]}" d="${M_DL[$name]}" c="${M_CLOSE[$name]}"
        p99c="$(median ${LATC_P99[$name]:-})"
        if [ -n "$p99c" ] && [ "$p99c" != NA ]; then p99c="$p99c µs"; else p99c="—"; fi
        rss="$(awk -v b="${ST_RSS[$name]:-x}" 'BEGIN{ if (b ~ /^-?[0-9.]+$/) printf "%.1f KiB", b/1024; else print "—" }')"
        cancel="—"
        if [ -n "${FIN_P50[$name]:-}" ] && [ "$name" != floor ]; then
            cancel="$(over_kernel "${FIN_P50[$name]}" "${FIN_P50[floor]:-}") / $(over_kernel "${RST_P50[$name]:-}" "${RST_P50[floor]:-}") µs"
        fi
        echo "| $name | $(ratio "$ka" "$nio_ka") | $(ratio "$pl" "$nio_pl")" \
            "| $(ratio "$e" "${M_ECHO[nio]:-}") | $(ratio "$e" "${M_ECHO[floor]:-}")" \
            "| $(ratio "$d" "${M_DL[nio]:-}") | $(ratio "$d" "${M_DL[floor]:-}") | $(ratio "$c" "${M_CLOSE[floor]:-}")" \
            "| $p99c | $(ratio "${ST_CPU[$name]:-}" "${ST_CPU[nio]:-}") | $(ratio "${ST_CPU[$name]:-}" "${ST_CPU[go]:-}")" \
            "| $rss | ${IDLE[$name]:-—} | $cancel |"
    done
    echo
    echo "### Small requests, idle connections, cancellation"
    echo
    echo "| server | keep-alive req/s | ×floor | ×nio | pipelined req/s | ×floor | ×nio | idle conn RSS | FIN → handler | RST → handler |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for name in "${NAMES[@]}"; do
        if [ -n "${SKIPPED[$name]:-}" ] && [ -z "${KA[$name]:-}" ]; then
            echo "| $name | skipped: ${SKIPPED[$name]} | | | | | | | | |"
            continue
        fi
        ka="$(median ${KA[$name]:-})"
        pl="$(median ${PL[$name]:-})"
        cf="${CANCEL_FIN[$name]:-—}"
        cr="${CANCEL_RST[$name]:-—}"
        echo "| $name | $(fmt_rps "$ka") | $(ratio "$ka" "$floor_ka") | $(ratio "$ka" "$nio_ka")" \
            "| $(fmt_rps "$pl") | $(ratio "$pl" "$floor_pl") | $(ratio "$pl" "$nio_pl")" \
            "| ${IDLE[$name]:-—} | $cf | $cr |"
    done
    echo
    echo "Per-round req/s (keep-alive; pipelined):"
    echo
    for name in "${NAMES[@]}"; do
        [ -z "${KA[$name]:-}" ] && continue
        echo "- $name: keep-alive$(printf ' %.0f' ${KA[$name]} 2>/dev/null); pipelined$(printf ' %.0f' ${PL[$name]} 2>/dev/null)"
    done
    # --- the figures users feel (issue 15) ---
    if [ -n "${ECHO_MBS[*]:-}${CLOSE_RPS[*]:-}${LAT_P50[*]:-}" ]; then
        echo
        echo "### Bodies, a connection per request, latency under load"
        echo
        echo "Echo: \`POST /echo\` of $BODY_BYTES-byte bodies, wrk -c$BODY_CONNECTIONS; download: \`GET /stream?n=$DOWNLOAD_CHUNKS&size=$DOWNLOAD_CHUNK_BYTES\`" \
            "($((DOWNLOAD_CHUNKS * DOWNLOAD_CHUNK_BYTES / 1048576)) MiB, chunked; the floor: Content-Length), wrk -c$DOWNLOAD_CONNECTIONS." \
            "MB/s = 10^6 bytes of response read by wrk per second; CPU s/GB = the server's utime+stime over the run per 10^9 bytes." \
            "Close: \`GET /\` with \`Connection: close\`, wrk -c$CONNECTIONS. Latency: \`Benchmarks/latency\`, open loop," \
            "$LATENCY_CONNECTIONS connections, at half the server's own keep-alive median above, from the scheduled send time."
        echo
        echo "The last three columns: every server at the same offered load, ${COMMON_RATE:-—} req/s (half of NIO's keep-alive median; without NIO, of the lowest one)."
        echo
        echo "| server | echo MB/s | ×floor | ×go | ×nio | CPU s/GB | download MB/s | ×floor | ×go | ×nio | CPU s/GB | close req/s | ×floor | offered req/s | p50 | p99 | p99.9 | p50 @common | p99 @common | p99.9 @common |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        for name in "${NAMES[@]}"; do
            [ -z "${ECHO_MBS[$name]:-}${CLOSE_RPS[$name]:-}${LAT_P50[$name]:-}" ] && continue
            e="${M_ECHO[$name]}" d="${M_DL[$name]}" c="${M_CLOSE[$name]}"
            p50="$(median ${LAT_P50[$name]:-})" p99="$(median ${LAT_P99[$name]:-})" p999="$(median ${LAT_P999[$name]:-})"
            echo "| $name | $e | $(ratio "$e" "${M_ECHO[floor]:-}") | $(ratio "$e" "${M_ECHO[go]:-}") | $(ratio "$e" "${M_ECHO[nio]:-}")" \
                "| $(median_f ${ECHO_CPU[$name]:-}) | $d | $(ratio "$d" "${M_DL[floor]:-}") | $(ratio "$d" "${M_DL[go]:-}") | $(ratio "$d" "${M_DL[nio]:-}")" \
                "| $(median_f ${DL_CPU[$name]:-}) | $(fmt_rps "$c") | $(ratio "$c" "${M_CLOSE[floor]:-}")" \
                "| $(fmt_rps "${LAT_RATE[$name]:-NA}") | $p50 µs | $p99 µs | $p999 µs" \
                "| $(median ${LATC_P50[$name]:-}) µs | $(median ${LATC_P99[$name]:-}) µs | $(median ${LATC_P999[$name]:-}) µs |"
        done
        echo
        echo "Per round (echo MB/s; download MB/s; close req/s; latency p99 µs):"
        echo
        for name in "${NAMES[@]}"; do
            [ -z "${ECHO_MBS[$name]:-}${CLOSE_RPS[$name]:-}${LAT_P50[$name]:-}" ] && continue
            echo "- $name: echo${ECHO_MBS[$name]:-}; download${DL_MBS[$name]:-}; close${CLOSE_RPS[$name]:-}; p99${LAT_P99[$name]:-}; p99 @common${LATC_P99[$name]:-}${LAT_NOTE[$name]:+ (${LAT_NOTE[$name]% })}"
        done
    fi
    if [ -n "${ST_CPU[*]:-}" ]; then
        echo
        echo "### Many long streams"
        echo
        echo "$STREAMS clients on \`GET /stream?n=1000000&ms=1000\` (chunked, a \`chunk i\` line a second to each), Benchmarks/streams:" \
            "the server's CPU over ${STREAM_MEASURE_MS} ms after a 2.5 s warm-up per event received, and its VmRSS growth per stream."
        echo
        echo "| server | events/s | CPU µs per event | ×nio | ×go | RSS per stream | notes |"
        echo "|---|---|---|---|---|---|---|"
        for name in "${NAMES[@]}"; do
            [ -z "${ST_CPU[$name]:-}${ST_NOTE[$name]:-}" ] && continue
            rss="$(awk -v b="${ST_RSS[$name]:-x}" 'BEGIN{ if (b ~ /^-?[0-9.]+$/) printf "%.1f KiB", b/1024; else print "error" }')"
            echo "| $name | ${ST_EVENTS[$name]:-—} | ${ST_CPU[$name]:-—} | $(ratio "${ST_CPU[$name]:-}" "${ST_CPU[nio]:-}") | $(ratio "${ST_CPU[$name]:-}" "${ST_CPU[go]:-}") | $rss | ${ST_NOTE[$name]:-} |"
        done
    fi
    if [ -n "${FIN_P50[floor]:-}" ]; then
        echo
        echo "### Cancellation above the kernel"
        echo
        echo "p50 from the table above minus the kernel's p50 (kernel_floor) of the same run:"
        echo
        for name in "${NAMES[@]}"; do
            [ "$name" = floor ] && continue
            [ -z "${FIN_P50[$name]:-}" ] && continue
            awk -v n="$name" -v f="${FIN_P50[$name]}" -v r="${RST_P50[$name]:-NA}" -v kf="${FIN_P50[floor]}" -v kr="${RST_P50[floor]:-NA}" 'BEGIN {
                printf "- %s: FIN %+.0f µs", n, f - kf
                if (r ~ /^[0-9.]+$/ && kr ~ /^[0-9.]+$/) printf ", RST %+.0f µs", r - kr
                printf "\n" }'
        done
    fi
    if [ -n "$INSTR_KA$INSTR_PL" ]; then
        echo
        echo "Instructions per request, vigil-c (callgrind, user space, one connection):" \
            "keep-alive ${INSTR_KA:-error}, 16 pipelined ${INSTR_PL:-error}."
    fi
    if [ -n "$CALLS_KA$CALLS_PL" ]; then
        echo
        echo "Runtime calls per request, vigil-swift (uprobes, Benchmarks/calls/run.sh):"
        echo
        echo "- keep-alive: ${CALLS_KA:-error}"
        echo "- 16 pipelined: ${CALLS_PL:-error}"
    fi
    if [ "${#WARNINGS[@]}" -gt 0 ]; then
        echo
        echo "Warnings:"
        echo
        for w in "${WARNINGS[@]}"; do echo "- $w"; done
    fi
} >"$RESULTS/latest.md"

cat "$RESULTS/latest.md"
log "written $RESULTS/latest.md (raw tool output: $RAW), ${ELAPSED}s"
