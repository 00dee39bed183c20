#!/usr/bin/env bash
# Tests/c/run.sh BUILD_C - run the C suite built by `make test-c`:
#   1. the installed package: libvigil.so exports only vigil_* symbols,
#      pkg-config gives what a static link needs;
#   2. every Tests/c/test_* program linked against the installed libvigil.so
#      (the unit tests, test_unit_*, against the core's objects: they test
#      one core file on its own);
#   3. the same programs built from the sources with ASan+UBSan, with
#      LeakSanitizer on (a leak or sanitizer report fails the program);
#   4. the examples, smoke-tested (start, requests, SIGTERM, exit 0), as
#      built against the installed package and built with the sanitizers.
# Prints each program's lines, then one last line "N passed, M failed" for
# the whole suite; exits non-zero if anything failed.
set -u -o pipefail

B="${1:-.build-c}"
PREFIX="$(cd "$B/prefix" && pwd)"
PASSED=0
FAILED=0
LOGDIR="$B/logs"
mkdir -p "$LOGDIR"

CHECKS=0
ok()   { PASSED=$((PASSED + 1)); CHECKS=$((CHECKS + 1)); echo "ok $CHECKS - $*"; }
fail() { FAILED=$((FAILED + 1)); CHECKS=$((CHECKS + 1)); echo "not ok $CHECKS - $*"; }

# run LABEL LOG CMD...: run a test program, echo its output, add its counts.
# A program that ends without a summary line, or exits non-zero without a
# failed test (a sanitizer report, a crash), counts as one more failure.
run() {
    local label="$1" log="$2"
    shift 2
    echo "# --- $label"
    "$@" >"$log" 2>&1
    local rc=$?
    cat "$log"
    local line p f
    line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
    echo "# --- $label: end"
    if [ -z "$line" ]; then
        fail "$label ended without a summary (exit status $rc)"
        return
    fi
    p="${line%% passed*}"
    f="${line#*, }"; f="${f%% failed}"
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        fail "$label exited with status $rc after all its tests passed (sanitizer report above?)"
    fi
}

echo "# --- package checks"
# The version as include/vigil.h states it (its one source, mk/c.mk).
HDR="$(dirname "$0")/../../include/vigil.h"
vpart() { sed -n "s/^#define VIGIL_VERSION_$1  *\([0-9][0-9]*\)\$/\1/p" "$HDR"; }
VER="$(vpart MAJOR).$(vpart MINOR).$(vpart PATCH)"
SOMAJOR="$(vpart MAJOR)"
so="$PREFIX/lib/libvigil.so.$VER"
if [ -f "$so" ] && [ "$(readlink "$PREFIX/lib/libvigil.so")" = "libvigil.so.$SOMAJOR" ] &&
   [ "$(readlink "$PREFIX/lib/libvigil.so.$SOMAJOR")" = "libvigil.so.$VER" ]; then
    ok "installed libvigil.so.$VER with the libvigil.so.$SOMAJOR and libvigil.so links"
else
    fail "installed shared library libvigil.so.$VER or its links missing"
fi
if readelf -d "$so" 2>/dev/null | grep -qF "[libvigil.so.$SOMAJOR]"; then
    ok "soname is libvigil.so.$SOMAJOR"
else
    fail "soname is not libvigil.so.$SOMAJOR"
fi
leaked="$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^vigil_' || true)"
if [ -z "$leaked" ] && nm -D --defined-only "$so" | grep -q ' T vigil_server_new$'; then
    ok "libvigil.so exports only vigil_* symbols ($(nm -D --defined-only "$so" | wc -l) of them, no llhttp_*)"
else
    fail "libvigil.so exports other symbols: $(echo $leaked | head -c 300)"
fi
aleaked="$(nm -g --defined-only "$PREFIX/lib/libvigil.a" 2>/dev/null | awk 'NF==3 {print $3}' | grep -v '^vigil_' || true)"
if [ -z "$aleaked" ]; then
    ok "libvigil.a defines only vigil_* global symbols (llhttp kept local)"
else
    fail "libvigil.a defines other globals: $(echo $aleaked | head -c 300)"
fi
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
pc_version="$(pkg-config --modversion vigil 2>&1)"
if [ "$pc_version" = "$VER" ]; then
    ok "pkg-config vigil version $pc_version, as include/vigil.h"
else
    fail "pkg-config vigil version '$pc_version', include/vigil.h says '$VER'"
fi
pc_static="$(echo $(pkg-config --static --libs vigil 2>&1))"
pc_cflags="$(echo $(pkg-config --cflags vigil 2>&1))"
if [ "$pc_cflags" = "-I$PREFIX/include" ] && [[ " $pc_static " == *" -lvigil "* ]] &&
   [[ " $pc_static " == *" -luv "* ]] && [[ " $pc_static " == *" -lpthread "* ]]; then
    ok "pkg-config vigil: cflags '$pc_cflags', static libs '$pc_static'"
else
    fail "pkg-config vigil: cflags '$pc_cflags', static libs '$pc_static'"
fi
if ! ldd "$B/examples/hello-static" | grep -q libvigil; then
    ok "hello-static links libvigil.a (no libvigil.so at run time)"
else
    fail "hello-static depends on libvigil.so"
fi

for t in "$B"/tests/test_*; do
    [ -x "$t" ] || continue
    name="$(basename "$t")"
    run "$name (libvigil.so)" "$LOGDIR/$name.log" "$t"
done

for t in "$B"/asan/test_*; do
    [ -x "$t" ] || continue
    name="$(basename "$t")"
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    LSAN_OPTIONS="${LSAN_OPTIONS:-}" \
        run "$name (ASan+UBSan+LSan)" "$LOGDIR/$name.asan.log" "$t"
done

run "smoke_examples" "$LOGDIR/smoke_examples.log" "$B/tests/smoke_examples" \
    "hello=$B/examples/hello" "worker=$B/examples/worker" "echo=$B/examples/echo" \
    "lines=$B/examples/lines" \
    "hello=$B/examples/hello-static" "hello=$B/vigil-c-bench"

# The examples again, built with the sanitizers: a leak or a sanitizer
# report at exit turns their exit status non-zero.
A="$B/asan/examples"
ASAN_OPTIONS="detect_leaks=1:exitcode=23${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    run "smoke_examples (ASan+UBSan+LSan examples)" "$LOGDIR/smoke_examples.asan.log" \
    "$B/tests/smoke_examples" "hello=$A/hello" "worker=$A/worker" "echo=$A/echo" "lines=$A/lines"

echo "# C suite: logs in $LOGDIR"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
