"""How fast routes follow pods: pod Ready -> its DR subset and VS route present, and back.

Usage: python bench/convergence.py [--trials N] [--kubeconfig PATH]

Without --kubeconfig a local control plane (etcd, kube-apiserver, kube-controller-manager)
is started with lanes' and Istio's CRDs. The operator runs as its own process
(`python -m lanes.operator`), as in production. Each trial marks a canary pod of `mockb`
Ready (there is no kubelet, so the benchmark writes the pod's Ready condition itself) and
times until a watch sees both the DestinationRule's `canary` subset and the VirtualService's
canary route; then deletes the pod and times until both are gone.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from _support import Latest
from kubernetes import client, config

from lanes_testbed.binaries import ensure_binaries
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.manifests import manifest_files
from lanes_testbed.inprocess import delete_pod, make_pod, set_ready

ROOT = Path(__file__).resolve().parent.parent
ISTIO_CRDS = ROOT / "testbed" / "lanes_testbed" / "istio-networking-crds.yaml"
ISTIO = ("networking.istio.io", "v1")


@contextlib.contextmanager
def cluster(kubeconfig: str | None) -> Iterator[str]:
    """The kubeconfig of the given cluster, or of a fresh local control plane."""
    if kubeconfig:
        yield kubeconfig
        return
    with tempfile.TemporaryDirectory(prefix="lanes-bench-") as state:
        plane = ControlPlane(state, ensure_binaries(), progress=None)
        with plane:
            plane.install_manifests([*manifest_files(ROOT / "crds"), ISTIO_CRDS])
            yield str(plane.kubeconfig)


@contextlib.contextmanager
def operator_process(kubeconfig: str, metrics_port: int = -1, resync: float = 300.0) -> Iterator[subprocess.Popen]:
    """`python -m lanes.operator` against the cluster, stopped on exit."""
    argv = [
        sys.executable, "-m", "lanes.operator", "--kubeconfig", kubeconfig,
        "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1",
        "--log-level", "warning", "--resync", str(resync),
    ]
    process = subprocess.Popen(argv)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ensure_namespace(core: client.CoreV1Api, name: str) -> None:
    with contextlib.suppress(client.exceptions.ApiException):
        core.create_namespace({"metadata": {"name": name}})


def group_bodies(name: str, namespace: str, services: list[str], lanes: list[str]) -> tuple[dict, list[dict]]:
    """A lane group over `services`, fallback `lanes[0]`, each lane selecting `lane=<name>`."""
    group = {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "SwimLaneGroup",
        "metadata": {"name": name},
        "spec": {
            "ingress": {"gateway": {"name": "ingressgateway", "namespace": "istio-system"}},
            "isPermissive": True,
            "autoUpdate": True,
            "permissiveModeConfiguration": {"fallbackTarget": lanes[0], "routeHeader": "x-lane"},
            "services": [{"name": s, "namespace": namespace} for s in services],
        },
    }
    lane_bodies = [
        {
            "apiVersion": "lanes.dev/v1alpha1",
            "kind": "SwimLane",
            "metadata": {"name": lane, "labels": {"swimlane-group": name}},
            "spec": {
                "labelSelector": {"lane": lane},
                "ingressRules": [{
                    "name": lane,
                    "match": {"headers": {"x-lane": {"exact": lane}}},
                    "route": {"destination": {"host": f"{services[0]}.{namespace}.svc.cluster.local"}},
                }],
            },
        }
        for lane in lanes
    ]
    return group, lane_bodies


def create_group(api: client.ApiClient, namespace: str, group: dict, lanes: list[dict], services: list[str]) -> None:
    """Create the namespaces, Services, lanes and the group."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ensure_namespace(core, namespace)
    ensure_namespace(core, "istio-system")
    for service in services:
        core.create_namespaced_service(
            namespace, {"metadata": {"name": service}, "spec": {"selector": {"app": service}, "ports": [{"port": 8000}]}}
        )
    for lane in lanes:
        custom.create_cluster_custom_object("lanes.dev", "v1alpha1", "swimlanes", lane)
    custom.create_cluster_custom_object("lanes.dev", "v1alpha1", "swimlanegroups", group)


