"""The operator at 500, 1,000 and 2,000 services: start, convergence, memory, CPU, idle writes.

Usage: python bench/scale.py [--sizes 500,1000,2000] [--per-group 50] [--lanes 10]
                             [--rollouts 200] [--trials 30] [--idle 30] [--kubeconfig PATH]

For each size a fresh local control plane (or the given cluster) gets groups of `--per-group`
services with `--lanes` lanes each; every service has a base pod and most have a pod in one
more lane (about 1.9 pods per service), marked Ready by the benchmark. `--rollouts` of the
services are Deployments driven by WorkloadRollouts, whose pods the local node's simulated
mode (`python -m lanes_testbed.node --simulate`) marks Ready without running anything. The operator
runs as its own process (`python -m lanes.operator`, as in production). Measured, in order:

- operator start -> every group Ready with all its routes generated;
- every rollout's image changed -> all of them paused at their first step (in flight);
- convergence under that load: a pod turning Ready -> its subset in the DestinationRule;
- the operator's CPU per pod event over those trials (cost per event), in all and net of what
  the operator spends at rest in the same time (its periodic resync, which grows with the
  number of groups, and the watches), measured in the idle window that follows;
- API writes during an idle window that holds a full resync (target 0);
- a change of every lane at once (each group's routeHeader): VirtualServices rewritten per s;
- the operator's RSS (after start, at rest, peak) and CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from convergence import ROOT, Routes, cluster, ensure_namespace, percentile
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from lanes_testbed.processes import free_port
from lanes_testbed.inprocess import delete_pod, make_pod, set_ready

IMAGE = "registry.invalid/bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIM_LABEL = "lanes.dev/bench-simulated"


def note(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def writes(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "lanes_api_writes_total")


def wait_for(probe: Callable[[], object], what: str, timeout: float = 600.0, every: float = 0.25) -> float:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every)
    return time.monotonic()


def group_body(name: str, namespace: str, services: list[str], lanes: list[str], header: str = "x-lane") -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "SwimLaneGroup", "metadata": {"name": name},
        "spec": {
            "ingress": {"gateway": {"name": "ingressgateway", "namespace": "istio-system"}},
            "isPermissive": True, "autoUpdate": True,
            "permissiveModeConfiguration": {"fallbackTarget": lanes[0], "routeHeader": header},
            "services": [{"name": s, "namespace": namespace} for s in services],
        },
    }


def lane_body(group: str, lane: str, entry: str) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "SwimLane",
        "metadata": {"name": lane, "labels": {"swimlane-group": group}},
        "spec": {"labelSelector": {"lane": lane}, "ingressRules": [{
            "name": lane, "match": {"headers": {"x-lane": {"exact": lane}}},
            "route": {"destination": {"host": entry}}}]},
    }


def deployment(service: str, lane: str) -> dict:
    labels = {"app": service, "lane": lane, SIM_LABEL: "1"}
    return {
        "metadata": {"name": service},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": service}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "default", "image": f"{IMAGE}:1"}]}}},
    }


def rollout(service: str, canary_lane: str) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "WorkloadRollout", "metadata": {"name": service},
        "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
                 "strategy": {"canary": {"enableExtraWorkloadForCanary": True,
                                         "steps": [{"replicas": 1, "pause": {}}],
                                         "patchPodTemplateMetadata": {"labels": {"lane": canary_lane}}}}},
    }


class Fleet:
    """The groups, lanes, Services, pods and rollouts of one size."""

    def __init__(self, services: int, per_group: int, lanes: int, rollouts: int):
        tag = uuid.uuid4().hex[:4]
        self.namespace = f"scale-{tag}"
        self.names = [f"svc-{i:04d}" for i in range(services)]
        self.groups = {f"g{g:03d}-{tag}": self.names[g * per_group:(g + 1) * per_group]
                       for g in range((services + per_group - 1) // per_group)}
        self.lanes = {g: [f"{g}-l{k}" for k in range(lanes)] for g in self.groups}
        self.group_of = {s: g for g, members in self.groups.items() for s in members}
        self.rolled = self.names[:rollouts]
        self.pods = 0

    def create(self, api: client.ApiClient, pool: ThreadPoolExecutor) -> None:
        core, custom, apps = client.CoreV1Api(api), client.CustomObjectsApi(api), client.AppsV1Api(api)
        ensure_namespace(core, self.namespace)
        ensure_namespace(core, "istio-system")
        list(pool.map(lambda s: core.create_namespaced_service(self.namespace, {
            "metadata": {"name": s},  # headless: the local control plane's Service range holds 254
            "spec": {"clusterIP": "None", "selector": {"app": s}, "ports": [{"port": 8000}]}}), self.names))
        for group, members in self.groups.items():
            entry = f"{members[0]}.{self.namespace}.svc.cluster.local"
            for lane in self.lanes[group]:
                custom.create_cluster_custom_object("lanes.dev", "v1alpha1", "swimlanes", lane_body(group, lane, entry))
            custom.create_cluster_custom_object("lanes.dev", "v1alpha1", "swimlanegroups",
                                                group_body(group, self.namespace, members, self.lanes[group]))
        rolled = set(self.rolled)
        jobs = []
        for i, service in enumerate(self.names):
            lanes = self.lanes[self.group_of[service]]
            if service in rolled:
                continue
            jobs.append((f"{service}-0", {"app": service, "lane": lanes[0]}))
            if i % len(lanes):
                jobs.append((f"{service}-{i % len(lanes)}", {"app": service, "lane": lanes[i % len(lanes)]}))
        list(pool.map(lambda job: make_pod(core, self.namespace, *job), jobs))
        self.pods = len(jobs) + len(rolled)
        list(pool.map(lambda s: apps.create_namespaced_deployment(
            self.namespace, deployment(s, self.lanes[self.group_of[s]][0])), self.rolled))
        list(pool.map(lambda s: custom.create_namespaced_custom_object(
            "lanes.dev", "v1alpha1", self.namespace, "workloadrollouts",
            rollout(s, self.lanes[self.group_of[s]][1])), self.rolled))

    def expected(self, group: str) -> int:
        return 1 + 2 * len(self.groups[group])


def all_in_force(custom: client.CustomObjectsApi, fleet: Fleet) -> bool:
    listed = custom.list_cluster_custom_object("lanes.dev", "v1alpha1", "swimlanegroups")["items"]
    done = 0
    for group in listed:
        name, status = group["metadata"]["name"], group.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        if name in fleet.groups and ready and status.get("generated") == fleet.expected(name):
            done += 1
    return done == len(fleet.groups)


def rollout_phases(custom: client.CustomObjectsApi, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for body in custom.list_namespaced_custom_object("lanes.dev", "v1alpha1", namespace, "workloadrollouts")["items"]:
        status = body.get("status") or {}
        key = f"{status.get('phase')}/{(status.get('canaryStatus') or {}).get('currentStepState')}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def all_labelled(apps: client.AppsV1Api, fleet: Fleet) -> bool:
    """Whether every rollout's base carries the mark the webhook selects on."""
    listed = apps.list_namespaced_deployment(fleet.namespace, label_selector="lanes.dev/rollout").items
    return len(listed) >= len(fleet.rolled)


