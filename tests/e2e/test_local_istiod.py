"""The local istiod configures per-pod sidecars with Istio's own xDS: names, routing, pushes.

Real processes only: the istiod (push mode, no API server), three mock pods each with a stock
Envoy sidecar. Requests leave from one pod's side through its sidecar's egress address.
"""

from __future__ import annotations

import functools
import http.client
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lanes_testbed.mesh.istiod import LocalIstiod, Sidecar
from lanes_testbed.mesh.workloads import gateway_objects
from lanes_testbed.mesh.pods import free_block, start_mock
from lanes_testbed.processes import Child, free_port, stop
from lanes_testbed.wasm import ensure_trace_affinity, module_sha256

HOST = "mockb.default.svc.cluster.local"


@dataclass
class MeshPod:
    name: str
    labels: dict[str, str]
    ip: str
    sidecar: Sidecar
    app: Child

    @property
    def egress(self) -> str:
        assert self.sidecar.egress is not None
        return self.sidecar.egress


@pytest.fixture(scope="module")
def istiod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIstiod]:
    with LocalIstiod(tmp_path_factory.mktemp("istiod")) as server:
        yield server


@pytest.fixture(scope="module")
def pods(istiod: LocalIstiod, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MeshPod]]:
    workdir = tmp_path_factory.mktemp("istiod-pods")
    block = free_block()
    specs = {
        "mocka-base": {"app": "mocka", "lane": "base"},
        "mockb-base": {"app": "mockb", "lane": "base"},
        "mockb-canary": {"app": "mockb", "lane": "canary"},
    }
    started: dict[str, MeshPod] = {}
    try:
        for n, (name, labels) in enumerate(specs.items(), start=1):
            ip = f"{block}.{n}"
            app = start_mock(name, ip, {"app": labels["app"], "version": "v1"}, workdir)
            sidecar = Sidecar(
                workdir, istiod.xds_address, pod=name, namespace="default", labels=labels,
                pod_ip=ip, address=f"{block}.{n + 10}", egress=f"{block}.{n + 20}", ports=[8000],
            )
            started[name] = MeshPod(name, labels, ip, sidecar, app)
            sidecar.start()
        yield started
    finally:
        for pod in started.values():
            pod.sidecar.stop()
            stop(pod.app)


def objects(pods: dict[str, MeshPod], header_lane: str, default_lane: str) -> list[dict[str, Any]]:
    services = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": "default"},
         "spec": {"selector": {"app": app},
                  "ports": [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}]}}
        for app in ("mocka", "mockb")
    ]
    entries = [
        {"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
         "metadata": {"name": pod.name, "namespace": "default"},
         "spec": {"address": pod.sidecar.address, "labels": pod.labels, "serviceAccount": "default"}}
        for pod in pods.values()
    ]
    rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "mockb", "namespace": "default"},
            "spec": {"host": "mockb", "subsets": [{"name": lane, "labels": {"lane": lane}}
                                                  for lane in ("base", "canary")]}}
    route = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "mockb", "namespace": "default"},
             "spec": {"hosts": ["mockb"], "http": [
                 {"match": [{"headers": {"x-lane": {"exact": "go"}}}],
                  "route": [{"destination": {"host": "mockb", "subset": header_lane}}]},
                 {"route": [{"destination": {"host": "mockb", "subset": default_lane}}]},
             ]}}
    ignored = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}}
    return [*services, *entries, rule, route, ignored]


