"""The operator's cost per analysis interval with many rollouts analysing at once.

Usage: python bench/analysis_load.py [--rollouts N] [--interval S] [--window S] [--rollout-workers N]

Starts the dev stack (control plane, the operator as its own process, local node, Envoy mesh,
a real Prometheus), applies the mock-chain sample and keeps base-tagged requests flowing through
the gateway, so Envoy has real series for mockb's base subset. Then it creates N Deployments
with N WorkloadRollouts (namespace `bench`), each released (a new template) into one step with
`pause: {}` under analysis, so every rollout stays at that step making one check per interval
until approved, which never comes.

What is real and what is not, on a 2-core machine: the N canaries cannot all be processes, so
the bench's Deployments have 0 replicas (the step's canary has 0 pods and counts as ready);
each rollout's metric is a MetricTemplate whose query is the built-in Envoy success-rate query
of mockb's base subset, a handful of real pods serving real traffic. Everything else is the
operator's real work per check: reading the rollout, its Deployments and ReplicaSets, the
Services, the lanes and the MetricTemplate, one PromQL query to the real Prometheus, and the
status write.

Measured over `--window` seconds once every rollout made its first check:

- Prometheus queries per second: the delta of Prometheus's own
  `prometheus_http_requests_total{handler="/api/v1/query"}`, against N / interval expected;
- checks made per second (the rollouts' `status.analysis.checks`), the mean time between one
  rollout's checks (the interval plus however late the operator gets to it), and how many
  rollouts made no check in the window;
- CPU of the operator, Prometheus and kube-apiserver processes: CPU time / wall time (1.0 is one
  core fully used), and the operator's CPU ms per check.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes.analysis.queries import builtin_query, render_query
from lanes_testbed.stack import Stack

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "mock-chain"
NAMESPACE = "bench"
GROUP, VERSION = "lanes.dev", "v1alpha1"
IMAGE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"
TICKS = os.sysconf("SC_CLK_TCK")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def until(check: Callable[[], object], what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(what)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def pid_of(*parts: str) -> int | None:
    """The first process whose command line contains every one of `parts`."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(part in line for part in parts):
                return int(entry.name)
    return None


def query_count(prometheus_url: str) -> float:
    """Instant queries Prometheus has answered, from its own /metrics."""
    with _DIRECT.open(f"{prometheus_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = re.compile(r'^prometheus_http_requests_total\{[^}]*handler="/api/v1/query"[^}]*\} (\S+)$',
                         re.MULTILINE)
    return sum(float(v) for v in pattern.findall(text))


def load(gateway: str, stop: threading.Event) -> None:
    """Base-tagged requests, about 10 a second, so mockb's base subset has real series."""
    import http.client
    host, port = gateway.removeprefix("http://").split(":")
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/mock", headers={"x-asm-prefer-tag": "base"})
            conn.getresponse().read()
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)


