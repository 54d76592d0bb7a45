# The operator image the Helm chart runs: `kubectl-lane operator`, with the trace-affinity
# module it serves to Istio's proxies.

# The module, built from the project's source with the build testbed/lanes_testbed/wasm.py runs
# (TARGET, BUILD_FLAGS, BUILT_PATH; a unit test compares them); crates pinned by Cargo.lock.
FROM rust:1.95 AS trace-affinity
WORKDIR /src
COPY lanes/traceaffinity ./
RUN rustup target add wasm32-wasip1
RUN CARGO_TARGET_DIR=/out cargo build --release --locked --target wasm32-wasip1

FROM python:3.12-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lanes ./lanes
RUN pip install --no-cache-dir . && rm -rf /src
# The chart's LANES_TRACE_AFFINITY_MODULE (charts/lanes/templates/_helpers.tpl, lanes.modulePath).
COPY --from=trace-affinity /out/wasm32-wasip1/release/traceaffinity.wasm /usr/local/share/lanes/trace-affinity.wasm
USER 65532:65532
ENTRYPOINT ["kubectl-lane"]
CMD ["operator"]
