# mk/c.mk - the C side of Vigil: the library (static and shared), its
# installation with a pkg-config file, the C examples, and the C test suite.
# Included by the top-level Makefile, which defines PREFIX, CC, BUILD_C,
# LLHTTP_DIR, LLHTTP_INC and the `deps` target.
#
#   make lib                    .build-c/libvigil.a, .build-c/libvigil.so*
#   make install PREFIX=/opt/x  lib/, include/vigil.h, lib/pkgconfig/vigil.pc
#   make uninstall PREFIX=...
#   make examples-c             the examples, built against the lib in place
#   make vigil-c-bench          examples/c/hello.c linked against libvigil.a
#   make test-c                 everything above, then the C tests (shared
#                               library build, ASan+UBSan+LSan build, example
#                               smoke tests; the unit tests test_unit_* built
#                               from the core's objects); last line
#                               "N passed, M failed"
#
# The public targets first check the Debian packages (`deps`), then run the
# file rules in a sub-make, so that a clean machine gets llhttp's sources
# and pkg-config before any rule looks for them.

# The version has one source, include/vigil.h's VIGIL_VERSION_* macros: the
# shared library's file name and soname and the pkg-config file follow it.
vc_version_part = $(shell sed -n 's/^\#define VIGIL_VERSION_$(1)  *\([0-9][0-9]*\)$$/\1/p' include/vigil.h)
VIGIL_VERSION    := $(call vc_version_part,MAJOR).$(call vc_version_part,MINOR).$(call vc_version_part,PATCH)
ifneq ($(words $(subst ., ,$(VIGIL_VERSION))),3)
$(error mk/c.mk: no VIGIL_VERSION_MAJOR/MINOR/PATCH in include/vigil.h)
endif
VIGIL_SOMAJOR    := $(call vc_version_part,MAJOR)
VIGIL_SONAME     := libvigil.so.$(VIGIL_SOMAJOR)
VIGIL_SOREAL     := libvigil.so.$(VIGIL_VERSION)

