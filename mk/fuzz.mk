# mk/fuzz.mk - the libFuzzer target for the request path (fuzz/).
# Included by the top-level Makefile, which defines CC, LLHTTP_DIR,
# LLHTTP_INC and the `deps` target.
#
#   make fuzz [FUZZ_SECONDS=60]   build, then fuzz for FUZZ_SECONDS over a
#                                 scratch copy of fuzz/corpus/ (the committed
#                                 corpus never grows); crashes go to
#                                 .build-fuzz/artifacts/. Besides the crash
#                                 and invariant checks, every input is played
#                                 whole and cut into pieces, which must get
#                                 the same answers (fuzz/README.md)
#   make fuzz-smoke               the 60 s run `make test` calls
#   make fuzz-build               only build .build-fuzz/fuzz_request
#   make fuzz-repro FUZZ_INPUT=f  replay one input (a crash file) FUZZ_RUNS
#                                 times (1; timing-dependent ones need more)
#
# libFuzzer needs clang: Swift's toolchain clang (/opt/swift/usr/bin/clang)
# ships it; otherwise a `clang` on PATH (Debian: apt-get install clang).
# Override with FUZZ_CC=...

LLHTTP_DIR   ?= /usr/share/llhttp
LLHTTP_INC   ?= /usr/share/include/llhttp
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?= 1
FUZZ_OUT     ?= .build-fuzz
FUZZ_CC      ?= $(firstword $(wildcard /opt/swift/usr/bin/clang) clang)
# lld when the compiler has one next to it (quieter and faster than gold
# with the sanitizer runtimes), else the default linker.
FUZZ_LD      := $(if $(wildcard $(dir $(FUZZ_CC))ld.lld),-fuse-ld=lld,)
FUZZ_SAN     := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
                -DLLHTTP_STRICT_MODE=1 -D_GNU_SOURCE -DVIGIL_DEBUG \
                -I include -I $(LLHTTP_INC) -I CSources/CVigil
