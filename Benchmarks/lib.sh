# Benchmarks/lib.sh - shell helpers the benchmark scripts share (sourced).

# A free TCP port on 127.0.0.1 (the kernel's choice; a race with other
# processes remains, which bench_wait_listening's liveness check reports).
bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_wait_listening PORT PID SECONDS: 0 once PORT accepts a connection,
# 1 if PID exits first or SECONDS pass.
bench_wait_listening() {
    local port=$1 pid=$2 tenths=$(($3 * 10)) i
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# bench_stop PID SECONDS: SIGTERM, at most SECONDS for it to exit, then
# SIGKILL. Returns 0 if it exited on the SIGTERM, 1 if it had to be killed.
bench_stop() {
    local pid=$1 tenths=$(($2 * 10)) i
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for ((i = 0; i < tenths; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            return 0
        fi
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 1
}

# bench_cancel_value OUTPUT [PREFIX]: the "p50 / p99 µs" cell for a RESULT
# line of cancel_latency or kernel_floor in OUTPUT, or why there is none.
bench_cancel_value() {
    local line p50 p99 obs rounds err
    line="$(echo "$1" | grep '^RESULT' | tail -1)"
    [ -n "$line" ] || { echo "error"; return; }
    p50="$(echo "$line" | sed -n 's/.*p50_us=\([^ ]*\).*/\1/p')"
    p99="$(echo "$line" | sed -n 's/.*p99_us=\([^ ]*\).*/\1/p')"
    obs="$(echo "$line" | sed -n 's/.*observed=\([^ ]*\).*/\1/p')"
    rounds="$(echo "$line" | sed -n 's/.* rounds=\([^ ]*\).*/\1/p')"
    err="$(echo "$line" | sed -n 's/.*error=\([^ ]*\).*/\1/p')"
    if [ -n "$err" ]; then
        echo "error: $err"
    elif [ "${p50:-NA}" = "NA" ]; then
        echo "never (0 of ${rounds:-?})"
    else
        awk -v a="$p50" -v b="$p99" -v p="${2:-}" 'BEGIN{printf "%s%.0f / %.0f µs", p, a, b}'
        [ "$obs" != "$rounds" ] && echo " ($obs of $rounds)" || echo
    fi
}
