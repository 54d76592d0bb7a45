"""The lane story for LaneRelease tests on the real control plane: an operator for the module,
three Deployments mocka, mockb and mockc with their rollouts, each canary up and waiting at
its last step, and readers of the release and of the gateway's entry weight."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from lanes.render.steps import entered_weight

from .operator_support import Stories
from .rollout_support import (
    IMAGE,
    Cluster,
    Operator,
    PodReadier,
    deployment,
    wait_for_webhook,
    workload_rollout,
)

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


def routed(api: client.ApiClient, story) -> int | None:
    """The gateway's entry weight into the canary lane; None before the route exists."""
    try:
        vs = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "networking.istio.io", "v1", "istio-system", "virtualservices",
            f"lanes-{story.name}-ingress")
    except client.exceptions.ApiException as error:
        if error.status == 404:
            return None
        raise
    return entered_weight(vs, "x-asm-prefer-tag", story.lane("canary"))
