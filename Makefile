# Vigil: the two commands a fresh Debian machine needs are `make run` and
# `make test`. Both install what is missing (apt, as root) first.
SHELL := /bin/bash
PREFIX ?= /usr/local
CC ?= cc
SWIFT ?= swift
BUILD_C ?= .build-c
LLHTTP_DIR := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
DEBS := libuv1-dev node-llhttp pkg-config

.PHONY: deps run build test test-swift test-asan test-tsan test-demo bench clean hostile hostile-check

# Install the Debian packages that are missing (apt-get update first).
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build -c release --product vigil-demo

# Build and start the demo server (HOST/PORT to override; Ctrl-C stops it).
HOST ?= 127.0.0.1
PORT ?= 8080
run: build
	.build/release/vigil-demo --host $(HOST) --port $(PORT)

# Every test: Swift tests, then under AddressSanitizer and ThreadSanitizer,
# then the C API tests (mk/c.mk), the demo as `make run` builds it (routes,
# SIGTERM/SIGINT), then 60 s of fuzzing (mk/fuzz.mk), then the differential
# framing fuzzer for 60 s and its case suites (fuzz/diff/), then the short
# hostile-clients run (hostile/: every shape ends and stays within bounds),
# then the package checks (mk/pkg.mk: prerequisites, consumer, docs), then
# the deployment tests (mk/deploy-*.mk: behind nginx and HAProxy, the
# client's address through HAProxy's PROXY protocol, restarts under load
# that lose no request, by hand-over and as a systemd fleet, clients that
# vanish, in network namespaces).
test: deps test-swift test-asan test-tsan test-c test-demo fuzz-smoke \
      fuzz-diff-smoke fuzz-cases hostile-check test-pkg test-proxies \
      test-proxyproto test-restart test-fleet test-vanish
	@echo "all test suites passed"

test-swift: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

test-asan: deps
	LSAN_OPTIONS="suppressions=$(CURDIR)/Tests/lsan.supp" \
	  $(SWIFT) test --sanitize=address --scratch-path .build-asan

test-demo: build
	bash Tests/demo_smoke.sh .build/release/vigil-demo

# Synchronization.Mutex takes its contended path through a PI futex in the
# uninstrumented standard library: TSan cannot see that ordering and reports
# races through it now and then (Tests/VigilTestingTests, Mailbox test).
# Swift code here locks with Vigil's `Locked` (pthread, intercepted by TSan).
test-tsan: deps
	@if grep -rnE '\bMutex ?[<(]' Sources Tests --include=*.swift \
	    --exclude-dir=.build --exclude-dir='.build-*'; then \
	  echo "Synchronization.Mutex is invisible to TSan on Linux: use Locked (Sources/Vigil/Locked.swift)"; \
	  exit 1; fi
	TSAN_OPTIONS="halt_on_error=1" $(SWIFT) test --sanitize=thread --scratch-path .build-tsan

# Benchmarks: comparison servers, wrk load, cancellation latency, idle RSS
# (Benchmarks/README.md). Installs wrk and golang-go itself.
# Then the cost of VigilMetrics/VigilTracing, and of the core's issue-14
# additions with nothing configured: vigil-demo at OBSERVE_BASE (ffddef1,
# the last revision without them) against the work tree's, interleaved.
OBSERVE_BASE ?= ffddef1
bench: deps
	bash Benchmarks/run.sh
	BASE="$(OBSERVE_BASE)" bash Benchmarks/observe/run.sh

# Hostile clients against the release demo, server RSS and CPU measured
# (hostile/RESULTS.md): `hostile` is the full run (a few minutes, writes
# hostile/RESULTS.md), `hostile-check` a short one (< 2 min) that fails
# when a shape exceeds its memory bound or does not end.
hostile: build
	bash hostile/run.sh full

hostile-check: build
	bash hostile/run.sh check

# `test` and the targets above need both: a missing file is an error, not
# a silently smaller `make test`.
include mk/c.mk
include mk/fuzz.mk
include mk/pkg.mk
include mk/observe.mk
include mk/deploy-proxies.mk
include mk/deploy-restart.mk
include mk/deploy-fleet.mk
include mk/deploy-proxyproto.mk
include mk/deploy-vanish.mk

clean:
	rm -rf .build .build-asan .build-tsan $(BUILD_C) .build-fuzz .build-fuzz-diff
