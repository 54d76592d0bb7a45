"""`kubectl lane promote --full|abort|restart rollout/NAME` carried out by the operator on the
real API server: the verb writes its request, the operator acts on it."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from lanes.cli.main import app

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
STEPS = [{"replicas": 1}, {"replicas": 2}, {"replicas": "100%"}]


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"verbs-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def cluster(operator, kube_api, namespace):
    made = Cluster(kube_api, namespace)
    with PodReadier(kube_api, namespace):
        yield made
        made.delete_rollouts()


def lane(control_plane, namespace: str, *args: str):
    return CliRunner().invoke(
        app, [*args, "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)],
        env={"COLUMNS": "200"},
    )


def at_step_1(cluster: Cluster) -> None:
    cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=2))
    cluster.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1", STEPS))
    cluster.wait_phase("rollouts-mocka", "Healthy")
    cluster.set_image("mocka-v1", V2)
    status = cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    assert status["canaryStatus"]["currentStepIndex"] == 1


def reasons(cluster: Cluster) -> set[str]:
    return {e["reason"] for e in cluster.rollouts.events_of(cluster.namespace, "rollouts-mocka")}


def test_promote_full_skips_the_remaining_steps(control_plane, cluster, namespace) -> None:
    at_step_1(cluster)
    result = lane(control_plane, namespace, "promote", "--full", "rollout/rollouts-mocka")
    assert result.exit_code == 0, result.output
    assert "full promotion requested" in result.output
    status = cluster.wait_phase("rollouts-mocka", "Healthy")
    assert image_of(cluster.deployment("mocka-v1")) == V2
    assert status["conditions"] and any(
        c["type"] == "Succeeded" and c["reason"] == "Promoted" for c in status["conditions"])
    cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary deleted")
    assert {"FullPromotionRequested", "Promoting", "Promoted"} <= reasons(cluster)
    assert "StepStarted" not in reasons(cluster)

    refused = lane(control_plane, namespace, "promote", "--full", "rollout/rollouts-mocka")
    assert refused.exit_code == 1
    assert ("error: workloadrollout/rollouts-mocka has no release in progress to promote "
            "(phase Healthy)") in refused.output


def test_abort_rolls_back_and_holds_the_revision_until_retry(control_plane, cluster, namespace) -> None:
    at_step_1(cluster)
    result = lane(control_plane, namespace, "abort", "rollout/rollouts-mocka")
    assert result.exit_code == 0, result.output
    status = cluster.wait_phase("rollouts-mocka", "Healthy")
    assert image_of(cluster.deployment("mocka-v1")) == V1
    assert status["failedRevision"]["reason"] == "Aborted"
    cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary deleted")

    cluster.set_image("mocka-v1", V2)
    cluster.until(lambda: "FailedRevisionHeld" in reasons(cluster), "the aborted revision held")
    assert cluster.deployment("mocka-v1-canary") is None
    assert lane(control_plane, namespace, "retry", "rollout/rollouts-mocka").exit_code == 0
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")


def test_restart_replaces_the_canary_pods(control_plane, cluster, namespace) -> None:
    at_step_1(cluster)

    def canary_pods(canary: bool = True) -> set[str]:
        return {p["metadata"]["uid"] for p in cluster.pods({"app": "mocka"})
                if ("lanes.dev/canary" in p["metadata"]["labels"]) == canary}

    base_pods = canary_pods(canary=False)
    before = canary_pods()
    assert len(before) == 1
    result = lane(control_plane, namespace, "restart", "rollout/rollouts-mocka")
    assert result.exit_code == 0, result.output
    cluster.until(lambda: (pods := canary_pods()) and not pods & before, "new canary pods")
    template = cluster.deployment("mocka-v1-canary")["spec"]["template"]["metadata"]
    assert "lanes.dev/restarted-at" in template["annotations"]
    status = cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    assert status["canaryStatus"]["currentStepIndex"] == 1
    assert cluster.deployment("mocka-v1")["spec"]["paused"] is True
    assert canary_pods(canary=False) == base_pods


def test_undo_to_a_revision_releases_the_older_template_through_the_steps(
    control_plane, cluster, namespace
) -> None:
    at_step_1(cluster)
    assert lane(control_plane, namespace, "promote", "--full", "rollout/rollouts-mocka").exit_code == 0
    cluster.wait_phase("rollouts-mocka", "Healthy")
    assert image_of(cluster.deployment("mocka-v1")) == V2

    pruned = lane(control_plane, namespace, "undo", "--to-revision", "9", "rollout/rollouts-mocka")
    assert pruned.exit_code == 1
    assert "error: workloadrollout/rollouts-mocka: Deployment mocka-v1 has no revision 9" in pruned.output

    result = lane(control_plane, namespace, "undo", "--to-revision", "1", "rollout/rollouts-mocka")
    assert result.exit_code == 0, result.output
    assert "set back to revision 1" in result.output
    status = cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    assert status["canaryStatus"]["currentStepIndex"] == 1
    assert image_of(cluster.deployment("mocka-v1-canary")) == V1
    base = cluster.deployment("mocka-v1")
    assert base["spec"]["paused"] is True

    assert lane(control_plane, namespace, "promote", "--full", "rollout/rollouts-mocka").exit_code == 0
    cluster.wait_phase("rollouts-mocka", "Healthy")
    assert image_of(cluster.deployment("mocka-v1")) == V1