class Routes(Latest):
    """A watch on one namespace's DestinationRules and VirtualServices, latest object by name."""

    def __init__(self, api: client.ApiClient, namespace: str):
        super().__init__("routes did not converge", timeout=30.0)
        custom = client.CustomObjectsApi(api)
        for plural in ("destinationrules", "virtualservices"):
            self.follow(lambda obj, plural=plural: (plural, obj["metadata"]["name"]),
                        custom.list_namespaced_custom_object, *ISTIO, namespace, plural)


def lane_routed(latest: dict, service: str, dr_name: str, lane: str) -> bool:
    """Whether `lane` has a subset in the service's DR and a route to it in its VS."""
    dr = latest.get(("destinationrules", dr_name))
    vs = latest.get(("virtualservices", dr_name))
    if dr is None or vs is None:
        return False
    subset = any(s["name"] == lane for s in dr["spec"].get("subsets") or [])
    route = any(
        d.get("destination", {}).get("subset") == lane
        for http in vs["spec"].get("http") or [] for d in http.get("route") or []
    )
    return subset and route


def lane_gone(latest: dict, service: str, dr_name: str, lane: str) -> bool:
    dr = latest.get(("destinationrules", dr_name))
    vs = latest.get(("virtualservices", dr_name))
    if dr is None or vs is None:
        return False
    return not any(s["name"] == lane for s in dr["spec"].get("subsets") or []) and not any(
        d.get("destination", {}).get("subset") == lane
        for http in vs["spec"].get("http") or [] for d in http.get("route") or []
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def report(what: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{what:<34} n={len(ms):<4} p50={percentile(ms, 50):7.1f} ms  p90={percentile(ms, 90):7.1f} ms  "
        f"p99={percentile(ms, 99):7.1f} ms  max={max(ms):7.1f} ms  mean={statistics.fmean(ms):7.1f} ms"
    )


def run(kubeconfig: str, trials: int) -> None:
    api = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api)
    suffix = uuid.uuid4().hex[:6]
    namespace, name = f"bench-{suffix}", f"bench-{suffix}"
    services, lanes = ["mocka", "mockb", "mockc"], [f"base-{suffix}", f"canary-{suffix}"]
    group, lane_bodies = group_bodies(name, namespace, services, lanes)
    create_group(api, namespace, group, lane_bodies, services)
    for service in services:
        make_pod(core, namespace, f"{service}-base", {"app": service, "lane": lanes[0]})
    routes = Routes(api, namespace)
    dr_name, canary = f"lanes-{name}-mockb", lanes[1]
    with operator_process(kubeconfig):
        routes.wait(lambda latest: lane_gone(latest, "mockb", dr_name, canary) and (
            ("destinationrules", dr_name) in latest), timeout=60)
        appear, vanish = [], []
        for trial in range(trials):
            pod = f"mockb-canary-{trial}"
            make_pod(core, namespace, pod, {"app": "mockb", "lane": canary}, ready=False)
            time.sleep(0.05)
            started = time.monotonic()
            set_ready(core, namespace, pod, True)
            appear.append(routes.wait(lambda latest: lane_routed(latest, "mockb", dr_name, canary)) - started)
            time.sleep(0.05)
            started = time.monotonic()
            delete_pod(core, namespace, pod)
            vanish.append(routes.wait(lambda latest: lane_gone(latest, "mockb", dr_name, canary)) - started)
    routes.stop()
    print(f"convergence over {trials} trials (operator as a separate process, local control plane)")
    report("pod Ready -> subset and route in", appear)
    report("pod deleted -> subset and route out", vanish)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--kubeconfig", help="an existing cluster; default: start a local control plane")
    args = parser.parse_args()
    with cluster(args.kubeconfig) as kubeconfig:
        run(kubeconfig, args.trials)


if __name__ == "__main__":
    main()
