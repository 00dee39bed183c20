#!/usr/bin/env bash
# fuzz/run.sh BIN SECONDS [libFuzzer args...]
# Fuzz for SECONDS over a scratch copy of fuzz/corpus/ and fuzz/repro/ (the
# committed files are never written to). Crash/timeout reproducers go to
# .build-fuzz/artifacts/. Prints the final stats, including execs/s; exits
# with libFuzzer's status (non-zero on a crash, a leak or an invariant
# violation).
set -u -o pipefail
BIN="$1"; SECS="$2"; shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(dirname "$BIN")"
mkdir -p "$OUT/artifacts"
SCRATCH="$(mktemp -d "$OUT/corpus.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
cp "$ROOT"/fuzz/corpus/* "$SCRATCH"/
# The reproducers of past findings run first too, as regression inputs.
for f in "$ROOT"/fuzz/repro/*; do [ -f "$f" ] && cp "$f" "$SCRATCH/repro-$(basename "$f")"; done
# detect_leaks: LeakSanitizer runs after inputs whose mallocs and frees do
# not balance, and at exit. The servers live for the whole process and stay
# reachable from globals, so they are not reported; each input must leave
# nothing behind (the harness also checks the counters return to zero).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
"$BIN" -max_total_time="$SECS" -max_len=8192 -timeout=10 -rss_limit_mb=4096 \
  -dict="$ROOT/fuzz/http.dict" -artifact_prefix="$OUT/artifacts/" \
  -print_final_stats=1 "$@" "$SCRATCH"
rc=$?
echo "fuzz/run.sh: libFuzzer exited with $rc after a ${SECS}s budget; corpus grew to $(ls "$SCRATCH" | wc -l) units (scratch, discarded)"
exit $rc