def has_subset(latest: dict, dr: str, lane: str) -> bool:
    found = latest.get(("destinationrules", dr))
    return found is not None and any(s["name"] == lane for s in found["spec"].get("subsets") or [])


def lacks_subset(latest: dict, dr: str, lane: str) -> bool:
    found = latest.get(("destinationrules", dr))
    return found is not None and not any(s["name"] == lane for s in found["spec"].get("subsets") or [])


@contextlib.contextmanager
def simulated_node(kubeconfig: str, namespace: str, log: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "lanes_testbed.node", "--kubeconfig", kubeconfig, "--name", f"sim-{namespace}",
         "--namespace", namespace, "--selector", SIM_LABEL, "--simulate"],
        cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def measure(kubeconfig: str, size: int, args: argparse.Namespace) -> dict[str, float]:
    api = config.new_client_from_config(config_file=kubeconfig)
    api.configuration.connection_pool_maxsize = 16
    core, custom, apps = client.CoreV1Api(api), client.CustomObjectsApi(api), client.AppsV1Api(api)
    fleet = Fleet(size, args.per_group, args.lanes, min(args.rollouts, size))
    state = Path(tempfile.mkdtemp(prefix="lanes-bench-scale-"))
    figures: dict[str, float] = {}
    with ThreadPoolExecutor(8) as pool, simulated_node(kubeconfig, fleet.namespace, state / "node.log"):
        note(f"creating {size} services")
        started = time.monotonic()
        fleet.create(api, pool)
        figures["setup_s"] = time.monotonic() - started
        port = free_port()
        env = {**os.environ, "LANES_WEBHOOK_PORT": str(free_port()), "LANES_WEBHOOK_CONFIG": f"{fleet.namespace}.lanes.dev"}
        operator = subprocess.Popen(
            [sys.executable, "-m", "lanes.operator", "--kubeconfig", kubeconfig, "--metrics-port", str(port),
             "--metrics-host", "127.0.0.1", "--log-level", "warning", "--resync", str(args.idle * 0.6)],
            cwd=ROOT, env=env, stdout=(state / "operator.log").open("ab"), stderr=subprocess.STDOUT)
        pid = operator.pid
        try:
            note("operator started")
            started = time.monotonic()
            done = wait_for(lambda: all_in_force(custom, fleet), "every route in force", every=0.2)
            figures["start_to_routes_s"] = done - started
            figures["cpu_start_s"] = cpu_s(pid)
            figures["rss_converged_mb"] = rss_mb(pid)

            wait_for(lambda: sum(n for k, n in rollout_phases(custom, fleet.namespace).items()
                                     if k.startswith("Healthy/")) == len(fleet.rolled)
                     and all_labelled(apps, fleet), "every rollout Healthy, its base held by the webhook", every=0.5)
            note(f"changing the images of {len(fleet.rolled)} rollouts")
            started = time.monotonic()
            patch = {"spec": {"template": {"spec": {"containers": [{"name": "default", "image": f"{IMAGE}:2"}]}}}}
            list(pool.map(lambda s: apps.patch_namespaced_deployment(s, fleet.namespace, patch), fleet.rolled))
            wait_for(lambda: rollout_phases(custom, fleet.namespace).get("Paused/StepPaused", 0) == len(fleet.rolled),
                     "every rollout at its first pause", every=0.5)
            figures["rollouts_to_pause_s"] = time.monotonic() - started
            wait_for(lambda: all_in_force(custom, fleet), "routes after the canaries", every=0.2)

            note("convergence trials")
            routes = Routes(api, fleet.namespace)
            routes.wait(lambda latest: sum(1 for k in latest if k[0] == "destinationrules") >= size, timeout=120)
            bare = [s for s in fleet.names if s not in set(fleet.rolled)]
            random.seed(size)
            delays, cpu_before, trials_started = [], cpu_s(pid), time.monotonic()
            for trial in range(args.trials):
                service = random.choice(bare)
                group = fleet.group_of[service]
                lane = fleet.lanes[group][-1] if fleet.names.index(service) % args.lanes != args.lanes - 1 else fleet.lanes[group][-2]
                dr, pod = f"lanes-{group}-{service}", f"{service}-probe-{trial}"
                make_pod(core, fleet.namespace, pod, {"app": service, "lane": lane}, ready=False)
                routes.wait(lambda latest: lacks_subset(latest, dr, lane), timeout=60)
                time.sleep(0.05)
                t0 = time.monotonic()
                set_ready(core, fleet.namespace, pod, True)
                delays.append(routes.wait(lambda latest: has_subset(latest, dr, lane), timeout=60) - t0)
                delete_pod(core, fleet.namespace, pod)
                routes.wait(lambda latest: lacks_subset(latest, dr, lane), timeout=60)
            trials_cpu, trials_s = cpu_s(pid) - cpu_before, time.monotonic() - trials_started
            figures["cost_per_event_ms"] = trials_cpu / (3 * args.trials) * 1000
            figures["convergence_p50_ms"] = percentile(delays, 50) * 1000
            figures["convergence_p99_ms"] = percentile(delays, 99) * 1000
            figures["convergence_max_ms"] = max(delays) * 1000

            note("idle window")
            time.sleep(3)
            before, cpu_before = writes(port), cpu_s(pid)
            time.sleep(args.idle)
            figures["idle_writes_per_min"] = (writes(port) - before) * 60 / args.idle
            figures["idle_cpu_pct"] = (cpu_s(pid) - cpu_before) / args.idle * 100
            at_rest = figures["idle_cpu_pct"] / 100 * trials_s
            figures["net_cost_per_event_ms"] = max(0.0, trials_cpu - at_rest) / (3 * args.trials) * 1000
            figures["rss_idle_mb"] = rss_mb(pid)

            note("changing the route header of every group")
            old, header = "'x-lane':", "x-lane-2"
            rewritten = sum(1 for k, v in routes.latest.items() if k[0] == "virtualservices" and old in repr(v["spec"]))
            started = time.monotonic()
            for group in fleet.groups:
                custom.patch_cluster_custom_object("lanes.dev", "v1alpha1", "swimlanegroups", group, {
                    "spec": {"permissiveModeConfiguration": {"routeHeader": header}}})

            def all_rewritten(latest: dict) -> bool:
                return not any(k[0] == "virtualservices" and old in repr(v["spec"]) for k, v in latest.items())

            done = routes.wait(all_rewritten, timeout=600)
            figures["lane_change_s"] = done - started
            figures["lane_change_objects"] = rewritten
            figures["lane_change_objects_per_s"] = rewritten / (done - started)
            routes.stop()
            figures["rss_peak_mb"] = hwm_mb(pid)
            figures["cpu_total_s"] = cpu_s(pid)
        finally:
            operator.terminate()
            operator.wait(30)
    figures["pods"] = fleet.pods
    figures["groups"] = len(fleet.groups)
    return figures


