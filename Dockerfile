# The operator image the Helm chart runs: `kubectl-lane operator`, with the trace-affinity
# module it serves to Istio's proxies.

# The module, built from the project's source with the build testbed/lanes_testbed/wasm.py runs
# (TARGET_ENV, gobuild's STATIC_ENV and GOFLAGS, BUILD_FLAGS; a unit test compares them).
FROM golang:1.26 AS trace-affinity
WORKDIR /src
COPY lanes/traceaffinity ./
RUN CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" GOOS=wasip1 GOARCH=wasm \
    go build -buildmode=c-shared -trimpath -o /out/trace-affinity.wasm .

FROM python:3.12-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lanes ./lanes
RUN pip install --no-cache-dir . && rm -rf /src
# The chart's LANES_TRACE_AFFINITY_MODULE (charts/lanes/templates/_helpers.tpl, lanes.modulePath).
COPY --from=trace-affinity /out/trace-affinity.wasm /usr/local/share/lanes/trace-affinity.wasm
USER 65532:65532
ENTRYPOINT ["kubectl-lane"]
CMD ["operator"]
