"""A LaneRelease on the real control plane: three rollouts released as one through their lane.

The operator (lane, rollout and lane-release handlers) runs against a real kube-apiserver and
kube-controller-manager; pods are made Ready by a stand-in kubelet. The tests follow the entry
weight in the live gateway VirtualService, and check that promotion approves every rollout
together and that undo puts the weight to 0 before any rollout is undone, base never restarted.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client
from typer.testing import CliRunner

from lanes.cli.main import app
from lanes.render.steps import entered_weight

from .operator_support import Stories
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
SERVICES = ("mocka", "mockb", "mockc")
GROUP, VERSION = "lanes.dev", "v1alpha1"


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"lr-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def lane_story(operator, kube_api, namespace, ingress_gateway):
    """The story's lanes and group, three Deployments and their rollouts, every canary up."""
    stories = Stories(kube_api, namespace)
    story = stories.create("istio")
    cluster = Cluster(kube_api, namespace)
    with PodReadier(kube_api, namespace):
        for service in SERVICES:
            cluster.create_deployment(deployment(f"{service}-v1", service, V1))
            cluster.create_rollout(workload_rollout(f"rollouts-{service}", f"{service}-v1"))
        for service in SERVICES:
            cluster.wait_phase(f"rollouts-{service}", "Healthy")
        bases = {s: base_pods(cluster, s) for s in SERVICES}
        for service in SERVICES:
            cluster.set_image(f"{service}-v1", V2)
        for service in SERVICES:
            cluster.wait_phase(f"rollouts-{service}", "Paused", "StepPaused")
        yield story, cluster, bases
        delete_release(kube_api, namespace)
        cluster.delete_rollouts()
    stories.close()


def base_pods(cluster: Cluster, service: str) -> set[str]:
    return {p["metadata"]["uid"] for p in cluster.pods({"app": service})
            if "lanes.dev/canary" not in p["metadata"]["labels"]}


def create_release(api: client.ApiClient, namespace: str, lane: str, steps: list[dict]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "lanereleases",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LaneRelease",
         "metadata": {"name": "seed"},
         "spec": {"swimLaneRef": {"name": lane}, "steps": steps}},
    )


def delete_release(api: client.ApiClient, namespace: str) -> None:
    try:
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "lanereleases", "seed")
    except client.exceptions.ApiException as error:
        if error.status != 404:
            raise


def release_status(api: client.ApiClient, namespace: str) -> dict:
    body = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "lanereleases", "seed")
    return body.get("status") or {}


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


def routed(api: client.ApiClient, story) -> int:
    vs = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "networking.istio.io", "v1", "istio-system", "virtualservices",
        f"lanes-{story.name}-ingress")
    return entered_weight(vs, "x-asm-prefer-tag", story.lane("canary"))


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
