#!/usr/bin/env bash
# What a package that depends on Vigil sees on a machine without Debian's
# node-llhttp or libuv1-dev: an error that names the package to install, not
# a missing header inside the C core. Nothing is uninstalled: the build runs
# on a copy of Vigil whose llhttp symlinks (CSources/CLLHTTP/node-llhttp/)
# point at a directory that does not exist, which is what a machine without
# node-llhttp looks like to SwiftPM; libuv's absence is shown by compiling the
# check headers without the system include directories.
#
#   bash Tests/pkg/missing_deps.sh [WORKDIR]   (default .build-pkgcheck)
#
# WORKDIR keeps the dependent package's scratch path between runs, so the
# dependencies (swift-log, ...) are compiled once. Last line: N passed, M failed.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mkdir -p "${1:-$ROOT/.build-pkgcheck}" && cd "${1:-$ROOT/.build-pkgcheck}" && pwd)"
SWIFT="${SWIFT:-swift}"
CLANG="${CLANG:-$(command -v clang || echo /opt/swift/usr/bin/clang)}"
pass=0; fail=0
ok()  { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# 1. A dependent package built against Vigil without node-llhttp.
rm -rf "$WORK/vigil" "$WORK/app"
mkdir -p "$WORK/vigil" "$WORK/app/Sources/App"
(cd "$ROOT" && git ls-files -co --exclude-standard -z \
   Package.swift CSources include Sources Tests/VigilTests Tests/VigilOpenAPITests Tests/VigilTestingTests \
   Tests/VigilObservabilityTests examples/openapi Benchmarks/observe/Sources \
   | tar --null -T - -cf -) \
  | tar -C "$WORK/vigil" -xf -
for f in "$WORK"/vigil/CSources/CLLHTTP/node-llhttp/*; do
  ln -sfn "/nonexistent/node-llhttp/$(basename "$f")" "$f"
done
cat > "$WORK/app/Package.swift" <<'SWIFT'
// swift-tools-version:6.2
import PackageDescription
let package = Package(
    name: "App",
    dependencies: [.package(path: "../vigil")],
    targets: [.executableTarget(name: "App", dependencies: [.product(name: "Vigil", package: "vigil")])]
)
SWIFT
printf 'import Vigil\nprint(Server.Configuration().port)\n' > "$WORK/app/Sources/App/main.swift"
out="$WORK/app-build.log"
if (cd "$WORK/app" && "$SWIFT" build --scratch-path "$WORK/app-build" >"$out" 2>&1); then
  bad "the build without node-llhttp succeeded (the symlinks were not broken?)"
else
  if grep -q "apt-get install node-llhttp" "$out"; then
    ok "swift build without node-llhttp: $(grep -m1 -o "error: .*node-llhttp" "$out")"
  else
    bad "swift build without node-llhttp failed without naming node-llhttp (see $out)"
  fi
  if grep -q "'llhttp.h' file not found" "$out"; then
    bad "a bare missing-header error was printed as well (see $out)"
  else
    ok "no bare 'llhttp.h' file not found error"
  fi
  # The compilation stops at the message, not in a cascade of errors about
  # llhttp's types further down the core's headers.
  if grep -q "unknown type name" "$out"; then
    bad "errors about llhttp's types followed the message (see $out)"
  else
    ok "the compilation stops at the message"
  fi
fi

# 2. libuv: the two headers that check for it, without /usr/include.
for h in CSources/CLLHTTP/include/llhttp.h CSources/CLibUV/shim.h; do
  msg="$("$CLANG" -fsyntax-only -nostdinc -x c "$ROOT/$h" 2>&1)"
  if grep -q "apt-get install libuv1-dev" <<<"$msg"; then
    ok "$h without libuv names libuv1-dev"
  else
    bad "$h without libuv: $msg"
  fi
  if "$CLANG" -fsyntax-only -x c "$ROOT/$h" 2>/dev/null; then
    ok "$h with the packages installed compiles"
  else
    bad "$h with the packages installed does not compile"
  fi
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
