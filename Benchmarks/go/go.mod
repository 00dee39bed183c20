module vigil/benchmarks/go-bench

go 1.19