FUZZ_CORE    := $(sort $(wildcard CSources/CVigil/*.c))
FUZZ_OBJS    := $(patsubst CSources/CVigil/%.c,$(FUZZ_OUT)/obj/vigil/%.o,$(FUZZ_CORE)) \
                $(patsubst %,$(FUZZ_OUT)/obj/llhttp/%.o,api http llhttp)
FUZZ_BIN     := $(FUZZ_OUT)/fuzz_request

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-repro fuzz-check-cc fuzz-file-rules

fuzz: fuzz-build
	bash fuzz/run.sh $(FUZZ_BIN) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	bash fuzz/run.sh $(FUZZ_BIN) 60

# The file rules run in a sub-make reading this file alone, once `deps` has
# installed llhttp's sources (the pattern rules need them to exist).
fuzz-build: deps fuzz-check-cc
	@$(MAKE) --no-print-directory -f mk/fuzz.mk fuzz-file-rules

fuzz-repro: fuzz-build
	@test -n "$(FUZZ_INPUT)" || { echo "usage: make fuzz-repro FUZZ_INPUT=crash-file"; exit 2; }
	ASAN_OPTIONS=detect_leaks=1 $(FUZZ_BIN) -runs=$(FUZZ_RUNS) $(FUZZ_INPUT)

# Fail early, with a hint, if the compiler cannot build a libFuzzer target.
fuzz-check-cc:
	@mkdir -p $(FUZZ_OUT)
	@printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
	  > $(FUZZ_OUT)/cc-check.c
	@$(FUZZ_CC) $(FUZZ_SAN) $(FUZZ_LD) -o $(FUZZ_OUT)/cc-check $(FUZZ_OUT)/cc-check.c 2>/dev/null || { \
	  echo "error: '$(FUZZ_CC)' cannot build a libFuzzer target (-fsanitize=fuzzer)."; \
	  echo "       Install clang (apt-get install clang) or set FUZZ_CC=/path/to/clang."; \
	  exit 1; }

fuzz-file-rules: $(FUZZ_BIN)

$(FUZZ_OUT)/obj/vigil/%.o: CSources/CVigil/%.c include/vigil.h CSources/CVigil/vigil_internal.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_OUT)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_OUT)/obj/fuzz_request.o: fuzz/fuzz_request.c include/vigil.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wall -Wextra -c -o $@ $<

$(FUZZ_BIN): $(FUZZ_OUT)/obj/fuzz_request.o $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) $(FUZZ_LD) -o $@ $^ -luv -lpthread

# ---------------------------------------------------------------------------
# The differential framing fuzzer (fuzz/diff/, fuzz/README.md): the same byte
# streams through Vigil, Go's net/http and Node's http, readings compared.
#
#   make fuzz-diff [FUZZ_SECONDS=60] [FUZZ_SEED=S]   generate and compare;
#                                  findings in .build-fuzz-diff/findings/
#   make fuzz-diff-smoke           `make test`'s run: seed 1, 2 000 inputs
#   make fuzz-cases                the case suites fuzz/diff/cases/*.jsonl
#   make fuzz-diff-build           only build the three report servers
#
# Needs go (Debian golang-go) and node (20: llhttp 9) on PATH. The servers
# run on free loopback ports and are stopped by fuzzdiff.py (and die with
# it); `timeout` bounds the whole run. FUZZ_DIFF_SAN=1 builds Vigil's
# report server with ASan+UBSan (in .build-fuzz-diff-san/).

FUZZ_DIFF_OUT  ?= .build-fuzz-diff$(if $(FUZZ_DIFF_SAN),-san)
FUZZ_DIFF_CC   ?= $(CC)
FUZZ_DIFF_SANON := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_DIFF_SANF := $(if $(FUZZ_DIFF_SAN),$(FUZZ_DIFF_SANON))
FUZZ_DIFF_CFLAGS := -g -O2 -fno-omit-frame-pointer $(FUZZ_DIFF_SANF) -DLLHTTP_STRICT_MODE=1 \
                    -D_GNU_SOURCE -DVIGIL_DEBUG -I include -I $(LLHTTP_INC) -I CSources/CVigil
FUZZ_DIFF_OBJS := $(patsubst CSources/CVigil/%.c,$(FUZZ_DIFF_OUT)/obj/vigil/%.o,$(FUZZ_CORE)) \
                  $(patsubst %,$(FUZZ_DIFF_OUT)/obj/llhttp/%.o,api http llhttp)
FUZZ_DIFF_PY   := nice -n 5 timeout -k 10
FUZZ_DIFF_RUN   = python3 fuzz/diff/fuzzdiff.py
FUZZ_DIFF_ARGS  = --bin $(FUZZ_DIFF_OUT) --out $(FUZZ_DIFF_OUT)/findings

.PHONY: fuzz-diff fuzz-diff-smoke fuzz-cases fuzz-diff-build fuzz-diff-tools fuzz-diff-file-rules

fuzz-diff: fuzz-diff-build
	$(FUZZ_DIFF_PY) $$(( $(FUZZ_SECONDS) + 180 )) $(FUZZ_DIFF_RUN) fuzz --seconds $(FUZZ_SECONDS) \
	  $(FUZZ_DIFF_ARGS) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED),)

# `make test`'s run: a fixed seed and count (the same 2 000 inputs on any
# machine; every one of them agrees or is allowlisted), so that a gap in the
# allowlist that random exploration finds (`make fuzz-diff`) is triaged
# there, not met by chance in CI.
FUZZ_DIFF_SMOKE_SEED ?= 1
FUZZ_DIFF_SMOKE_INPUTS ?= 2000
fuzz-diff-smoke: fuzz-diff-build
	$(FUZZ_DIFF_PY) 600 $(FUZZ_DIFF_RUN) fuzz --seconds 480 --inputs $(FUZZ_DIFF_SMOKE_INPUTS) \
	  --minimize 10 $(FUZZ_DIFF_ARGS) --seed $(if $(FUZZ_SEED),$(FUZZ_SEED),$(FUZZ_DIFF_SMOKE_SEED))

fuzz-cases: fuzz-diff-build
	$(FUZZ_DIFF_PY) 900 $(FUZZ_DIFF_RUN) cases $(FUZZ_DIFF_ARGS) $(sort $(wildcard fuzz/diff/cases/*.jsonl))

fuzz-diff-build: deps fuzz-diff-tools
	@$(MAKE) --no-print-directory -f mk/fuzz.mk fuzz-diff-file-rules CC="$(CC)"

# Go's net/http is one of the references: Debian's golang-go, installed
# here when missing (as root; `make test` runs on a fresh machine).
fuzz-diff-tools:
	@if ! command -v go >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing: golang-go"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; \
	fi
	@for t in go node python3; do command -v $$t >/dev/null 2>&1 || { \
	  echo "error: fuzz-diff needs '$$t' on PATH (Debian: golang-go; Node 20; python3)"; exit 1; }; done

fuzz-diff-file-rules: $(FUZZ_DIFF_OUT)/vigil_report $(FUZZ_DIFF_OUT)/vigil-diff-go

$(FUZZ_DIFF_OUT)/obj/vigil/%.o: CSources/CVigil/%.c include/vigil.h CSources/CVigil/vigil_internal.h
	@mkdir -p $(@D)
	$(FUZZ_DIFF_CC) $(FUZZ_DIFF_CFLAGS) -c -o $@ $<

$(FUZZ_DIFF_OUT)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(FUZZ_DIFF_CC) $(FUZZ_DIFF_CFLAGS) -c -o $@ $<

$(FUZZ_DIFF_OUT)/vigil_report: fuzz/diff/vigil_report.c include/vigil.h $(FUZZ_DIFF_OBJS)
	$(FUZZ_DIFF_CC) $(FUZZ_DIFF_CFLAGS) -Wall -Wextra -o $@ fuzz/diff/vigil_report.c \
	  $(FUZZ_DIFF_OBJS) -luv -lpthread

# Standard library only: no module download (GOPROXY=off), cache in the
# build directory.
$(FUZZ_DIFF_OUT)/vigil-diff-go: fuzz/diff/go/main.go fuzz/diff/go/go.mod
	@mkdir -p $(@D)
	cd fuzz/diff/go && GOCACHE=$(abspath $(FUZZ_DIFF_OUT))/gocache GOPROXY=off GOFLAGS= \
	  go build -o $(abspath $@) .
