// The benchmarks' HTTP load generator and upstream: `go build`, standard library only.
module lanes.dev/bench/httpload

go 1.25
