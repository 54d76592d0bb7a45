"""`kubectl lane promote --full|abort lanerelease/NAME`, and a lane release's notices, carried
out by the operator on the real API server: three rollouts released as one through their lane."""

from __future__ import annotations

import pytest
from kubernetes import client
from typer.testing import CliRunner

from lanes.cli.main import app
from lanes.kube.lanesapi import list_events

from .lane_support import (  # noqa: F401 (operator and lane_story are the tests' fixtures)
    GROUP,
    SERVICES,
    V1,
    V2,
    VERSION,
    base_pods,
    lane_story,
    operator,
    release_status,
    routed,
)
from .rollout_support import image_of
from .test_rollout_alerts import Receiver

pytestmark = pytest.mark.integration


def create_release(api: client.ApiClient, namespace: str, lane: str, steps: list[dict],
                   **spec: object) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "lanereleases",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LaneRelease",
         "metadata": {"name": "seed"},
         "spec": {"swimLaneRef": {"name": lane}, "steps": steps, **spec}},
    )


def lane_cli(control_plane, namespace: str, *args: str):
    return CliRunner().invoke(
        app, [*args, "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)],
        env={"COLUMNS": "200"},
    )


def reasons(cluster, name: str = "seed", kind: str = "LaneRelease") -> set[str]:
    """The reasons of the events about one release."""
    return {e["reason"] for e in list_events(cluster.core, cluster.namespace, name, kind)}


STEPS = [{"weight": 10, "pause": {}}, {"weight": 25, "pause": {}}, {"weight": 50, "pause": {}}]


def test_promote_full_skips_the_remaining_steps_and_promotes_the_lane(
        control_plane, kube_api, namespace, lane_story) -> None:
    story, cluster, _ = lane_story
    create_release(kube_api, namespace, story.lane("canary"), STEPS)
    cluster.until(lambda: routed(kube_api, story) == 10, "entry weight 10 at the gateway")
    result = lane_cli(control_plane, namespace, "promote", "--full", "lanerelease/seed")
    assert result.exit_code == 0, result.output
    assert "full promotion requested at step 1" in result.output
    final = cluster.until(
        lambda: (s := release_status(kube_api, namespace)).get("phase") in ("Succeeded", "Failed")
        and s, "the lane promoted", timeout=120)
    assert final["phase"] == "Succeeded", final
    assert final["weight"] == 0 and final["currentStepIndex"] == 1
    for service in SERVICES:
        assert cluster.status(f"rollouts-{service}")["phase"] == "Healthy"
        assert image_of(cluster.deployment(f"{service}-v1")) == V2
    assert {"FullPromotionRequested", "Promoting", "Succeeded"} <= reasons(cluster)
    assert "Advance" not in reasons(cluster)
    again = lane_cli(control_plane, namespace, "promote", "--full", "lanerelease/seed")
    assert again.exit_code == 1 and "no step in progress to promote" in again.output


def test_abort_rolls_the_lane_back_and_fails_every_members_revision(
        control_plane, kube_api, namespace, lane_story) -> None:
    story, cluster, bases = lane_story
    create_release(kube_api, namespace, story.lane("canary"), STEPS)
    cluster.until(lambda: routed(kube_api, story) == 10, "entry weight 10 at the gateway")
    result = lane_cli(control_plane, namespace, "abort", "lanerelease/seed")
    assert result.exit_code == 0, result.output
    assert "recorded as failed" in result.output
    final = cluster.until(
        lambda: (s := release_status(kube_api, namespace)).get("phase") == "Failed" and s,
        "the lane rolled back", timeout=120)
    assert final["reason"] == "Aborted" and final["weight"] == 0
    for service in SERVICES:
        status = cluster.status(f"rollouts-{service}")
        assert status["phase"] == "Healthy"
        assert status["failedRevision"]["reason"] == "Aborted"
        assert image_of(cluster.deployment(f"{service}-v1")) == V1
        assert base_pods(cluster, service) == bases[service], f"{service}'s base restarted"

    cluster.set_image("mocka-v1", V2)
    cluster.until(lambda: "FailedRevisionHeld" in reasons(cluster, "rollouts-mocka",
                                                          "WorkloadRollout"),
                  "the aborted revision held")
    assert cluster.deployment("mocka-v1-canary") is None
    refused = lane_cli(control_plane, namespace, "abort", "lanerelease/seed")
    assert refused.exit_code == 1 and "nothing in its steps to abort" in refused.output
    retried = lane_cli(control_plane, namespace, "retry", "lanerelease/seed")
    assert retried.exit_code == 0, retried.output
    cluster.until(lambda: release_status(kube_api, namespace).get("phase") != "Failed",
                  "the release started again")


def test_a_lane_release_is_told_to_chat(control_plane, kube_api, namespace, lane_story) -> None:
    story, cluster, _ = lane_story
    with Receiver() as chat:
        cluster.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "alertproviders",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AlertProvider",
             "metadata": {"name": "slack"},
             "spec": {"type": "slack", "address": f"{chat.url}/slack"}})
        create_release(kube_api, namespace, story.lane("canary"), STEPS[:1], alerts=[
            {"name": "team", "severity": "info", "providerRef": {"name": "slack"}}])

        def said() -> list[str]:
            return [body["text"] for path, body in chat.bodies if path == "/slack"]

        subject = f"*lanerelease/seed.{namespace}*"
        # Notices are posted from a pool of two threads, so they may arrive in either order.
        cluster.until(lambda: {f"{subject}: waiting for approval",
                               f"{subject}: lane release started"} <= set(said()),
                      "the start and the approval wait told to Slack")
        assert lane_cli(control_plane, namespace, "abort", "lanerelease/seed").exit_code == 0
        cluster.until(lambda: f"{subject}: lane rolled back" in said(),
                      "the roll back told to Slack", timeout=120)
        [text] = [b["attachments"][0]["text"] for p, b in chat.bodies
                  if p == "/slack" and b["text"] == f"{subject}: lane rolled back"]
        assert "Aborted" in text, text