def bench_objects(i: int, interval: str) -> tuple[dict, dict]:
    name = f"svc{i:03d}"
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                {"name": "default", "image": f"{IMAGE}:1.0"}]}},
        },
    }
    rollout = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadRollout",
        "metadata": {"name": name},
        "spec": {
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "strategy": {"canary": {
                "steps": [{"replicas": 1, "pause": {}}],
                "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}},
                "analysis": {"interval": interval, "threshold": 5, "metrics": [{
                    "name": "success-rate", "templateRef": {"name": "mockb-base-success"},
                    "thresholdRange": {"min": 99}}]},
            }},
        },
    }
    return deployment, rollout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--rollout-workers", type=int, default=4,
                        help="the operator's --rollout-workers (LANES_ROLLOUT_WORKERS)")
    args = parser.parse_args()
    os.environ["LANES_ROLLOUT_WORKERS"] = str(args.rollout_workers)
    interval = f"{args.interval:g}s"
    query = render_query(builtin_query("envoy", "request-success-rate"), {
        "namespace": "default", "target": "mockb-v1", "service": "mockb", "lane": "base",
        "interval": "30s"})
    with tempfile.TemporaryDirectory(prefix="lanes-bench-load-") as tmp, \
            Stack(Path(tmp) / "stack", gateway_port=0) as stack:
        api = stack.api
        assert api is not None
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        custom = client.CustomObjectsApi(api)
        for name in ("app.yaml", "lanes.yaml"):
            stack.plane.kubectl("apply", "-f", str(SAMPLE / name))
        stop = threading.Event()
        threading.Thread(target=load, args=(stack.gateway_url, stop), daemon=True).start()
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "metrictemplates", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "MetricTemplate",
            "metadata": {"name": "mockb-base-success"}, "spec": {"query": query}})

        def rollouts() -> list[dict]:
            return custom.list_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "workloadrollouts")["items"]

        def create(i: int) -> None:
            deployment, rollout = bench_objects(i, interval)
            apps.create_namespaced_deployment(NAMESPACE, deployment)
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "workloadrollouts", rollout)

        def release(i: int) -> None:
            name = f"svc{i:03d}"
            for _ in range(5):
                try:
                    apps.patch_namespaced_deployment(name, NAMESPACE, {"spec": {"template": {"spec": {
                        "containers": [{"name": "default", "image": f"{IMAGE}:2.0"}]}}}})
                    return
                except ApiException as error:
                    if error.status != 409:
                        raise
                    time.sleep(0.5)

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.rollouts)))
        until(lambda: sum((r.get("status") or {}).get("phase") == "Healthy" for r in rollouts())
              == args.rollouts, "every bench rollout Healthy")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(release, range(args.rollouts)))

        def analysing() -> bool:
            found = rollouts()
            return sum(((r.get("status") or {}).get("analysis") or {}).get("checks", 0) >= 1
                       for r in found) == args.rollouts
        until(analysing, "every bench rollout made a check", 600)
        setup = time.monotonic() - started

        operator = next(c for c in stack._children if c.name == "operator").process.pid
        assert stack.prometheus is not None and stack.prometheus._child is not None
        pids = {"operator": operator, "prometheus": stack.prometheus._child.process.pid,
                "kube-apiserver": pid_of("--etcd-servers=", str(stack.state_dir))}
        checks_before = {r["metadata"]["name"]: r["status"]["analysis"]["checks"] for r in rollouts()}
        cpu_before = {k: cpu_seconds(p) for k, p in pids.items() if p}
        queries_before = query_count(stack.prometheus_url)
        t0 = time.monotonic()
        time.sleep(args.window)
        wall = time.monotonic() - t0
        queries = query_count(stack.prometheus_url) - queries_before
        cpu = {k: cpu_seconds(p) - cpu_before[k] for k, p in pids.items() if p}
        load_average = os.getloadavg()[0]
        after = rollouts()
        checks = {r["metadata"]["name"]: r["status"]["analysis"]["checks"] - checks_before[r["metadata"]["name"]]
                  for r in after}
        phases = {r["status"]["analysis"]["phase"] for r in after}
        stop.set()

    expected = args.rollouts / args.interval
    made = sum(checks.values())
    print(f"{args.rollouts} rollouts analysing at once, interval {interval}, window {wall:.0f}s "
          f"(setup {setup:.0f}s), {args.rollout_workers} rollout workers; "
          f"analysis phases seen: {', '.join(sorted(phases))}")
    print(f"{'':36}{'measured':>12}{'expected':>12}")
    print(f"{'Prometheus queries/s':36}{queries / wall:>12.1f}{expected:>12.1f}")
    print(f"{'checks/s (status.analysis.checks)':36}{made / wall:>12.1f}{expected:>12.1f}")
    if made:
        between = "seconds between one rollout's checks"
        print(f"{between:36}{wall * args.rollouts / made:>12.1f}"
              f"{args.interval:>12.1f}")
    idle = sum(1 for n in checks.values() if n == 0)
    print(f"{'rollouts with no check in the window':36}{idle:>12d}{0:>12d}")
    for name, seconds in cpu.items():
        print(f"{name + ' CPU (cores)':36}{seconds / wall:>12.2f}")
    if made:
        print(f"{'operator CPU per check':36}{1000 * cpu['operator'] / made:>10.1f}ms")
    print(f"machine: {os.cpu_count()} cores, 1-minute load average {load_average:.1f} at the "
          "window's end (anything else running shows here)")


if __name__ == "__main__":
    main()
