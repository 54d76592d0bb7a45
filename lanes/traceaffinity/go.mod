// The trace-affinity proxy-wasm module: `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`.
// Standard library only, so it builds wherever Go >= 1.24 does (go:wasmexport).
module lanes.dev/traceaffinity

go 1.26.0
