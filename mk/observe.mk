# mk/observe.mk - the cost of VigilMetrics and VigilTracing, against the
# plain handler, interleaved (Benchmarks/observe/run.sh; Benchmarks/README.md).
# Included by the top-level Makefile, which defines `deps`.
#
#   make bench-observe                  3 rounds, off / metrics / tracing / both
#   make bench-observe BASE=<git rev>   also vigil-demo at BASE against the
#                                       work tree's: the core's own cost

.PHONY: bench-observe

bench-observe: deps
	BASE="$(BASE)" bash Benchmarks/observe/run.sh
