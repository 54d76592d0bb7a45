"""The rollout's own progress deadline on the real API server: canary pods that never become
ready roll the release back by themselves (reason ProgressDeadlineExceeded), the base back on
its stable pods, never restarted; without the field the release is left Failed and held."""

from __future__ import annotations

import uuid

import pytest

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
NAME = "rollouts-mocka"


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"deadline-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def cluster(operator, kube_api, namespace):
    made = Cluster(kube_api, namespace)
    yield made
    made.delete_rollouts()


def base_pods(cluster: Cluster) -> set[str]:
    return {p["metadata"]["uid"] for p in cluster.pods({"app": "mocka"})
            if "lanes.dev/canary" not in p["metadata"]["labels"]}


def started(cluster: Cluster, kube_api, deadline: int | None, base_deadline: int = 600) -> set[str]:
    """mocka's base Healthy with ready pods; then v2 applied with no pod ever made ready again,
    as when the new image cannot start. Returns the base's pods."""
    body = workload_rollout(NAME, "mocka-v1", [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}])
    if deadline is not None:
        body["spec"]["progressDeadlineSeconds"] = deadline
    base = deployment("mocka-v1", "mocka", V1, replicas=2)
    base["spec"]["progressDeadlineSeconds"] = base_deadline
    with PodReadier(kube_api, cluster.namespace):
        cluster.create_deployment(base)
        cluster.create_rollout(body)
        cluster.wait_phase(NAME, "Healthy")
        cluster.until(lambda: cluster.deployment("mocka-v1")["status"].get("availableReplicas") == 2,
                      "the base's pods ready")
    pods = base_pods(cluster)
    cluster.set_image("mocka-v1", V2)
    cluster.until(lambda: cluster.deployment("mocka-v1-canary"), "the canary Deployment")
    return pods


def test_canary_pods_not_ready_within_the_deadline_roll_the_release_back(
    cluster: Cluster, kube_api
) -> None:
    pods = started(cluster, kube_api, deadline=4)
    cluster.until(lambda: cluster.status(NAME).get("failedRevision"), "rolled back past the deadline")
    status = cluster.wait_phase(NAME, "Healthy")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Succeeded"] == ("False", "ProgressDeadlineExceeded"), status
    failed = status["failedRevision"]
    assert failed["reason"] == "ProgressDeadlineExceeded"
    assert "0/1 canary pod(s) available after 4s" in failed["message"], failed
    assert "not available within the progress deadline" in status["message"]
    cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary gone")
    base = cluster.deployment("mocka-v1")
    assert image_of(base) == V1 and not base["spec"].get("paused")
    assert base_pods(cluster) == pods, "the base was never restarted"
    events = cluster.rollouts.events_of(cluster.namespace, NAME)
    [warning] = [e for e in events if e["reason"] == "ProgressDeadlineExceeded"]
    assert warning["type"] == "Warning"
    assert f"progressDeadlineSeconds of workloadrollout/{NAME}" in warning["message"]


def test_without_the_field_the_release_is_left_failed_and_held(cluster: Cluster, kube_api) -> None:
    pods = started(cluster, kube_api, deadline=None, base_deadline=4)
    status = cluster.wait_phase(NAME, "Failed")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Succeeded"] == ("False", "ProgressDeadlineExceeded"), status
    assert "failedRevision" not in status
    assert cluster.deployment("mocka-v1-canary") is not None
    base = cluster.deployment("mocka-v1")
    assert image_of(base) == V2 and base["spec"]["paused"] is True
    assert base_pods(cluster) == pods