def call(egress: str, headers: dict[str, str]) -> tuple[int, str]:
    connection = http.client.HTTPConnection(egress, 8000, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": "mockb", **headers})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_header_split_routes_by_istio_and_follows_a_push(
    istiod: LocalIstiod, pods: dict[str, MeshPod]
) -> None:
    version = istiod.push(objects(pods, header_lane="canary", default_lane="base"))
    for pod in pods.values():
        pod.sidecar.wait_ready()
    istiod.wait_synced(version)
    assert sorted(istiod.proxies()) == sorted(p.sidecar.node_id for p in pods.values())

    client = pods["mocka-base"]
    clusters = client.sidecar.cluster_names()
    for lane in ("base", "canary"):
        assert f"outbound|8000|{lane}|{HOST}" in clusters

    canary_ip, base_ip = pods["mockb-canary"].ip, pods["mockb-base"].ip
    status, body = call(client.egress, {"x-lane": "go"})
    assert status == 200 and f"ip: {canary_ip}" in body, body
    status, body = call(client.egress, {})
    assert status == 200 and f"ip: {base_ip}" in body, body

    changed = istiod.push(objects(pods, header_lane="base", default_lane="canary"))
    assert changed > version
    istiod.wait_synced(changed, proxies=[client.sidecar.node_id])
    status, body = call(client.egress, {})
    assert status == 200 and f"ip: {canary_ip}" in body, body
    status, body = call(client.egress, {"x-lane": "go"})
    assert status == 200 and f"ip: {base_ip}" in body, body


def test_router_serves_gateway_port_80_on_the_gateway_services_target_port(
    istiod: LocalIstiod, pods: dict[str, MeshPod], tmp_path: Path
) -> None:
    address = pods["mocka-base"].ip.rsplit(".", 1)[0] + ".30"
    target = free_port()
    gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "ingressgateway", "namespace": "istio-system"},
               "spec": {"selector": {"istio": "ingressgateway"},
                        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}
    entry = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "entry", "namespace": "default"},
             "spec": {"hosts": ["*"], "gateways": ["istio-system/ingressgateway"],
                      "http": [{"route": [{"destination": {"host": "mockb", "subset": "canary"}}]}]}}
    router = Sidecar(tmp_path, istiod.xds_address, kind="router", pod="istio-ingressgateway-0",
                     namespace="istio-system", labels={"istio": "ingressgateway"},
                     pod_ip=address, address=address)
    with router:
        version = istiod.push([*objects(pods, "canary", "base"), *gateway_objects(address, target), gateway, entry])
        istiod.wait_synced(version)
        router.wait_ready()
        connection = http.client.HTTPConnection(address, target, timeout=5)
        connection.request("GET", "/", headers={"Host": "lanes.example"})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200 and f"ip: {pods['mockb-canary'].ip}" in body, body


def wasm_plugin(url: str, sha256: str) -> dict[str, Any]:
    return {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "trace-affinity", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "mockb"}}, "url": url, "sha256": sha256,
                     "pluginName": "lanes.trace_affinity", "failStrategy": "FAIL_OPEN",
                     "pluginConfig": {}}}


def ecds_filenames(sidecar: Sidecar) -> list[str]:
    dump = json.dumps([c for c in sidecar.config_dump()["configs"] if c["@type"].endswith("EcdsConfigDump")])
    return re.findall(r'"filename": "([^"]+)"', dump)


def test_wasm_plugin_by_url_is_fetched_checked_and_served_as_a_local_file(
    istiod: LocalIstiod, pods: dict[str, MeshPod], tmp_path: Path
) -> None:
    module = ensure_trace_affinity()
    digest = module_sha256(module)
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(module, served / "traceaffinity.wasm")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as files:
        threading.Thread(target=files.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{files.server_address[1]}/traceaffinity.wasm"
        target = pods["mockb-canary"].sidecar

        version = istiod.push([*objects(pods, "canary", "base"), wasm_plugin(url, "0" * 64)])
        istiod.wait_synced(version)
        assert ecds_filenames(target) == []

        version = istiod.push([*objects(pods, "canary", "base"), wasm_plugin(url, digest)])
        # Envoy ACKs the extension config once V8 has compiled the module: seconds per proxy.
        istiod.wait_synced(version, timeout=60.0)
        files.shutdown()
    [filename] = set(ecds_filenames(target))
    assert Path(filename).read_bytes() == module.read_bytes()
    status, body = call(pods["mocka-base"].egress, {"x-lane": "go"})
    assert status == 200 and f"ip: {pods['mockb-canary'].ip}" in body, body
