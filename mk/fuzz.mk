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
                -DLLHTTP_STRICT_MODE=1 -D_GNU_SOURCE \
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
