#!/usr/bin/env bash
# hostile/run.sh - hostile client shapes against the release vigil-demo,
# with the server's RSS and CPU measured (hostile/hostile.c does the
# clients and the measuring; this script starts a fresh demo per shape and
# collects the table).
#
#   bash hostile/run.sh full  [SHAPE...]   all shapes at full scale (a few
#                                          minutes); writes hostile/RESULTS.md
#   bash hostile/run.sh check [SHAPE...]   a short run (< 2 min, fewer
#                                          connections); exit 1 if a shape
#                                          exceeds its bound or does not end
#
# Environment: HOSTILE_DEMO (the demo binary, default
# .build/release/vigil-demo: `make hostile` builds it), HOSTILE_OUT
# (.build-hostile), HOSTILE_RESULTS (the file full mode writes,
# hostile/RESULTS.md; empty: none).
set -u -o pipefail
cd "$(dirname "$0")/.."

MODE="${1:-full}"
shift || true
case "$MODE" in full | check) ;; *)
  echo "usage: $0 full|check [shape...]" >&2
  exit 2
  ;;
esac
ALL=(pipeline slowread slowloris headers-max headers-over onebyte onebyte-echo trailers paused upload upload-over)
if [ "$MODE" = check ]; then
  # onebyte-echo takes minutes to reach 8 MiB of one-byte chunks: full only.
  ALL=(pipeline slowread slowloris headers-max headers-over onebyte trailers paused upload upload-over)
fi
SHAPES=("$@")
[ ${#SHAPES[@]} -gt 0 ] || SHAPES=("${ALL[@]}")

DEMO="${HOSTILE_DEMO:-.build/release/vigil-demo}"
OUT="${HOSTILE_OUT:-.build-hostile}"
RESULTS="${HOSTILE_RESULTS-hostile/RESULTS.md}"
mkdir -p "$OUT"
[ -x "$DEMO" ] || { echo "hostile: no demo at $DEMO (swift build -c release --product vigil-demo)" >&2; exit 2; }
cc -O2 -Wall -o "$OUT/hostile" hostile/hostile.c -lpthread || exit 2

# 10 000 connections need more descriptors than the usual 1024, on both
# sides (the demo inherits this limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
  echo "hostile: RLIMIT_NOFILE $(ulimit -n) < 10100: the paused shape needs more (run as root or raise the hard limit)" >&2
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

PID=
stop_demo() {
  [ -n "$PID" ] || return 0
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null
  fi
  wait "$PID" 2>/dev/null
  PID=
}
trap stop_demo EXIT

start_demo() {
  PORT="$(free_port)"
  "$DEMO" --host 127.0.0.1 --port "$PORT" >"$OUT/demo-$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    grep -q listening "$OUT/demo-$1.log" && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q listening "$OUT/demo-$1.log"; then
    echo "hostile: the demo did not start:" >&2
    cat "$OUT/demo-$1.log" >&2
    return 1
  fi
  # Warm up every route once, so the baseline includes what the first
  # request of each kind allocates for good.
  "$OUT/hostile" --port "$PORT" --pid "$PID" --shape warmup || echo "hostile: the warm-up requests did not all get an answer" >&2
}

# Time limit per shape (s): the client's own bounds plus a margin.
limit_of() {
  case "$1" in
    pipeline) echo 120 ;;
    onebyte-echo) echo 200 ;;
    paused) echo 150 ;;
    *) echo 90 ;;
  esac
}

ROWS="$OUT/rows-$MODE.txt"
: >"$ROWS"
status=0
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
t_start=$(date +%s)
for shape in "${SHAPES[@]}"; do
  start_demo "$shape" || { status=1; echo "ROW|$shape|-|-|-|-|-|-|-|-|demo did not start" >>"$ROWS"; continue; }
  echo "== $shape (demo pid $PID, port $PORT)" >&2
  timeout -k 5 "$(limit_of "$shape")" "$OUT/hostile" --port "$PORT" --pid "$PID" \
    --shape "$shape" --scale "$MODE" >"$OUT/out-$shape.txt" 2>"$OUT/err-$shape.txt"
  rc=$?
  cat "$OUT/out-$shape.txt" >&2
  [ -s "$OUT/err-$shape.txt" ] && cat "$OUT/err-$shape.txt" >&2
  if grep -q '^ROW|' "$OUT/out-$shape.txt"; then
    cat "$OUT/out-$shape.txt" >>"$ROWS"
  else
    echo "ROW|$shape|-|-|-|-|-|-|-|-|FAIL: client exited $rc without a result" >>"$ROWS"
  fi
  [ $rc -eq 0 ] || status=1
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "NOTE|$shape|the demo died: $(tail -3 "$OUT/demo-$shape.log" | tr '\n' ' ')" >>"$ROWS"
    status=1
  fi
  stop_demo
done
elapsed=$(($(date +%s) - t_start))

table() {
  echo "| shape | conns | RSS KiB baseline / peak / after | peak RSS per conn (KiB) | bound per conn (KiB: limits + 32, + 16 MiB per process) | server CPU s | how it ended | verdict |"
  echo "|---|---|---|---|---|---|---|---|"
  awk -F'|' '$1 == "ROW" {
    printf "| %s | %s | %s / %s / %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$ROWS"
}
notes() {
  awk -F'|' '$1 == "NOTE" { printf "- %s: %s\n", $2, $3 }' "$ROWS"
}

echo
echo "hostile ($MODE, $started, ${elapsed}s):"
table
echo
notes
if [ $status -ne 0 ]; then
  echo "hostile: FAILED (a shape exceeded its bound or did not end)"
else
  echo "hostile: every shape within its bound"
fi

if [ "$MODE" = full ] && [ -n "$RESULTS" ]; then
  # The server's code: the last commit that changed it (and whether the
  # working tree differs from it).
  commit="server code at $(git log -1 --format='%h %cs' -- CSources Sources include Package.swift 2>/dev/null)$(git diff --quiet HEAD -- CSources Sources include Package.swift 2>/dev/null || echo ' plus uncommitted changes'), tree at $(git rev-parse --short HEAD 2>/dev/null)"
  swiftv="$(swift --version 2>/dev/null | head -1 | sed 's/.*Swift version \([^ ]*\).*/\1/')"
  cpu="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  {
    sed -n '1,/^<!-- results below are written by hostile\/run.sh -->$/p' hostile/RESULTS.md 2>/dev/null
    grep -q '^<!-- results below' hostile/RESULTS.md 2>/dev/null || echo '<!-- results below are written by hostile/run.sh -->'
    echo
    echo "## Run of $started"
    echo
    echo "The demo built from the $commit (Swift ${swiftv:-?}, release); $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), libuv $(pkg-config --modversion libuv 2>/dev/null || echo ?), RLIMIT_NOFILE $(ulimit -n); the machine's 2 CPUs were shared with other work; \`bash hostile/run.sh full\` took ${elapsed} s."
    echo
    table
    echo
    notes
  } >"$OUT/RESULTS.md.new" && mv "$OUT/RESULTS.md.new" "$RESULTS"
  echo "hostile: wrote $RESULTS"
fi
exit $status
