"""The local istiod watching the real API server: a VirtualService applied there reaches a sidecar."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.mesh.istiod import LocalIstiod, Sidecar
from lanes_testbed.mesh.pods import free_block, start_mock
from lanes_testbed.processes import stop

GROUP, VERSION = "networking.istio.io", "v1"


@pytest.fixture
def istiod(control_plane: ControlPlane, tmp_path: Path) -> Iterator[LocalIstiod]:
    with LocalIstiod(tmp_path / "istiod", kubeconfig=control_plane.kubeconfig) as server:
        yield server


def call(egress: str, host: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(egress, 8000, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def wait_routed_to(istiod: LocalIstiod, namespace: str, lane: str, timeout: float = 10.0) -> int:
    """The config version once the istiod holds the VirtualService routing to `lane`.

    Read from Istio's own /debug/configz; the version read afterwards includes the change, as the
    istiod bumps it in the same step that writes its store.
    """
    deadline = time.monotonic() + timeout
    while True:
        held = [c for c in istiod.configs() if c["kind"] == "VirtualService" and c["metadata"]["namespace"] == namespace]
        if held and held[0]["spec"]["http"][0]["route"][0]["destination"]["subset"] == lane:
            return istiod.version()
        assert time.monotonic() < deadline, f"the istiod did not see the VirtualService to {lane}: {held}"
        time.sleep(0.02)


def route(namespace: str, lane: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VirtualService",
        "metadata": {"name": "mockb", "namespace": namespace},
        "spec": {"hosts": ["mockb"], "http": [{"route": [{"destination": {"host": "mockb", "subset": lane}}]}]},
    }


def test_virtual_service_from_the_api_server_reaches_the_sidecar(
    istiod: LocalIstiod, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core, custom = client.CoreV1Api(kube_api), client.CustomObjectsApi(kube_api)
    block = free_block()
    lanes = {"base": f"{block}.2", "canary": f"{block}.3"}
    apps, sidecars = [], []
    try:
        for n, lane in enumerate(lanes, start=2):
            apps.append(start_mock(f"mockb-{lane}", lanes[lane], {"app": "mockb", "version": "v1"}, tmp_path))
        for n, (pod, labels) in enumerate(
            [("mocka", {"app": "mocka"}), *((f"mockb-{lane}", {"app": "mockb", "lane": lane}) for lane in lanes)],
            start=1,
        ):
            sidecar = Sidecar(tmp_path, istiod.xds_address, pod=pod, namespace=namespace, labels=labels,
                              pod_ip=f"{block}.{n}", address=f"{block}.{n + 10}", egress=f"{block}.{n + 20}",
                              ports=[8000])
            sidecars.append(sidecar)
            sidecar.start()
            if pod != "mocka":
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workloadentries", {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadEntry",
                    "metadata": {"name": pod},
                    "spec": {"address": sidecar.address, "labels": labels, "serviceAccount": "default"},
                })
        core.create_namespaced_service(namespace, client.V1Service(
            metadata=client.V1ObjectMeta(name="mockb"),
            spec=client.V1ServiceSpec(selector={"app": "mockb"}, ports=[
                client.V1ServicePort(name="http", port=8000, target_port=8000)]),
        ))
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "destinationrules", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "DestinationRule", "metadata": {"name": "mockb"},
            "spec": {"host": "mockb", "subsets": [{"name": lane, "labels": {"lane": lane}} for lane in lanes]},
        })
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "virtualservices", route(namespace, "canary"))
        istiod.wait_synced(wait_routed_to(istiod, namespace, "canary"))
        egress = f"{block}.21"
        status, body = call(egress, "mockb")
        assert status == 200 and f"ip: {lanes['canary']}" in body, body

        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "virtualservices", "mockb",
                                              route(namespace, "base"))
        istiod.wait_synced(wait_routed_to(istiod, namespace, "base"), proxies=[sidecars[0].node_id])
        status, body = call(egress, "mockb")
        assert status == 200 and f"ip: {lanes['base']}" in body, body
        assert f"outbound|8000|base|mockb.{namespace}.svc.cluster.local" in sidecars[0].cluster_names()
    finally:
        for sidecar in sidecars:
            sidecar.stop()
        for app in apps:
            stop(app)
