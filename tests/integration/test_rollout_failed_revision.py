"""A revision that failed stays failed on the real API server: the same template applied again
and again (as Argo CD's or Flux's self-heal does) starts no canary and gets no template written
back; the base keeps its stable pods; `kubectl lane retry` starts the release again."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from lanes.cli.main import app
from lanes_testbed.processes import free_port

from .rollout_support import (
    IMAGE,
    Cluster,
    Operator,
    PodReadier,
    deployment,
    image_of,
    wait_for_webhook,
    workload_rollout,
)

pytestmark = pytest.mark.integration

V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"
APPLIES = 6


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"failed-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def cluster(operator, kube_api, namespace):
    made = Cluster(kube_api, namespace)
    with PodReadier(kube_api, namespace):
        yield made
        made.delete_rollouts()


def base_pods(cluster: Cluster) -> set[str]:
    return {p["metadata"]["uid"] for p in cluster.pods({"app": "mocka"})
            if "lanes.dev/canary" not in p["metadata"]["labels"]}


def apply_template(cluster: Cluster, image: str) -> None:
    """What a GitOps tool's self-heal sends: the template as git holds it."""
    template = deployment("mocka-v1", "mocka", image)["spec"]["template"]
    cluster.apps.patch_namespaced_deployment(
        "mocka-v1", cluster.namespace, {"spec": {"template": template}}, field_manager="gitops")


class _Rollback(BaseHTTPRequestHandler):
    """A `rollback` webhook that asks to roll back while `stop` is set, as a failing check
    would: the release's analysis then rolls it back by itself."""

    stop = True

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200 if _Rollback.stop else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rollback_hook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Rollback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Rollback.stop = True
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def analysed_rollout(hook: str) -> dict:
    body = workload_rollout("rollouts-mocka", "mocka-v1")
    body["spec"]["strategy"]["canary"]["analysis"] = {
        "interval": "1s", "threshold": 1,
        "webhooks": [{"name": "stop", "type": "rollback", "url": hook, "timeout": "2s"}]}
    return body


def test_a_failed_revision_applied_again_starts_nothing_until_retried(
    control_plane, operator, cluster, rollback_hook
) -> None:
    cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=2))
    cluster.create_rollout(analysed_rollout(rollback_hook))
    cluster.wait_phase("rollouts-mocka", "Healthy")
    cluster.until(lambda: len(base_pods(cluster)) == 2, "the base's pods")
    pods = base_pods(cluster)

    apply_template(cluster, V2)
    cluster.until(lambda: cluster.status("rollouts-mocka").get("failedRevision"),
                  "the release rolled back by its rollback webhook")
    status = cluster.wait_phase("rollouts-mocka", "Healthy")
    failed = status["failedRevision"]
    assert failed["revision"] == status["canaryStatus"]["canaryRevision"]
    assert failed["reason"] == "RolledBackByWebhook" and failed["time"]
    cluster.until(lambda: image_of(cluster.deployment("mocka-v1")) == V1, "the stable template back")
    cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary gone")

    apply_template(cluster, V2)
    applied = cluster.deployment("mocka-v1")
    generation = applied["metadata"]["generation"]
    canaries = 0
    for _ in range(APPLIES):
        apply_template(cluster, V2)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            canaries += cluster.deployment("mocka-v1-canary") is not None
            base = cluster.deployment("mocka-v1")
            assert image_of(base) == V2 and base["metadata"]["generation"] == generation, (
                "nothing but the re-apply wrote the base's spec")
            time.sleep(0.1)
    assert canaries == 0
    status = cluster.status("rollouts-mocka")
    assert status["phase"] == "Healthy" and status["failedRevision"] == failed
    assert "kubectl lane retry rollout/rollouts-mocka" in status["message"]
    base = cluster.deployment("mocka-v1")
    assert base["spec"]["paused"] is True
    assert base_pods(cluster) == pods, "the base keeps serving the stable revision"
    events = [e["reason"] for e in cluster.rollouts.events_of(cluster.namespace, "rollouts-mocka")]
    assert events.count("FailedRevisionHeld") == 1

    _Rollback.stop = False
    result = CliRunner().invoke(
        app, ["retry", "rollout/rollouts-mocka", "-n", cluster.namespace,
              "--kubeconfig", str(control_plane.kubeconfig)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"revision {failed['revision']} is released again" in result.output
    status = cluster.until(lambda: (lambda s: s if s.get("phase") in ("Progressing", "Paused")
                                    else None)(cluster.status("rollouts-mocka")),
                           "the release started again")
    assert "failedRevision" not in status
    cluster.until(lambda: cluster.deployment("mocka-v1-canary") is not None, "the canary again")
    assert image_of(cluster.deployment("mocka-v1-canary")) == V2
    assert base_pods(cluster) == pods


def test_retry_is_refused_when_nothing_failed(control_plane, operator, cluster) -> None:
    cluster.create_deployment(deployment("mocka-v1", "mocka", V1))
    cluster.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1"))
    cluster.wait_phase("rollouts-mocka", "Healthy")
    result = CliRunner().invoke(
        app, ["retry", "rollout/rollouts-mocka", "-n", cluster.namespace,
              "--kubeconfig", str(control_plane.kubeconfig)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "workloadrollout/rollouts-mocka has no failed revision to retry" in result.output


def test_a_persons_undo_fails_nothing_and_the_same_template_is_released_again(
    operator, cluster
) -> None:
    cluster.create_deployment(deployment("mocka-v1", "mocka", V1))
    cluster.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1"))
    cluster.wait_phase("rollouts-mocka", "Healthy")
    apply_template(cluster, V2)
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    cluster.request("rollouts-mocka", {"lanes.dev/undo": "now"})
    status = cluster.wait_phase("rollouts-mocka", "Healthy")
    assert "failedRevision" not in status
    cluster.until(lambda: image_of(cluster.deployment("mocka-v1")) == V1, "the stable template back")
    apply_template(cluster, V2)
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
