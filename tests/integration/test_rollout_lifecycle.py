"""A rollout's life beyond the story: batches by percent, timed pauses, pause and resume, a
canary deleted by hand, deletion mid-release, and no writes while nothing changes."""

from __future__ import annotations

import time
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


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"life-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def cluster(operator, kube_api, namespace):
    made = Cluster(kube_api, namespace)
    with PodReadier(kube_api, namespace):
        yield made
        made.delete_rollouts()


def base_pods(cluster: Cluster) -> set[str]:
    return {
        p["metadata"]["uid"]
        for p in cluster.pods({"app": "mocka"})
        if "lanes.dev/canary" not in p["metadata"]["labels"]
    }


def started(cluster: Cluster, replicas: int, steps: list[dict] | None = None) -> set[str]:
    cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=replicas))
    cluster.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1", steps))
    cluster.wait_phase("rollouts-mocka", "Healthy")
    cluster.until(lambda: len(base_pods(cluster)) == replicas, "the base's pods")
    cluster.until(
        lambda: cluster.deployment("mocka-v1")["metadata"]["labels"].get("lanes.dev/rollout"),
        "the base labelled",
    )
    return base_pods(cluster)


def canary_replicas(cluster: Cluster) -> int | None:
    canary = cluster.deployment("mocka-v1-canary")
    return canary["spec"]["replicas"] if canary else None


def test_batches_timed_pause_pause_resume_and_a_lost_canary(operator, cluster) -> None:
    steps = [{"replicas": "25%"}, {"replicas": 2, "pause": {"duration": 1}}, {"replicas": "100%"}]
    pods = started(cluster, 4, steps)
    cluster.set_image("mocka-v1", V2)
    status = cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    assert status["canaryStatus"]["currentStepIndex"] == 1
    assert canary_replicas(cluster) == 1

    operator.settle()  # the reconcile that wrote Paused may still be posting its events
    writes = operator.writes
    time.sleep(2)
    assert operator.writes == writes, "a rollout waiting for approval writes nothing"

    cluster.request("rollouts-mocka", {"lanes.dev/approve": "1"})
    cluster.until(lambda: cluster.status("rollouts-mocka")["canaryStatus"]["currentStepIndex"] == 3,
                  "the timed pause of step 2 to end by itself")
    assert canary_replicas(cluster) == 4
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")

    cluster.request("rollouts-mocka", {"lanes.dev/pause": "now"})
    cluster.until(lambda: cluster.status("rollouts-mocka").get("paused"), "paused")
    cluster.apps.delete_namespaced_deployment("mocka-v1-canary", cluster.namespace)
    time.sleep(1)
    assert cluster.status("rollouts-mocka")["phase"] == "Paused"

    cluster.request("rollouts-mocka", {"lanes.dev/resume": "now"})
    cluster.until(lambda: canary_replicas(cluster) == 4, "the deleted canary re-created")
    status = cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    assert not status.get("paused")
    assert base_pods(cluster) == pods
    assert cluster.deployment("mocka-v1")["spec"]["paused"] is True

    cluster.request("rollouts-mocka", {"lanes.dev/approve": "3"})
    cluster.wait_phase("rollouts-mocka", "Healthy")
    assert cluster.deployment("mocka-v1-canary") is None
    wanted = {"CanaryStarted", "StepReady", "Approved", "Paused", "Resumed", "Promoting", "Promoted"}
    # An event is posted after the status write that reports its phase.
    cluster.until(
        lambda: wanted <= {e["reason"] for e in cluster.rollouts.events_of(cluster.namespace, "rollouts-mocka")},
        "every event of the release",
    )


def test_deleting_a_rollout_mid_release_leaves_the_base_on_its_stable_version(operator, cluster) -> None:
    pods = started(cluster, 2)
    cluster.set_image("mocka-v1", V2)
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")

    cluster.delete_rollouts()
    base = cluster.deployment("mocka-v1")
    assert image_of(base) == V1
    assert not base["spec"].get("paused")
    assert "lanes.dev/held-by" not in (base["metadata"].get("annotations") or {})
    assert "lanes.dev/rollout" not in base["metadata"]["labels"]
    cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary deleted")
    time.sleep(1)
    assert base_pods(cluster) == pods
    assert len(cluster.replica_sets("mocka-v1")) == 1

    stored = cluster.set_image("mocka-v1", V2)
    assert not stored.spec.paused, "without a rollout the base is a plain Deployment again"
    cluster.until(lambda: len(cluster.replica_sets("mocka-v1")) == 2, "a plain rolling update")


def test_a_second_rollout_on_a_driven_deployment_waits_with_a_conflict(operator, cluster) -> None:
    pods = started(cluster, 2)
    cluster.set_image("mocka-v1", V2)
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")

    cluster.create_rollout(workload_rollout("rollouts-again", "mocka-v1"))
    status = cluster.wait_phase("rollouts-again", "Failed")
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Progressing": "Conflict",
        "Succeeded": "Conflict",
    }
    assert "mocka-v1 is already driven by workloadrollout/rollouts-mocka" in status["message"]
    events = cluster.until(lambda: cluster.rollouts.events_of(cluster.namespace, "rollouts-again"), "an event")
    assert [(e["reason"], e["type"]) for e in events] == [("Conflict", "Warning")]
    operator.settle()
    writes = operator.writes
    time.sleep(2)
    assert operator.writes == writes, "two rollouts on one Deployment do not fight over it"
    base = cluster.deployment("mocka-v1")
    assert base["metadata"]["labels"]["lanes.dev/rollout"] == "rollouts-mocka"
    assert base["spec"]["paused"] is True and image_of(base) == V2
    assert cluster.status("rollouts-mocka")["phase"] == "Paused"

    cluster.custom.delete_namespaced_custom_object(
        "lanes.dev", "v1alpha1", cluster.namespace, "workloadrollouts", "rollouts-mocka"
    )
    status = cluster.wait_phase("rollouts-again", "Healthy")
    assert not status.get("conditions")
    base = cluster.deployment("mocka-v1")
    assert base["metadata"]["labels"]["lanes.dev/rollout"] == "rollouts-again"
    assert image_of(base) == V1 and not base["spec"].get("paused")
    cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the first canary deleted")
    assert base_pods(cluster) == pods
