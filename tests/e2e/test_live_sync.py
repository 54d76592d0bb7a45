"""The mesh sync on a real API server and a real Envoy: endpoints, route changes, watch errors.

Pods here are API objects whose status the test writes as a kubelet would, pointing at sample
service processes the test runs on loopback; so readiness is under the test's control.
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
from lanes_testbed.mesh import EnvoyMesh
from lanes_testbed.mesh.pods import free_block, start_mock
from lanes_testbed.mesh.sync import MeshSync
from lanes_testbed.meshcrds import write_manifests
from lanes_testbed.processes import free_port, stop

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
    """A control plane, an Envoy kept in sync with it, and two sample processes (v1, v2)."""

    def __init__(self, api: client.ApiClient, mesh: EnvoyMesh, sync: MeshSync, ips: dict[str, str]):
        self.api, self.mesh, self.sync, self.ips = api, mesh, sync, ips
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def ask(self) -> tuple[int, str]:
        status, body = get(self.mesh.gateway_url, "/", timeout=5)
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

    def pod(self, version: str, ready: bool) -> None:
        """Create (once) the pod of a version and write its status with the given readiness."""
        name = f"echo-{version}"
        try:
            self.core.create_namespaced_pod(NS, {
                "metadata": {"name": name, "labels": {"app": "echo", "version": version}},
                "spec": {"containers": [{"name": "app", "image": "lanes/mock-chain:1.0",
                                         "ports": [{"containerPort": 8000}]}]},
            })
        except ApiException as error:
            if error.status != 409:
                raise
        value = "True" if ready else "False"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.core.patch_namespaced_pod_status(name, NS, {"status": {
            "phase": "Running", "podIP": self.ips[version], "podIPs": [{"ip": self.ips[version]}],
            "conditions": [{"type": "Ready", "status": value, "lastTransitionTime": now}],
        }})


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
    block = free_block()
    ips = {"v1": f"{block}.1", "v2": f"{block}.2"}
    children = [start_mock(f"echo-{v}", ip, {"app": "echo", "version": v, "latency_ms": "100"}, root / "pods")
                for v, ip in ips.items()]
    try:
        with ControlPlane(root / "plane", progress=None) as plane:
            plane.install_manifests(write_manifests(root / "crds", "istio"))
            api = plane.api_client()
            client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
            client.CoreV1Api(api).create_namespaced_service(NS, {
                "metadata": {"name": "echo"},
                "spec": {"selector": {"app": "echo"}, "ports": [{"port": 8000, "name": "http"}]},
            })
            with EnvoyMesh(root / "mesh", gateway_port=free_port(), mesh_port=free_port()) as mesh:
                with MeshSync(api, mesh) as sync:
                    yield Bed(api, mesh, sync, ips)
            api.close()
    finally:
        for child in children:
            stop(child)


def test_only_ready_pods_serve_and_readiness_changes_apply_at_once(bed: Bed) -> None:
    bed.apply(GATEWAY)
    bed.apply(RULE)
    bed.apply(route_to("v1"))
    bed.pod("v1", ready=False)
    until(lambda: bed.ask()[0] == 503, "a route with no ready endpoint")
    bed.pod("v1", ready=True)
    took_ready = until(lambda: bed.ask() == (200, "v1"), "the ready v1 pod to serve")
    bed.pod("v1", ready=False)
    took_unready = until(lambda: bed.ask()[0] == 503, "the unready v1 pod to leave")
    bed.pod("v1", ready=True)
    until(lambda: bed.ask() == (200, "v1"), "v1 back")
    print(f"pod Ready -> serving {took_ready:.2f}s; not Ready -> out {took_unready:.2f}s")


def test_a_route_change_applies_without_failing_requests_in_flight(bed: Bed) -> None:
    bed.apply(GATEWAY)
    bed.apply(RULE)
    bed.apply(route_to("v1"))
    bed.pod("v1", ready=True)
    bed.pod("v2", ready=True)
    until(lambda: bed.ask() == (200, "v1"), "v1 serving")
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


def test_the_sync_lists_again_after_its_watch_breaks(bed: Bed) -> None:
    bed.apply(GATEWAY)
    bed.apply(RULE)
    bed.apply(route_to("v2"))
    bed.pod("v2", ready=True)
    until(lambda: bed.ask() == (200, "v2"), "v2 serving")
    extensions = client.ApiextensionsV1Api(bed.api)
    crd = extensions.read_custom_resource_definition("destinationrules.networking.istio.io")
    extensions.delete_custom_resource_definition(crd.metadata.name)
    until(lambda: bed.ask()[0] == 503, "the subset to go with its DestinationRule", timeout=30)
    relists = bed.sync.relists()["destinationrules"]
    body = bed.api.sanitize_for_serialization(crd)
    body["metadata"] = {"name": crd.metadata.name, "labels": crd.metadata.labels}
    body.pop("status", None)
    until(lambda: _recreate(extensions, body), "the old CRD to be gone", timeout=30)
    until(lambda: _established(extensions, crd.metadata.name), "the CRD to be established", timeout=30)
    bed.apply(RULE)
    until(lambda: bed.ask() == (200, "v2"), "the recreated DestinationRule to serve", timeout=15)
    assert bed.sync.relists()["destinationrules"] > relists
    assert bed.sync.last_error is None


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