VC_SRCS     := $(sort $(wildcard CSources/CVigil/*.c))
VC_HDRS     := include/vigil.h CSources/CVigil/vigil_internal.h
VC_LLHTTP   := api http llhttp
VC_OBJDIR   := $(BUILD_C)/obj
VC_OBJS     := $(patsubst CSources/CVigil/%.c,$(VC_OBJDIR)/vigil/%.o,$(VC_SRCS)) \
               $(patsubst %,$(VC_OBJDIR)/llhttp/%.o,$(VC_LLHTTP))
VC_ASANDIR  := $(BUILD_C)/asan
VC_ASANOBJS := $(patsubst CSources/CVigil/%.c,$(VC_ASANDIR)/obj/vigil/%.o,$(VC_SRCS)) \
               $(patsubst %,$(VC_ASANDIR)/obj/llhttp/%.o,$(VC_LLHTTP))

# Evaluated lazily: pkg-config may only exist once `deps` has run.
VC_UV_CFLAGS = $(shell pkg-config --cflags libuv 2>/dev/null)
VC_UV_LIBS   = $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)

VC_CPPFLAGS := -DLLHTTP_STRICT_MODE=1 -D_GNU_SOURCE -I include -I $(LLHTTP_INC)
VC_WARN     := -Wall -Wextra -Wno-unused-parameter
VC_CFLAGS   := -O2 -fPIC -fvisibility=hidden $(VC_WARN)
# The sanitizer build of the core and the tests (from the sources directly).
VC_SANFLAGS := -g -O1 -fno-omit-frame-pointer -DVIGIL_DEBUG -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined
VC_TESTCFLAGS := -g -O1 $(VC_WARN) -pthread

# Where `make test-c` installs the package to build the examples and tests
# against it, as a user would.
VC_TPREFIX  := $(abspath $(BUILD_C)/prefix)
VC_TPKG      = PKG_CONFIG_PATH=$(VC_TPREFIX)/lib/pkgconfig pkg-config
VC_TESTS    := $(patsubst Tests/c/%.c,%,$(sort $(wildcard Tests/c/test_*.c)))
# Unit tests (Tests/c/test_unit_*.c) test one core file on its own: they
# link the core's objects and read vigil_internal.h, so they are built
# from the objects (release and sanitizer), never against the package.
VC_UNITS    := $(filter test_unit_%,$(VC_TESTS))
VC_UNITFLAGS := $(VC_CPPFLAGS) -I CSources/CVigil
VC_EXAMPLES := $(patsubst examples/c/%.c,%,$(sort $(wildcard examples/c/*.c)))

.PHONY: lib install uninstall examples-c vigil-c-bench test-c \
        vigil-c-lib vigil-c-install vigil-c-test-build

# ---------------------------------------------------------------------------
# public targets

lib: deps
	@$(MAKE) --no-print-directory vigil-c-lib

install: lib
	@$(MAKE) --no-print-directory vigil-c-install

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libvigil.a $(DESTDIR)$(PREFIX)/lib/$(VIGIL_SOREAL) \
	      $(DESTDIR)$(PREFIX)/lib/$(VIGIL_SONAME) $(DESTDIR)$(PREFIX)/lib/libvigil.so \
	      $(DESTDIR)$(PREFIX)/include/vigil.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/vigil.pc

vigil-c-bench: deps
	@$(MAKE) --no-print-directory $(BUILD_C)/vigil-c-bench

examples-c: deps
	@$(MAKE) --no-print-directory $(patsubst %,$(BUILD_C)/examples-local/%,$(VC_EXAMPLES))

# The whole C suite. Installs into $(BUILD_C)/prefix (never into PREFIX).
test-c: deps
	@$(MAKE) --no-print-directory vigil-c-lib
	@rm -rf $(VC_TPREFIX)
	@$(MAKE) --no-print-directory vigil-c-install PREFIX=$(VC_TPREFIX) DESTDIR=
	@$(MAKE) --no-print-directory vigil-c-test-build
	@bash Tests/c/run.sh $(BUILD_C)

# ---------------------------------------------------------------------------
# the library

vigil-c-lib: $(BUILD_C)/libvigil.a $(BUILD_C)/$(VIGIL_SOREAL) \
             $(BUILD_C)/$(VIGIL_SONAME) $(BUILD_C)/libvigil.so

$(VC_OBJDIR)/vigil/%.o: CSources/CVigil/%.c $(VC_HDRS)
	@mkdir -p $(@D)
	$(CC) $(VC_CPPFLAGS) $(VC_UV_CFLAGS) $(VC_CFLAGS) $(CFLAGS) -c -o $@ $<

$(VC_OBJDIR)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(VC_CPPFLAGS) $(VC_CFLAGS) $(CFLAGS) -c -o $@ $<

# One relocatable object with every hidden symbol made local: the archive
# then exports exactly what the shared library does, so llhttp (and the
# core's vigil__ internals) cannot clash with a program's own copy.
$(BUILD_C)/libvigil.a: $(VC_OBJS)
	@rm -f $@ $(VC_OBJDIR)/vigil-all.o
	$(CC) -r -nostdlib -o $(VC_OBJDIR)/vigil-all.o $(VC_OBJS)
	objcopy --localize-hidden $(VC_OBJDIR)/vigil-all.o
	ar rcs $@ $(VC_OBJDIR)/vigil-all.o

$(BUILD_C)/$(VIGIL_SOREAL): $(VC_OBJS)
	$(CC) -shared -Wl,-soname,$(VIGIL_SONAME) -Wl,--no-undefined -Wl,-z,relro \
	  -o $@ $(VC_OBJS) $(LDFLAGS) $(VC_UV_LIBS) -lpthread
	@bad="$$(nm -D --defined-only $@ | awk '{print $$3}' | grep -v '^vigil_' || true)"; \
	if [ -n "$$bad" ]; then echo "error: $@ exports non-vigil symbols:"; echo "$$bad"; rm -f $@; exit 1; fi

$(BUILD_C)/$(VIGIL_SONAME): $(BUILD_C)/$(VIGIL_SOREAL)
	ln -sf $(VIGIL_SOREAL) $@

$(BUILD_C)/libvigil.so: $(BUILD_C)/$(VIGIL_SONAME)
	ln -sf $(VIGIL_SONAME) $@

# ---------------------------------------------------------------------------
# install

define VC_PC
prefix=$(PREFIX)
exec_prefix=$${prefix}
libdir=$${exec_prefix}/lib
includedir=$${prefix}/include

Name: vigil
Description: HTTP/1.1 server core over libuv that notices at once when a client goes away
Version: $(VIGIL_VERSION)
Requires.private: libuv
Cflags: -I$${includedir}
Libs: -L$${libdir} -lvigil
Libs.private: -lpthread
endef
export VC_PC

vigil-c-install: vigil-c-lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 $(BUILD_C)/libvigil.a $(DESTDIR)$(PREFIX)/lib/libvigil.a
	install -m 755 $(BUILD_C)/$(VIGIL_SOREAL) $(DESTDIR)$(PREFIX)/lib/$(VIGIL_SOREAL)
	ln -sf $(VIGIL_SOREAL) $(DESTDIR)$(PREFIX)/lib/$(VIGIL_SONAME)
	ln -sf $(VIGIL_SONAME) $(DESTDIR)$(PREFIX)/lib/libvigil.so
	install -m 644 include/vigil.h $(DESTDIR)$(PREFIX)/include/vigil.h
	printf '%s\n' "$$VC_PC" > $(DESTDIR)$(PREFIX)/lib/pkgconfig/vigil.pc
	@case "$(DESTDIR)$(PREFIX)" in /usr|/usr/local) \
	  if [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi;; esac

# ---------------------------------------------------------------------------
# examples and the benchmark server

# Built against the library in the tree (no install needed).
$(BUILD_C)/examples-local/%: examples/c/%.c include/vigil.h $(BUILD_C)/$(VIGIL_SONAME)
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -pthread -I include -o $@ $< -L$(BUILD_C) -lvigil \
	  -Wl,-rpath,$(abspath $(BUILD_C))

# The benchmark harness (Benchmarks/run.sh) runs
# .build-c/vigil-c-bench --host H --port N.
$(BUILD_C)/vigil-c-bench: examples/c/hello.c include/vigil.h $(BUILD_C)/libvigil.a
	$(CC) -O2 -Wall -Wextra -pthread -I include -o $@ $< $(BUILD_C)/libvigil.a \
	  $(VC_UV_LIBS) -lpthread

# ---------------------------------------------------------------------------
# tests (the sub-make of test-c; the package is installed in VC_TPREFIX)

# Tests of the core's internals (vigil_internal.h): built against the debug
# (VIGIL_DEBUG, ASan) objects only; the installed library hides those symbols.
VC_INTERNAL_TESTS := test_phase

vigil-c-test-build: \
  $(patsubst %,$(BUILD_C)/examples/%,$(VC_EXAMPLES)) \
  $(BUILD_C)/examples/hello-static \
  $(BUILD_C)/vigil-c-bench \
  $(patsubst %,$(BUILD_C)/tests/%,$(filter-out $(VC_INTERNAL_TESTS),$(VC_TESTS))) \
  $(BUILD_C)/tests/smoke_examples \
  $(patsubst %,$(VC_ASANDIR)/%,$(VC_TESTS)) \
  $(patsubst %,$(VC_ASANDIR)/examples/%,$(VC_EXAMPLES))

# The examples exactly as a user builds them: cc x.c $(pkg-config --cflags
# --libs vigil), plus an rpath because the prefix is not in ld.so's path.
$(BUILD_C)/examples/%: examples/c/%.c $(VC_TPREFIX)/lib/pkgconfig/vigil.pc
	@mkdir -p $(@D)
	$(CC) -Wall -Wextra -o $@ $< $$($(VC_TPKG) --cflags --libs vigil) -Wl,-rpath,$(VC_TPREFIX)/lib

# hello linked statically against libvigil.a, with what
# `pkg-config --static` says it needs (Libs.private, Requires.private).
$(BUILD_C)/examples/hello-static: examples/c/hello.c $(VC_TPREFIX)/lib/pkgconfig/vigil.pc
	@mkdir -p $(@D)
	$(CC) -Wall -Wextra -o $@ $< $$($(VC_TPKG) --cflags vigil) $(VC_TPREFIX)/lib/libvigil.a \
	  $$($(VC_TPKG) --static --libs vigil | sed 's/\(^\| \)-lvigil\( \|$$\)/ /')

$(BUILD_C)/tests/%: Tests/c/%.c Tests/c/tc.h $(VC_TPREFIX)/lib/pkgconfig/vigil.pc
	@mkdir -p $(@D)
	$(CC) $(VC_TESTCFLAGS) -o $@ $< $$($(VC_TPKG) --cflags --libs vigil) \
	  -Wl,-rpath,$(VC_TPREFIX)/lib

# Static pattern rules: they take the unit tests from the rules above and
# below. The timer test stands in for conn.c's vigil__conn_timeout (the
# tick's only way out of timer.c) to record what expires.
$(BUILD_C)/tests/test_unit_timer $(VC_ASANDIR)/test_unit_timer: \
  VC_UNITLINK := -Wl,--wrap=vigil__conn_timeout

$(patsubst %,$(BUILD_C)/tests/%,$(VC_UNITS)): $(BUILD_C)/tests/%: Tests/c/%.c Tests/c/tc.h \
  $(VC_HDRS) $(VC_OBJS)
	@mkdir -p $(@D)
	$(CC) $(VC_TESTCFLAGS) $(VC_UNITFLAGS) $(VC_UV_CFLAGS) -o $@ $< $(VC_OBJS) \
	  $(VC_UNITLINK) $(VC_UV_LIBS) -lpthread

$(patsubst %,$(VC_ASANDIR)/%,$(VC_UNITS)): $(VC_ASANDIR)/%: Tests/c/%.c Tests/c/tc.h \
  $(VC_HDRS) $(VC_ASANOBJS)
	$(CC) $(VC_TESTCFLAGS) $(VC_SANFLAGS) $(VC_UNITFLAGS) $(VC_UV_CFLAGS) -o $@ $< \
	  $(VC_ASANOBJS) $(VC_UNITLINK) $(VC_UV_LIBS) -lpthread

$(BUILD_C)/tests/smoke_examples: Tests/c/smoke_examples.c Tests/c/tc.h
	@mkdir -p $(@D)
	$(CC) $(VC_TESTCFLAGS) -o $@ $<

# Keep them between runs (make would delete them as intermediate files).
.SECONDARY: $(VC_ASANOBJS)

$(VC_ASANDIR)/obj/vigil/%.o: CSources/CVigil/%.c $(VC_HDRS)
	@mkdir -p $(@D)
	$(CC) $(VC_CPPFLAGS) $(VC_UV_CFLAGS) $(VC_WARN) $(VC_SANFLAGS) -c -o $@ $<

$(VC_ASANDIR)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(VC_CPPFLAGS) $(VC_WARN) $(VC_SANFLAGS) -c -o $@ $<

$(VC_ASANDIR)/examples/%: examples/c/%.c include/vigil.h $(VC_ASANOBJS)
	@mkdir -p $(@D)
	$(CC) -Wall -Wextra -pthread $(VC_SANFLAGS) -I include -o $@ $< $(VC_ASANOBJS) \
	  $(VC_UV_LIBS) -lpthread

$(VC_ASANDIR)/%: Tests/c/%.c Tests/c/tc.h $(VC_ASANOBJS)
	$(CC) $(VC_TESTCFLAGS) $(VC_SANFLAGS) -I include -o $@ $< $(VC_ASANOBJS) \
	  $(VC_UV_LIBS) -lpthread

# Tests of the core's internals (VC_INTERNAL_TESTS): built against the debug
# objects only, with the core's own include paths.
$(patsubst %,$(VC_ASANDIR)/%,$(VC_INTERNAL_TESTS)): $(VC_ASANDIR)/%: Tests/c/%.c Tests/c/tc.h \
    $(VC_HDRS) $(VC_ASANOBJS)
	$(CC) $(VC_TESTCFLAGS) $(VC_SANFLAGS) $(VC_CPPFLAGS) -I CSources/CVigil $(VC_UV_CFLAGS) \
	  -o $@ $< $(VC_ASANOBJS) $(VC_UV_LIBS) -lpthread
