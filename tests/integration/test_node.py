"""The local node runs Deployments' pods as real processes on the real control plane.

kube-controller-manager turns each Deployment into pods; the node binds them, runs the
sample service on a loopback address per pod, and reports status. Requests go only to
127.0.0.x.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from lanes_testbed import inprocess, loopback
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.node import AddressPool, LocalNode

pytestmark = pytest.mark.integration

SAMPLE = "registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


eventually = functools.partial(inprocess.eventually, timeout=60.0, interval=0.1)


def deployment(name: str, image: str, replicas: int = 1, **env: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "default",
                        "image": image,
                        "env": [{"name": k, "value": v} for k, v in {"app": name, **env}.items()],
                        "ports": [{"containerPort": 8000}],
                    }],
                },
            },
        },
    }


def pods_of(kube_api: client.ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    listing = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    return [kube_api.sanitize_for_serialization(p) for p in listing.items]


def ready_pods(kube_api: client.ApiClient, namespace: str, app: str, count: int) -> list[dict[str, Any]]:
    """Exactly `count` pods of `app`, all Ready and none terminating."""

    def probe() -> list[dict[str, Any]] | None:
        pods = pods_of(kube_api, namespace, app)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return live if len(pods) == count and all(is_ready(p) for p in live) else None

    return eventually(probe, f"{count} ready pod(s) of {app}")


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def pid_of(pod: dict[str, Any]) -> int:
    return int(pod["status"]["containerStatuses"][0]["containerID"].rsplit("/", 1)[-1])


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def serving(ip: str, port: int = 8000) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def get(ip: str, port: int = 8000, path: str = "/mock") -> str:
    assert ipaddress.ip_address(ip).is_loopback
    with _DIRECT.open(f"http://{ip}:{port}{path}", timeout=10) as response:
        return response.read().decode()


@pytest.fixture
def node_addresses() -> Iterator[AddressPool]:
    """127.0.0.10-250, which no node takes unless told to, held for the test."""
    block = loopback.take_block("127.0.0", wait=True)
    assert block is not None, "another caller in this process holds 127.0.0"
    try:
        yield AddressPool.in_block(block)
    finally:
        loopback.give_back(block)


@pytest.fixture
def node(control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str,
         node_addresses: AddressPool, tmp_path: Path) -> Iterator[LocalNode]:
    """A local node for this test's namespace; afterwards none of its processes may live."""
    local = LocalNode(control_plane.kubeconfig, f"node-{namespace}", namespaces=[namespace],
                      addresses=node_addresses, log_dir=tmp_path / "pods", heartbeat_s=1.0)
    pids: set[int] = set()

    def remember() -> None:
        while not stop.is_set():
            pids.update(pid for pod in local.running().values() for pid in pod.pids)
            time.sleep(0.05)

    stop = threading.Event()
    watcher = threading.Thread(target=remember, daemon=True)
    with local:
        watcher.start()
        yield local
        stop.set()
        watcher.join()
    assert not [pid for pid in pids if alive(pid)], "processes outlived the node"
    client.CoreV1Api(kube_api).delete_node(local.name)


def test_deployment_pods_run_ready_on_distinct_loopback_addresses(
    node: LocalNode, kube_api: client.ApiClient, namespace: str
) -> None:
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("mocka", f"{SAMPLE}:1.0", replicas=2, version="v1"))
    pods = ready_pods(kube_api, namespace, "mocka", 2)

    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 2
    for pod, ip in zip(pods, ips):
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/24")
        assert 10 <= int(ip.rsplit(".", 1)[1]) <= 250
        assert pod["spec"]["nodeName"] == node.name
        status = pod["status"]
        assert status["phase"] == "Running"
        assert status["podIPs"] == [{"ip": ip}]
        assert status["hostIP"] == "127.0.0.1"
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert {k: conditions.get(k) for k in ("PodScheduled", "Initialized", "ContainersReady", "Ready")} \
            == dict.fromkeys(("PodScheduled", "Initialized", "ContainersReady", "Ready"), "True")
        (container,) = status["containerStatuses"]
        assert container["ready"] and container["started"] and container["restartCount"] == 0
        assert container["state"]["running"]["startedAt"]
        assert container["image"] == f"{SAMPLE}:1.0"
        assert container["imageID"].startswith(f"{SAMPLE}@sha256:")
        assert get(ip) == f"-> mocka(version: v1, ip: {ip})"


