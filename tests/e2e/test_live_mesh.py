"""The local mesh on a real API server: the local istiod watching it, the local node giving each
pod a sidecar and a WorkloadEntry while Ready, route changes, pods leaving, watch errors.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.mesh import LocalMesh
from lanes_testbed.meshcrds import write_manifests
from lanes_testbed.node import LocalNode
from lanes_testbed.processes import free_port

from .chain import HOP, get

NS = "sync"
ISTIO = ("networking.istio.io", "v1")
GATEWAY = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
           "metadata": {"name": "gw", "namespace": NS},
           "spec": {"selector": {"istio": "ingressgateway"},
                    "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}
RULE = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "echo", "namespace": NS},
        "spec": {"host": "echo", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                             {"name": "v2", "labels": {"version": "v2"}}]}}


def route_to(subset: str) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "echo", "namespace": NS},
            "spec": {"hosts": ["*"], "gateways": ["gw"],
                     "http": [{"route": [{"destination": {"host": "echo", "subset": subset}}]}]}}


class Bed:
    """A control plane, the local mesh watching it, and the local node running the pods."""

    def __init__(self, api: client.ApiClient, mesh: LocalMesh, node: LocalNode):
        self.api, self.mesh, self.node = api, mesh, node
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def ask(self) -> tuple[int, str]:
        """One request through the gateway; (0, why) until the gateway listens (a Gateway was
        just applied)."""
        try:
            status, body = get(self.mesh.gateway_url, "/", timeout=5)
        except OSError as error:
            return 0, str(error)
        hops = HOP.findall(body)
        return status, hops[0][1] if status == 200 and hops else body.strip()

    def apply(self, obj: dict) -> None:
        group, version = ISTIO
        plural = obj["kind"].lower() + "s"
        try:
            self.custom.create_namespaced_custom_object(group, version, NS, plural, obj)
        except ApiException as error:
            if error.status != 409:
                raise
            live = self.custom.get_namespaced_custom_object(group, version, NS, plural, obj["metadata"]["name"])
            body = copy.deepcopy(obj)
            body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            self.custom.replace_namespaced_custom_object(group, version, NS, plural, obj["metadata"]["name"], body)

    def pod(self, version: str) -> None:
        """Create the pod of a version unless it runs; the node runs it with its sidecar."""
        name = f"echo-{version}"
        deadline = time.monotonic() + 30
        while True:
            try:
                self.core.create_namespaced_pod(NS, {
                    "metadata": {"name": name, "labels": {"app": "echo", "version": version}},
                    "spec": {"containers": [{"name": "app", "image": f"lanes/mock-chain:{version[1:]}.0",
                                             "env": [{"name": "latency_ms", "value": "100"}],
                                             "ports": [{"containerPort": 8000}]}]},
                })
                return
            except ApiException as error:
                if error.status != 409:
                    raise
            if self.core.read_namespaced_pod(name, NS).metadata.deletion_timestamp is None:
                return
            assert time.monotonic() < deadline, f"{name} is still being deleted"
            time.sleep(0.2)

    def delete(self, version: str) -> None:
        self.core.delete_namespaced_pod(f"echo-{version}", NS)

    def entries(self) -> set[str]:
        group, version = ISTIO
        found = self.custom.list_namespaced_custom_object(group, version, NS, "workloadentries")
        return {e["metadata"]["name"] for e in found["items"]}


def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> float:
    """Seconds until `check` holds; fails after `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    root = tmp_path_factory.mktemp("sync")
    with ControlPlane(root / "plane", progress=None) as plane:
        plane.install_manifests(write_manifests(root / "crds", "istio"))
        api = plane.api_client()
        core = client.CoreV1Api(api)
        for namespace in (NS, "istio-system"):
            core.create_namespace({"metadata": {"name": namespace}})
        core.create_namespaced_service(NS, {
            "metadata": {"name": "echo"},
            "spec": {"selector": {"app": "echo"}, "ports": [{"port": 8000, "name": "http"}]},
        })
        with LocalMesh(root / "mesh", kubeconfig=plane.kubeconfig, gateway_port=free_port(),
                       api=api) as mesh:
            with LocalNode(plane.kubeconfig, "sync-node", mesh.xds_address, namespaces=[NS],
                           log_dir=root / "pods") as node:
                yield Bed(api, mesh, node)
        api.close()


def test_a_pod_serves_once_ready_and_leaves_before_it_stops(bed: Bed) -> None:
    bed.apply(GATEWAY)
    bed.apply(RULE)
    bed.apply(route_to("v1"))
    until(lambda: bed.ask()[0] == 503, "a route with no pod", timeout=30)
    bed.pod("v1")
    took_ready = until(lambda: bed.ask() == (200, "v1"), "the v1 pod to serve", timeout=60)
    assert "echo-v1" in bed.entries()
    answers: list[tuple[int, str]] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            answers.append(bed.ask())

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.3)
        bed.delete("v1")
        took_gone = until(lambda: answers and answers[-1][0] == 503, "the deleted pod to leave",
                          timeout=30)
    finally:
        done.set()
        worker.join()
    served = [a for a in answers if a[0] == 200]
    assert served and all(a == (200, "v1") for a in served)
    # Once it left, only "no healthy upstream": no request reached a stopped pod.
    assert all(a[0] in (200, 503) for a in answers), [a for a in answers if a[0] not in (200, 503)][:5]
    until(lambda: "echo-v1" not in bed.entries(), "its WorkloadEntry to go", timeout=30)
    print(f"pod created -> serving {took_ready:.2f}s; deleted -> out {took_gone:.2f}s")


def test_a_route_change_applies_without_failing_requests_in_flight(bed: Bed) -> None:
    bed.apply(GATEWAY)
    bed.apply(RULE)
    bed.apply(route_to("v1"))
    bed.pod("v1")
    bed.pod("v2")
    until(lambda: bed.entries() >= {"echo-v1", "echo-v2"}, "both pods ready", timeout=60)
    until(lambda: bed.ask() == (200, "v1"), "v1 serving", timeout=30)
    answers: list[tuple[int, str]] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set() and len(answers) < 2000:
            answers.append(bed.ask())

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.3)
        bed.apply(route_to("v2"))
        took = until(lambda: answers[-1] == (200, "v2"), "the route change")
        time.sleep(0.3)
        bed.apply(route_to("v1"))
        until(lambda: answers[-1] == (200, "v1"), "the route change back")
        time.sleep(0.3)
    finally:
        done.set()
        for worker in workers:
            worker.join()
    failed = [a for a in answers if a[0] != 200]
    assert not failed, failed[:5]
    assert {version for _, version in answers} == {"v1", "v2"}
    print(f"route change in force after {took:.2f}s; {len(answers)} requests, none failed")


def test_the_istiod_lists_again_after_its_watch_breaks(bed: Bed) -> None:
    bed.apply(GATEWAY)
    bed.apply(RULE)
    bed.apply(route_to("v2"))
    bed.pod("v2")
    until(lambda: bed.ask() == (200, "v2"), "v2 serving", timeout=60)
    extensions = client.ApiextensionsV1Api(bed.api)
    crd = extensions.read_custom_resource_definition("destinationrules.networking.istio.io")
    extensions.delete_custom_resource_definition(crd.metadata.name)
    until(lambda: bed.ask()[0] == 503, "the subset to go with its DestinationRule", timeout=30)
    body = bed.api.sanitize_for_serialization(crd)
    body["metadata"] = {"name": crd.metadata.name, "labels": crd.metadata.labels}
    body.pop("status", None)
    until(lambda: _recreate(extensions, body), "the old CRD to be gone", timeout=30)
    until(lambda: _established(extensions, crd.metadata.name), "the CRD to be established", timeout=30)
    bed.apply(RULE)
    until(lambda: bed.ask() == (200, "v2"), "the recreated DestinationRule to serve", timeout=30)


def _recreate(extensions: client.ApiextensionsV1Api, body: dict) -> bool:
    try:
        extensions.create_custom_resource_definition(body)
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    status = extensions.read_custom_resource_definition(name).status
    return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])
