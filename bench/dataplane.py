"""Data-plane cost of the local mesh: `.venv/bin/python bench/dataplane.py [options]`.

Runs the mock chain twice on loopback: once called directly (mocka -> mockb -> mockc by pod
address, no Envoy) and once through the local mesh (the gateway, then each pod's sidecar on
both sides of every call, all configured by the local istiod from the rendered objects of story
state 0). A load generator in separate processes (one kept-alive connection each) sends a
bounded number of requests to each, and the table gives requests/s and p50/p99 latency. The
mesh runs twice, without and with the trace-affinity module (the WasmPlugins of ASM's
trace-ID mode, served as the operator serves them; a fresh trace value per request, so every
request is remembered and both calls restored), and the memory the gateway's Envoy allocates
for 10,000 remembered traces is read from its admin `/memory`. Then it times
`LocalMesh.update` for route changes (story states 1 <-> 2): from the objects handed to the
istiod to every proxy having acknowledged them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from lanes.api.load import load_observations
from lanes_testbed.mesh import Endpoint, LocalMesh
from lanes_testbed.mesh.pods import free_block, start_mock, start_pod
from lanes_testbed.processes import Child, free_port, stop
from lanes_testbed.wasm import STAT_PREFIX, ensure_trace_affinity
from lanes.operator.modules import ModuleServer, load_module, served_url
from lanes.importers import load
from lanes.render import TraceAffinityModule, render_group

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "tests" / "testdata" / "reference" / "asm-mock-chain-inputs.yaml"
OBSERVED = ROOT / "samples" / "mock-chain" / "observed"
CHAIN = ("mocka", "mockb", "mockc")
TRACE_HEADER = "my-request-id"


def load_worker(
    url: str, headers: dict[str, str], count: int, deadline: float, traced: bool = False
) -> tuple[list[float], int]:
    """Send up to `count` GETs on one kept-alive connection; latencies in seconds, errors.

    `traced` gives each request a trace value of its own, as a traced client's are.
    """
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    latencies, errors = [], 0
    tag = uuid.uuid4().hex[:8]
    for n in range(count):
        if time.time() > deadline:
            break
        started = time.perf_counter()
        sent = {**headers, TRACE_HEADER: f"{tag}-{n}"} if traced else headers
        try:
            conn.request("GET", "/mock", headers=sent)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            ok = False
        latencies.append(time.perf_counter() - started)
        errors += not ok
    conn.close()
    return latencies, errors


def measure(
    pool: ProcessPoolExecutor,
    url: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    traced: bool = False,
) -> dict[str, float]:
    """Warm up, then run `args.requests` spread over `args.concurrency` connections."""
    load_worker(url, headers, 50, time.time() + 10, traced)
    deadline = time.time() + args.max_seconds
    share = args.requests // args.concurrency
    started = time.perf_counter()
    futures = [
        pool.submit(load_worker, url, headers, share, deadline, traced)
        for _ in range(args.concurrency)
    ]
    results = [f.result() for f in futures]
    elapsed = time.perf_counter() - started
    latencies = sorted(lat for lats, _ in results for lat in lats)
    return {
        "requests": len(latencies),
        "errors": sum(e for _, e in results),
        "rps": len(latencies) / elapsed,
        "p50": statistics.quantiles(latencies, n=100)[49] * 1000,
        "p99": statistics.quantiles(latencies, n=100)[98] * 1000,
    }


def mesh_objects(
    flavour: str, state: str, trace_affinity: TraceAffinityModule | None = None
) -> list[dict]:
    bundle = load(INPUTS)
    docs = yaml.safe_load_all(INPUTS.read_text())
    plain = [d for d in docs if d["kind"] in {"Service", "Gateway"}]
    observed = load_observations(OBSERVED / f"state-{state}.yaml")
    rendered = render_group(bundle.groups[0], bundle.lanes, observed, flavour, trace_affinity)
    return [*plain, *rendered]


def remembered_memory(mesh: LocalMesh, traces: int) -> tuple[int, int]:
    """Bytes Envoy allocated for `traces` newly remembered traces, and how many it remembered.

    Each request carries a lane and a fresh trace value and asks for a path no route serves,
    so the gateway's filter remembers it and Envoy answers 404 at once.
    """
    def stat(name: str) -> int:
        return int(mesh.stats(f"^{name}$", [mesh.gateway_admin_url]).get(name, 0))

    def allocated() -> int:
        # The admin /memory answer is current; the server.memory_allocated stat lags a flush.
        with urllib.request.urlopen(f"{mesh.gateway_admin_url}/memory", timeout=10) as response:
            return int(json.loads(response.read())["allocated"])

    remembered = STAT_PREFIX + "remembered"
    before, count = allocated(), stat(remembered)
    host, port = mesh.gateway_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for n in range(traces):
        conn.request("GET", "/not-routed", headers={"x-asm-prefer-tag": "base",
                                                     TRACE_HEADER: f"{uuid.uuid4().hex}-{n}"})
        conn.getresponse().read()
    conn.close()
    return allocated() - before, stat(remembered) - count


def start_chains(
    work: Path, mesh: LocalMesh
) -> tuple[list[Child], dict[str, str], list[Endpoint]]:
    """A chain in the mesh (each pod with a sidecar, calls by service name) and a direct one."""
    block = free_block()
    children, ips, endpoints = [], {}, []
    for n, service in enumerate(CHAIN):
        mesh_ip, direct_ip = f"{block}.{n + 1}", f"{block}.{n + 11}"
        ips[service] = direct_ip
        nxt = CHAIN[n + 1] if n + 1 < len(CHAIN) else None
        via_mesh = {"app": service, "version": "v1",
                    "upstream_url": f"http://{nxt}:8000/" if nxt else ""}
        direct = {"app": service, "version": "v1",
                  "upstream_url": f"http://{block}.{n + 12}:8000/" if nxt else ""}
        labels = {"app": service, "ASM_TRAFFIC_TAG": "base"}
        children.append(start_pod(mesh, f"{service}-mesh", labels, mesh_ip, via_mesh, work / "pods"))
        children.append(start_mock(f"{service}-direct", direct_ip, direct, work / "pods"))
        endpoints.append(Endpoint(mesh_ip, labels))
    return children, ips, endpoints


def time_updates(mesh: LocalMesh, endpoints: list[Endpoint], rounds: int) -> list[float]:
    """Seconds from `update` called to every new version applied, flipping states 1 and 2."""
    states = [mesh_objects("istio", "1"), mesh_objects("istio", "2")]
    canary = [Endpoint(e.ip, {**e.labels, "ASM_TRAFFIC_TAG": "canary"}) for e in endpoints]
    timings = []
    for n in range(rounds):
        started = time.perf_counter()
        mesh.update(states[n % 2], endpoints + canary[: 1 + n % 2])
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per row (default 3000)")
    parser.add_argument("--concurrency", type=int, default=4, help="client connections")
    parser.add_argument("--max-seconds", type=float, default=60, help="cap per row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanes-bench-") as tmp:
        work = Path(tmp)
        mesh = LocalMesh(work / "mesh", gateway_port=free_port())
        loaded = load_module(ensure_trace_affinity(), free_port(), "127.0.0.1")
        server = ModuleServer(loaded).start()
        children: list[Child] = []
        try:
            mesh.start()
            children, direct, endpoints = start_chains(work, mesh)
            rows = []
            lane = {"x-asm-prefer-tag": "base"}
            with ProcessPoolExecutor(max_workers=args.concurrency) as pool:
                entry = f"http://{direct['mocka']}:8000"
                rows.append(("direct (no Envoy)", measure(pool, entry, lane, args)))
                mesh.update(mesh_objects("istio", "0"), endpoints)
                row = measure(pool, mesh.gateway_url, lane, args, traced=True)
                rows.append(("gateway + sidecars", row))
                module = TraceAffinityModule(url=served_url("127.0.0.1", server.port), sha256=loaded.sha256)
                mesh.update(mesh_objects("istio", "0", module), endpoints, timeout=60)
                row = measure(pool, mesh.gateway_url, lane, args, traced=True)
                rows.append(("  + trace affinity", row))
            memory, remembered = remembered_memory(mesh, 10_000)
            mesh.update(mesh_objects("istio", "0"), endpoints)
            updates = time_updates(mesh, endpoints, 40)
        finally:
            for child in children:
                stop(child)
            mesh.stop()
            server.stop()
    print(f"\nmocka -> mockb -> mockc, {args.concurrency} client connections, "
          f"{args.requests} requests per row\n")
    print(f"{'path':<24} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    for name, r in rows:
        print(f"{name:<24} {r['requests']:>8} {r['errors']:>6} {r['rps']:>8.0f} "
              f"{r['p50']:>7.2f} {r['p99']:>7.2f}")
    print(f"\ntrace affinity: {remembered} traces remembered, Envoy allocated "
          f"{memory / 1024:.0f} KiB more ({memory / max(remembered, 1):.0f} bytes per trace)")
    print(f"\nroute change in force on every proxy (LocalMesh.update, {len(updates)} changes): "
          f"p50 {statistics.median(updates) * 1000:.1f} ms, max {max(updates) * 1000:.1f} ms")
    sys.exit(1 if any(r["errors"] for _, r in rows) else 0)


if __name__ == "__main__":
    main()