def test_image_tag_decides_the_reported_version(
    node: LocalNode, kube_api: client.ApiClient, namespace: str
) -> None:
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("mockb", f"{SAMPLE}:2.0", version="v1"))
    (pod,) = ready_pods(kube_api, namespace, "mockb", 1)
    ip = pod["status"]["podIP"]

    assert get(ip) == f"-> mockb(version: v2, ip: {ip})"


def test_scaling_down_stops_the_process_and_frees_its_address(
    node: LocalNode, kube_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment(namespace, deployment("mockc", f"{SAMPLE}:1.0", replicas=2))
    before = {p["metadata"]["uid"]: p for p in ready_pods(kube_api, namespace, "mockc", 2)}

    apps.patch_namespaced_deployment_scale("mockc", namespace, {"spec": {"replicas": 1}})
    (kept,) = ready_pods(kube_api, namespace, "mockc", 1)

    (removed,) = [p for uid, p in before.items() if uid != kept["metadata"]["uid"]]
    ip = removed["status"]["podIP"]
    assert not alive(pid_of(removed))
    assert not serving(ip)
    assert ip not in node.addresses.taken
    assert kept["status"]["podIP"] in node.addresses.taken
    assert [p.name for p in node.running().values()] == [kept["metadata"]["name"]]


def test_unknown_image_is_reported_on_the_pod_and_runs_nothing(
    node: LocalNode, kube_api: client.ApiClient, namespace: str
) -> None:
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("web", "docker.io/library/nginx:1.27"))

    def waiting() -> dict[str, Any] | None:
        pods = pods_of(kube_api, namespace, "web")
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        return pods[0] if statuses and statuses[0]["state"].get("waiting") else None

    pod = eventually(waiting, "the pod to report its image as unknown")
    status = pod["status"]
    state = status["containerStatuses"][0]["state"]["waiting"]
    assert state["reason"] == "ErrImagePull"
    assert "nginx:1.27" in state["message"] and "go-http-sample" in state["message"]
    assert status["phase"] == "Pending"
    assert not is_ready(pod)
    assert "podIP" not in status
    assert node.running() == {}


def test_deleting_the_deployment_leaves_no_process_behind(
    node: LocalNode, kube_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment(namespace, deployment("mocka", f"{SAMPLE}:1.0", replicas=2))
    pods = ready_pods(kube_api, namespace, "mocka", 2)

    apps.delete_namespaced_deployment("mocka", namespace, propagation_policy="Foreground")
    eventually(lambda: not pods_of(kube_api, namespace, "mocka"), "the pods to be deleted")

    assert not [p for p in pods if alive(pid_of(p)) or serving(p["status"]["podIP"])]
    assert node.running() == {}
    assert not node.addresses.taken


def test_a_crashed_process_is_restarted(
    node: LocalNode, kube_api: client.ApiClient, namespace: str
) -> None:
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("mocka", f"{SAMPLE}:1.0"))
    (pod,) = ready_pods(kube_api, namespace, "mocka", 1)
    first = pid_of(pod)

    os.kill(first, signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        (now,) = pods_of(kube_api, namespace, "mocka")
        container = now["status"]["containerStatuses"][0]
        return now if container["restartCount"] == 1 and is_ready(now) else None

    pod = eventually(restarted, "the container to restart and be ready again")
    container = pod["status"]["containerStatuses"][0]
    assert container["lastState"]["terminated"]["exitCode"] == 137
    assert pid_of(pod) != first and alive(pid_of(pod))
    ip = pod["status"]["podIP"]
    assert get(ip) == f"-> mocka(version: v1, ip: {ip})"

