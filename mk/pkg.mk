# mk/pkg.mk - Vigil as a package that others depend on: the prerequisite
# messages, a consumer package, the DocC documentation, the changelog.
# Included by the top-level Makefile, which defines SWIFT and `deps`, after
# mk/c.mk, which reads VIGIL_VERSION from include/vigil.h.
#
#   make test-prereq     a package depending on Vigil, built without
#                        node-llhttp (a copy whose llhttp symlinks point
#                        nowhere), must fail naming node-llhttp; the libuv
#                        checks name libuv1-dev (Tests/pkg/missing_deps.sh)
#   make test-consumer   builds Tests/consumer (depends on Vigil by path,
#                        public API only) in its own scratch path and runs
#                        it: serves a request, observes a cancellation
#   make docs            the DocC archive of the Vigil module
#                        (.build-docs/Vigil.doccarchive) with swift-docc-plugin;
#                        any documentation warning (a broken symbol link) fails
#   make test-pkg        the three, and CHANGELOG.md has a section for the
#                        version in include/vigil.h

PKG_DOCS     ?= .build-docs

.PHONY: test-pkg test-prereq test-consumer docs test-changelog clean-pkg

test-pkg: test-prereq test-consumer docs test-changelog

test-prereq: deps
	bash Tests/pkg/missing_deps.sh

test-consumer: deps
	cd Tests/consumer && $(SWIFT) build --scratch-path .build
	Tests/consumer/.build/debug/VigilConsumer

docs: deps
	rm -rf $(PKG_DOCS) && mkdir -p $(PKG_DOCS)
	$(SWIFT) package --allow-writing-to-directory $(PKG_DOCS) \
	  generate-documentation --target Vigil --warnings-as-errors \
	  --output-path $(PKG_DOCS)/Vigil.doccarchive

# A release is a CHANGELOG.md section named for vigil.h's version.
test-changelog:
	@grep -q '^## \[$(VIGIL_VERSION)\]' CHANGELOG.md || \
	  { echo "CHANGELOG.md has no section '## [$(VIGIL_VERSION)]' (include/vigil.h's version)"; exit 1; }
	@echo "CHANGELOG.md has the section of version $(VIGIL_VERSION) (include/vigil.h)"

# `make clean` removes these too.
clean: clean-pkg
clean-pkg:
	rm -rf $(PKG_DOCS) .build-pkgcheck Tests/consumer/.build
