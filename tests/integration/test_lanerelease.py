"""A LaneRelease on the real control plane: three rollouts released as one through their lane.

The operator (lane, rollout and lane-release handlers) runs against a real kube-apiserver and
kube-controller-manager; pods are made Ready by a stand-in kubelet. The tests follow the entry
weight in the live gateway VirtualService, and check that promotion approves every rollout
together and that undo puts the weight to 0 before any rollout is undone, base never restarted.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from typer.testing import CliRunner

from lanes.cli.main import app

from .lane_history import History, gateway_weight, lane_gaps
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

pytestmark = pytest.mark.integration


def create_release(api: client.ApiClient, namespace: str, lane: str, steps: list[dict]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "lanereleases",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LaneRelease",
         "metadata": {"name": "seed"},
         "spec": {"swimLaneRef": {"name": lane}, "steps": steps}},
    )


def lane_cli(control_plane, namespace: str, *args: str):
    return CliRunner().invoke(
        app, [*args, "-n", namespace, "--kubeconfig", str(control_plane.kubeconfig)],
        env={"COLUMNS": "200"},
    )


def _ended(api, namespace, cluster) -> bool:
    """Wait for the release to end; on a timeout, say where it and its rollouts stand."""
    try:
        cluster.until(lambda: release_status(api, namespace).get("phase") in ("Succeeded", "Failed"),
                      "the release to end", timeout=90)
    except AssertionError as error:
        rollouts = {r["metadata"]["name"]: ((r.get("status") or {}).get("phase"),
                                            (r.get("status") or {}).get("message"),
                                            r["metadata"].get("annotations"))
                    for r in cluster.rollouts.list(namespace)}
        raise AssertionError(f"{error}; release {release_status(api, namespace)}; "
                             f"rollouts {rollouts}") from None
    return True


def test_a_healthy_lane_is_promoted_together(control_plane, kube_api, namespace,
                                             lane_story) -> None:
    story, cluster, _ = lane_story
    create_release(kube_api, namespace, story.lane("canary"),
                   [{"weight": 10, "pause": {"duration": 1}}, {"weight": 25, "pause": {}}])
    cluster.until(lambda: routed(kube_api, story) == 10, "entry weight 10 at the gateway")
    status = cluster.until(
        lambda: (s := release_status(kube_api, namespace)).get("weight") == 25 and s, "step 2")
    assert status["phase"] == "Progressing" and status["currentStepIndex"] == 2
    cluster.until(lambda: routed(kube_api, story) == 25, "entry weight 25 at the gateway")
    vs = client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices")["items"]
    assert all("untagged" not in [r.get("name") for r in v["spec"]["http"]] for v in vs), \
        "a driven rollout split untagged requests on its own"
    shown = lane_cli(control_plane, namespace, "status", "lanerelease/seed")
    assert shown.exit_code == 2 and "entry weight 25%" in shown.output, shown.output
    approved = lane_cli(control_plane, namespace, "approve", "lanerelease/seed")
    assert approved.exit_code == 0, approved.output
    cluster.until(lambda: release_status(kube_api, namespace).get("phase") in
                  ("Promoting", "Succeeded"), "promoting")
    final = cluster.until(
        lambda: (s := release_status(kube_api, namespace)).get("phase") == "Succeeded" and s,
        "the lane promoted", timeout=90) if _ended(kube_api, namespace, cluster) else None
    assert final is not None
    assert final["weight"] == 0
    assert {c["type"]: c["status"] for c in final["conditions"]}["Succeeded"] == "True"
    for service in SERVICES:
        assert cluster.status(f"rollouts-{service}")["phase"] == "Healthy"
        assert image_of(cluster.deployment(f"{service}-v1")) == V2
    cluster.until(lambda: routed(kube_api, story) == 0, "entry weight back to 0")
    shown = lane_cli(control_plane, namespace, "status", "lanerelease/seed", "-w")
    assert shown.exit_code == 0 and "Succeeded" in shown.output, shown.output
    again = lane_cli(control_plane, namespace, "undo", "lanerelease/seed")
    assert again.exit_code == 1 and "nothing to undo" in again.output


def test_undo_rolls_the_whole_lane_back_weight_first(control_plane, kube_api, namespace,
                                                     lane_story) -> None:
    story, cluster, bases = lane_story
    create_release(kube_api, namespace, story.lane("canary"), [{"weight": 50, "pause": {}}])
    cluster.until(lambda: routed(kube_api, story) == 50, "entry weight 50 at the gateway")
    paused = lane_cli(control_plane, namespace, "pause", "lanerelease/seed")
    assert paused.exit_code == 0, paused.output
    cluster.until(lambda: release_status(kube_api, namespace).get("phase") == "Paused", "paused")
    undone = lane_cli(control_plane, namespace, "undo", "lanerelease/seed")
    assert undone.exit_code == 0, undone.output
    final = cluster.until(
        lambda: (s := release_status(kube_api, namespace)).get("phase") == "Failed" and s,
        "the lane rolled back", timeout=90)
    assert final["reason"] == "UndoRequested" and final["weight"] == 0
    assert routed(kube_api, story) == 0
    for service in SERVICES:
        status = cluster.status(f"rollouts-{service}")
        assert status["phase"] == "Healthy"
        assert image_of(cluster.deployment(f"{service}-v1")) == V1
        assert base_pods(cluster, service) == bases[service], f"{service}'s base restarted"


def deletion_note(cluster, name: str) -> str | None:
    """What a rollout being deleted says it waits for; "gone" once it is."""
    body = cluster.rollout(name)
    if body is None:
        return "gone"
    message = (body.get("status") or {}).get("message") or ""
    return message if "deletion waits" in message else None


def test_a_member_deleted_mid_release_keeps_its_canary_until_no_request_enters_the_lane(
        kube_api, namespace, lane_story) -> None:
    story, cluster, bases = lane_story
    lane = story.lane("canary")
    create_release(kube_api, namespace, lane, [{"weight": 50, "pause": {}}])
    cluster.until(lambda: routed(kube_api, story) == 50, "entry weight 50 at the gateway")
    with History(kube_api, namespace, f"lanes-{story.name}-ingress") as history:
        client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "workloadrollouts", "rollouts-mockb")
        said = cluster.until(lambda: deletion_note(cluster, "rollouts-mockb"),
                             "the deletion held or done")
        final = cluster.until(
            lambda: (s := release_status(kube_api, namespace)).get("phase") == "Failed" and s,
            "the lane rolled back", timeout=90)
        cluster.until(lambda: cluster.rollout("rollouts-mockb") is None, "rollouts-mockb gone")
        cluster.until(lambda: cluster.deployment("mockb-v1-canary") is None,
                      "mockb's canary deleted")
    assert final["reason"] == "RolloutDeleted" and final["weight"] == 0
    succeeded = {c["type"]: c for c in final["conditions"]}["Succeeded"]
    assert (succeeded["status"], succeeded["reason"]) == ("False", "RolloutDeleted")
    assert "workloadrollout/rollouts-mockb deleted" in succeeded["message"]
    weights, mixed, canary_gone_at, zero_at = [], [], None, None
    for moment in history.moments():
        weight = gateway_weight(moment, "x-asm-prefer-tag", lane)
        weights.append(weight)
        if weight > 0:
            zero_at = None
            mixed += [f"revision {moment.revision}: entry weight {weight}%, {gap}"
                      for gap in lane_gaps(moment, SERVICES, lane)]
        elif zero_at is None:
            zero_at = moment.revision
        if canary_gone_at is None and "mockb-v1-canary" not in moment.of("deployments"):
            canary_gone_at = moment.revision
    assert not mixed, "untagged requests could enter the lane while a member was missing " \
                      f"from it: {mixed[:5]}"
    assert weights[0] == 50 and weights[-1] == 0
    assert "deletion waits: lanerelease/seed" in said, said
    assert canary_gone_at is not None and zero_at is not None and zero_at < canary_gone_at
    assert image_of(cluster.deployment("mockb-v1")) == V1
    assert base_pods(cluster, "mockb") == bases["mockb"], "mockb's base restarted"
    for service in ("mocka", "mockc"):
        assert cluster.status(f"rollouts-{service}")["phase"] == "Healthy"
        assert image_of(cluster.deployment(f"{service}-v1")) == V1
        assert base_pods(cluster, service) == bases[service], f"{service}'s base restarted"
