"""The local node as kube-controller-manager and the pods' programs see it.

Registration and heartbeat, readiness probes, restart policies, env and proxy handed to
the processes, and which pending pods it takes.
"""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.mesh import LocalMesh
from lanes_testbed.mesh.workloads import workload_entry
from lanes_testbed.node import LocalNode
from tests.integration.test_node import (
    SAMPLE,
    alive,
    deployment,
    eventually,
    get,
    is_ready,
    node,  # noqa: F401 (fixture)
    node_addresses,  # noqa: F401 (fixture)
    pid_of,
    ready_pods,
)

pytestmark = pytest.mark.integration


def bare_pod(name: str, image: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "default", "image": image, "ports": [{"containerPort": 8000}],
                 **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 5, **spec}}


def read_pod(kube_api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    pod = client.CoreV1Api(kube_api).read_namespaced_pod(name, namespace)
    return kube_api.sanitize_for_serialization(pod)


def once_ready(kube_api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod = read_pod(kube_api, namespace, name)
        return pod if is_ready(pod) else None

    return eventually(probe, f"pod {name} to be ready")


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def node_ready(kube_api: client.ApiClient, name: str) -> dict[str, Any] | None:
    found = kube_api.sanitize_for_serialization(client.CoreV1Api(kube_api).read_node(name))
    ready = [c for c in found["status"]["conditions"] if c["type"] == "Ready"]
    return found if ready and ready[0]["status"] == "True" else None


def test_node_is_registered_ready_and_renews_its_lease(
    node: LocalNode, kube_api: client.ApiClient  # noqa: F811
) -> None:
    registered = node_ready(kube_api, node.name)
    assert registered is not None
    assert registered["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
    assert registered["metadata"]["labels"]["lanes.dev/local-node"] == "true"
    # The NodeTaint admission plugin taints every new Node not-ready; the node lifecycle
    # controller lifts it once it sees the node Ready.
    eventually(lambda: not read_node(kube_api, node.name)["spec"].get("taints"),
               "kube-controller-manager to lift the not-ready taint")

    leases = client.CoordinationV1Api(kube_api)
    first = leases.read_namespaced_lease(node.name, "kube-node-lease").spec.renew_time
    eventually(lambda: leases.read_namespaced_lease(node.name, "kube-node-lease").spec.renew_time > first,
               "the lease to be renewed", timeout=10)


def read_node(kube_api: client.ApiClient, name: str) -> dict[str, Any]:
    return kube_api.sanitize_for_serialization(client.CoreV1Api(kube_api).read_node(name))


def test_node_stays_ready_past_the_node_monitor_grace_period(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """kube-controller-manager 1.35 marks a node Unknown after 50 s without a heartbeat."""
    name = f"node-{namespace}"
    with LocalNode(control_plane.kubeconfig, name, namespaces=[namespace], log_dir=tmp_path):
        client.AppsV1Api(kube_api).create_namespaced_deployment(
            namespace, deployment("mocka", f"{SAMPLE}:1.0"))
        (pod,) = ready_pods(kube_api, namespace, "mocka", 1)
        time.sleep(60)
        assert node_ready(kube_api, name)
        assert not read_node(kube_api, name)["spec"].get("taints")
        assert is_ready(read_pod(kube_api, namespace, pod["metadata"]["name"]))
    stopped = read_node(kube_api, name)
    assert [c["status"] for c in stopped["status"]["conditions"] if c["type"] == "Ready"] == ["False"]
    assert not alive(pid_of(pod))
    client.CoreV1Api(kube_api).delete_node(name)


def test_readiness_probe_decides_ready(
    node: LocalNode, kube_api: client.ApiClient, namespace: str  # noqa: F811
) -> None:
    core = client.CoreV1Api(kube_api)
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
    wrong = {"tcpSocket": {"port": 9}, "periodSeconds": 1}
    for name, readiness in (("good", probe), ("bad", wrong)):
        core.create_namespaced_pod(namespace, bare_pod(name, f"{SAMPLE}:1.0", container={
            "readinessProbe": readiness, "ports": [{"name": "http", "containerPort": 8000}]}))

    once_ready(kube_api, namespace, "good")
    time.sleep(2)
    bad = read_pod(kube_api, namespace, "bad")
    assert bad["status"]["phase"] == "Running" and not is_ready(bad)
    assert bad["status"]["containerStatuses"][0]["started"]
    assert get(bad["status"]["podIP"]).startswith("-> mock(version: v1")


def test_restart_policy_never_leaves_a_killed_pod_failed(
    node: LocalNode, kube_api: client.ApiClient, namespace: str  # noqa: F811
) -> None:
    client.CoreV1Api(kube_api).create_namespaced_pod(
        namespace, bare_pod("once", f"{SAMPLE}:1.0", restartPolicy="Never"))
    pod = once_ready(kube_api, namespace, "once")

    os.kill(pid_of(pod), signal.SIGKILL)

    def failed_pod() -> dict[str, Any] | None:
        pod = read_pod(kube_api, namespace, "once")
        return pod if pod["status"]["phase"] == "Failed" else None

    failed = eventually(failed_pod, "the pod to fail")
    container = failed["status"]["containerStatuses"][0]
    assert container["restartCount"] == 0
    assert container["state"]["terminated"]["exitCode"] == 137
    assert node.running() == {}


def test_processes_get_the_pod_env_the_tag_version_and_a_sidecar_in_the_mesh(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://developer-proxy.invalid:3128")
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "sec"}, "stringData": {"token": "s3"}})
    seen: list[tuple[str, str | None]] = []
    upstream = _answering_upstream(seen)
    # mockb: a Service whose one endpoint is the stand-in, so the pod's call goes through its sidecar.
    core.create_namespaced_service(namespace, {"metadata": {"name": "mockb"}, "spec": {
        "selector": {"app": "mockb-standin"},
        "ports": [{"name": "http", "port": 8000, "targetPort": upstream.server_address[1]}]}})
    objects = client.CustomObjectsApi(kube_api)
    objects.create_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "workloadentries",
        workload_entry("mockb-standin", namespace, {"app": "mockb-standin"}, "127.0.0.1"))
    env = [
        {"name": "version", "value": "v1"},
        {"name": "app", "value": "mocka"},
        {"name": "upstream_url", "value": "http://mockb:8000/"},
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        {"name": "BOTH", "value": "$(GREETING)-$(MY_NAME)-$$(MY_NAME)"},
    ]
    pod = bare_pod("envy", f"{SAMPLE}:2.0", container={"env": env, "envFrom": [
        {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]})
    with LocalMesh(tmp_path / "mesh", kubeconfig=control_plane.kubeconfig, api=kube_api) as mesh, \
            LocalNode(control_plane.kubeconfig, f"node-{namespace}", mesh.xds_address,
                      namespaces=[namespace], log_dir=tmp_path):
        core.create_namespaced_pod(namespace, pod)
        running = once_ready(kube_api, namespace, "envy")
        ip = running["status"]["podIP"]
        got = environ(pid_of(running))
        answer = eventually(lambda: _answered(ip), "the pod's call to reach mockb through its sidecar")
        entry = objects.get_namespaced_custom_object(
            "networking.istio.io", "v1", namespace, "workloadentries", "envy")
    upstream.shutdown()
    core.delete_node(f"node-{namespace}")

    assert {k: got.get(k) for k in ("MY_NAME", "MY_NAMESPACE", "MY_IP", "MY_APP", "GREETING", "TOKEN",
                                     "BOTH", "CFG_greeting", "POD_IP", "PORT", "version", "HOSTNAME")} == {
        "MY_NAME": "envy", "MY_NAMESPACE": namespace, "MY_IP": ip, "MY_APP": "envy",
        "GREETING": "hi", "TOKEN": "s3", "BOTH": "hi-envy-$(MY_NAME)", "CFG_greeting": "hi",
        "POD_IP": ip, "PORT": "8000", "version": "v2", "HOSTNAME": "envy",
    }
    assert "HTTP_PROXY" not in got and "http_proxy" not in got  # the developer's stays out
    egress = got["OUTBOUND_ADDRESS"]
    assert egress.startswith("127.") and egress != ip
    assert answer == f"-> mocka(version: v2, ip: {ip})-> answered"
    assert seen[-1] == ("/", "mockb:8000")
    assert (entry["metadata"]["name"], entry["spec"]["labels"]["app"]) == ("envy", "envy")
    assert entry["spec"]["address"] not in (ip, egress)


def _answered(ip: str) -> str | None:
    """The pod's answer once its call to mockb got through (a 502 until its sidecar has routes)."""
    try:
        found = get(ip)
    except urllib.error.HTTPError:
        return None
    return found if found.endswith("-> answered") else None


def _answering_upstream(seen: list[tuple[str, str | None]]) -> http.server.ThreadingHTTPServer:
    """mockb's stand-in on 127.0.0.1, recording what it was asked for."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, self.headers.get("Host")))
            body = b"-> answered"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_only_pending_pods_matching_the_selector_are_bound(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    name = f"node-{namespace}"
    with LocalNode(control_plane.kubeconfig, name, namespaces=[namespace],
                   label_selector="lanes.dev/run=local", log_dir=tmp_path) as local:
        assert not local.wants({"metadata": {"namespace": "elsewhere"}})
        taken, left = bare_pod("taken", f"{SAMPLE}:1.0"), bare_pod("left", f"{SAMPLE}:1.0")
        taken["metadata"]["labels"]["lanes.dev/run"] = "local"
        core.create_namespaced_pod(namespace, taken)
        core.create_namespaced_pod(namespace, left)
        once_ready(kube_api, namespace, "taken")
        assert not read_pod(kube_api, namespace, "left")["spec"].get("nodeName")
    assert LocalNode(control_plane.kubeconfig).wants({"metadata": {"namespace": "default"}})
    assert not LocalNode(control_plane.kubeconfig).wants({"metadata": {"namespace": "kube-system"}})
    core.delete_node(name)


def test_changing_a_pods_image_in_place_recreates_its_container(
    node: LocalNode, kube_api: client.ApiClient, namespace: str  # noqa: F811
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, bare_pod("inplace", f"{SAMPLE}:1.0"))
    before = once_ready(kube_api, namespace, "inplace")

    core.patch_namespaced_pod("inplace", namespace, {"spec": {"containers": [
        {"name": "default", "image": f"{SAMPLE}:2.0"}]}})

    def recreated() -> dict[str, Any] | None:
        pod = read_pod(kube_api, namespace, "inplace")
        container = pod["status"]["containerStatuses"][0]
        return pod if container["image"].endswith(":2.0") and is_ready(pod) else None

    after = eventually(recreated, "the container to run the new image")
    ip = after["status"]["podIP"]
    assert ip == before["status"]["podIP"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 1
    assert not alive(pid_of(before))
    assert get(ip) == f"-> mock(version: v2, ip: {ip})"
