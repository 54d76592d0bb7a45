"""The local node as its own process: stopped by SIGTERM, killed by SIGKILL, and its CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from kubernetes import client
from typer.testing import CliRunner

from lanes_testbed.cli.node import node as node_command
from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.node import LocalNode
from tests.integration.test_node import (
    SAMPLE,
    alive,
    deployment,
    eventually,
    get,
    is_ready,
    pid_of,
    ready_pods,
    serving,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def standalone(
    control_plane: ControlPlane, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m lanes_testbed.node` for this test's namespace, in its own process."""
    log_path = tmp_path / "node.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lanes_testbed.node", "--kubeconfig", str(control_plane.kubeconfig),
             "--name", f"node-{namespace}", "--namespace", namespace,
             "--log-dir", str(tmp_path / "pods")],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        client.CoreV1Api(kube_api).delete_node(f"node-{namespace}")


def read_pod(kube_api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return kube_api.sanitize_for_serialization(client.CoreV1Api(kube_api).read_namespaced_pod(name, namespace))


def test_sigterm_stops_every_process_and_marks_the_node_not_ready(
    standalone: subprocess.Popen[bytes], kube_api: client.ApiClient, namespace: str
) -> None:
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("mocka", f"{SAMPLE}:1.0", replicas=2))
    pods = ready_pods(kube_api, namespace, "mocka", 2)

    standalone.send_signal(signal.SIGTERM)

    assert standalone.wait(timeout=30) == 0
    assert not [p for p in pods if alive(pid_of(p)) or serving(p["status"]["podIP"])]
    node = client.CoreV1Api(kube_api).read_node(f"node-{namespace}")
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["False"]
    for pod in pods:
        after = read_pod(kube_api, namespace, pod["metadata"]["name"])
        assert not is_ready(after)
        assert after["status"]["containerStatuses"][0]["state"]["terminated"]


def test_a_killed_node_leaves_no_process_and_a_new_one_takes_its_pods_back(
    standalone: subprocess.Popen[bytes], control_plane: ControlPlane, kube_api: client.ApiClient,
    namespace: str, tmp_path: Path,
) -> None:
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("mocka", f"{SAMPLE}:1.0"))
    (pod,) = ready_pods(kube_api, namespace, "mocka", 1)

    standalone.send_signal(signal.SIGKILL)
    standalone.wait()
    eventually(lambda: not alive(pid_of(pod)), "the pod's process to die with its node", timeout=5)

    with LocalNode(control_plane.kubeconfig, f"node-{namespace}", namespaces=[namespace],
                   log_dir=tmp_path / "again"):
        def back() -> dict[str, Any] | None:
            now = read_pod(kube_api, namespace, pod["metadata"]["name"])
            restarted = now["status"]["containerStatuses"][0]["restartCount"] == 1
            return now if restarted and is_ready(now) else None

        again = eventually(back, "the new node to run the same pod again")
        ip = again["status"]["podIP"]
        assert ip == pod["status"]["podIP"]
        assert get(ip) == f"-> mocka(version: v1, ip: {ip})"


def test_cli_without_a_cluster_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app = typer.Typer()
    app.command()(node_command)

    result = CliRunner().invoke(app, [])

    assert result.exit_code == 1
    assert "kubectl lane dev cluster up" in result.output


def test_cli_names_the_node_when_the_cluster_refuses_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    app = typer.Typer()
    app.command()(node_command)

    result = CliRunner().invoke(app, ["--kubeconfig", str(missing), "--name", "edge"])

    assert result.exit_code == 1
    assert "error: node edge:" in result.output