def import_rss_mb() -> float:
    """RSS of a Python that has imported what the operator runs, and done nothing else."""
    out = subprocess.run(
        [sys.executable, "-c", "import lanes.operator.run, lanes.operator.runtime, lanes.cli.main\n"
         "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return int(out.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,1000,2000")
    parser.add_argument("--per-group", type=int, default=50)
    parser.add_argument("--lanes", type=int, default=10)
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle window (holds a resync)")
    parser.add_argument("--kubeconfig", help="an existing cluster; default: a fresh local control plane per size")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so every process started is stopped
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    for size in sizes:
        with cluster(args.kubeconfig) as kubeconfig:
            results[size] = measure(kubeconfig, size, args)
        print(f"  {size} services done: {results[size]}", flush=True)
    print(f"scale: groups of {args.per_group} services x {args.lanes} lanes, {args.rollouts} WorkloadRollouts "
          f"in flight, operator as its own process; RSS after imports {import_rss_mb():.0f} MB")
    rows = [
        ("groups / pods", lambda f: f"{f['groups']:.0f} / {f['pods']:.0f}"),
        ("setup (objects created)", lambda f: f"{f['setup_s']:.1f} s"),
        ("operator start -> every route in force", lambda f: f"{f['start_to_routes_s']:.1f} s"),
        ("image change -> every rollout paused", lambda f: f"{f['rollouts_to_pause_s']:.1f} s"),
        ("convergence pod Ready -> subset p50", lambda f: f"{f['convergence_p50_ms']:.0f} ms"),
        ("convergence p99", lambda f: f"{f['convergence_p99_ms']:.0f} ms"),
        ("convergence max", lambda f: f"{f['convergence_max_ms']:.0f} ms"),
        ("CPU per pod event, in all / net of rest", lambda f: f"{f['cost_per_event_ms']:.1f} / {f['net_cost_per_event_ms']:.1f} ms"),
        ("API writes per idle minute", lambda f: f"{f['idle_writes_per_min']:.0f}"),
        ("CPU at rest (with resync)", lambda f: f"{f['idle_cpu_pct']:.1f} %"),
        ("every lane changed -> VS rewritten", lambda f: f"{f['lane_change_objects']:.0f} in {f['lane_change_s']:.1f} s = {f['lane_change_objects_per_s']:.0f}/s"),
        ("RSS converged / idle / peak", lambda f: f"{f['rss_converged_mb']:.0f} / {f['rss_idle_mb']:.0f} / {f['rss_peak_mb']:.0f} MB"),
        ("CPU to converge / in total", lambda f: f"{f['cpu_start_s']:.1f} / {f['cpu_total_s']:.1f} s"),
    ]
    print(f"{'':42}" + "".join(f"{size:>22,}" for size in sizes))
    for label, cell in rows:
        print(f"{label:42}" + "".join(f"{cell(results[s]):>22}" for s in sizes))


if __name__ == "__main__":
    main()
