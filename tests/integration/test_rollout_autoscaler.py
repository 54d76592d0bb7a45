"""`autoscalerRef` on the real API server: the canary's copy of the base's HorizontalPodAutoscaler
exists for the release with the canary as its target, percent steps and the copy's floor follow
the base's replica count, and the copy goes once the release is promoted or rolled back.

The local control plane runs no HPA controller, so nothing scales by load here; the base's
replica count is changed by hand, as its autoscaler would.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .rollout_support import (
    IMAGE,
    Cluster,
    Operator,
    PodReadier,
    deployment,
    wait_for_webhook,
    workload_rollout,
)

pytestmark = pytest.mark.integration

V1, V2, V3 = f"{IMAGE}:1.0", f"{IMAGE}:2.0", f"{IMAGE}:3.0"
COPY = "mocka-v1-canary"


@pytest.fixture(scope="module")
def operator(control_plane, kube_api):
    with Operator(control_plane.kubeconfig, f"hpa-{uuid.uuid4().hex[:6]}.lanes.dev") as running:
        wait_for_webhook(kube_api, running.webhook.config_name, running.webhook.port)
        yield running


@pytest.fixture
def cluster(operator, kube_api, namespace):
    made = Cluster(kube_api, namespace)
    with PodReadier(kube_api, namespace):
        yield made
        made.delete_rollouts()


def base_autoscaler() -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "mocka"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mocka-v1"},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


def autoscaler(cluster: Cluster, name: str) -> dict | None:
    return cluster.rollouts.autoscaler(cluster.namespace, name)


def scale_base(cluster: Cluster, replicas: int) -> None:
    """What the base's HPA does: set the Deployment's replicas through its scale subresource."""
    cluster.apps.patch_namespaced_deployment_scale(
        "mocka-v1", cluster.namespace, {"spec": {"replicas": replicas}})


def started(cluster: Cluster, kube_api: client.ApiClient, steps: list[dict]) -> None:
    cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=4))
    client.AutoscalingV2Api(kube_api).create_namespaced_horizontal_pod_autoscaler(
        cluster.namespace, base_autoscaler())
    body = workload_rollout("rollouts-mocka", "mocka-v1", steps)
    body["spec"]["autoscalerRef"] = {"apiVersion": "autoscaling/v2",
                                     "kind": "HorizontalPodAutoscaler", "name": "mocka"}
    cluster.create_rollout(body)
    cluster.wait_phase("rollouts-mocka", "Healthy")


def test_the_canary_gets_the_bases_autoscaler_for_the_release_and_loses_it_on_promotion(
    cluster: Cluster, kube_api: client.ApiClient
) -> None:
    started(cluster, kube_api, [{"replicas": "50%"}, {"replicas": "100%"}])
    assert autoscaler(cluster, COPY) is None, "no copy before a release"

    cluster.set_image("mocka-v1", V2)
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    copy = cluster.until(lambda: autoscaler(cluster, COPY), "the canary's autoscaler")
    assert copy["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": COPY}
    assert (copy["spec"]["minReplicas"], copy["spec"]["maxReplicas"]) == (2, 10)
    assert copy["spec"]["metrics"] == base_autoscaler()["spec"]["metrics"]
    assert copy["metadata"]["labels"]["lanes.dev/rollout"] == "rollouts-mocka"
    [owner] = copy["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("WorkloadRollout", "rollouts-mocka")
    assert cluster.deployment(COPY)["spec"]["replicas"] == 2, "50% of 4"
    base = autoscaler(cluster, "mocka")
    assert base["spec"]["scaleTargetRef"]["name"] == "mocka-v1", "the base's own stays on it"

    scale_base(cluster, 6)
    cluster.until(lambda: cluster.deployment(COPY)["spec"]["replicas"] == 3,
                  "the step following the base: 50% of 6")
    cluster.until(lambda: autoscaler(cluster, COPY)["spec"]["minReplicas"] == 3,
                  "the copy's floor following the step")

    cluster.request("rollouts-mocka", {"lanes.dev/approve": "1"})
    cluster.until(lambda: cluster.status("rollouts-mocka")["canaryStatus"]["currentStepIndex"] == 2
                  and cluster.status("rollouts-mocka")["phase"] == "Paused", "step 2 paused")
    cluster.until(lambda: autoscaler(cluster, COPY)["spec"]["minReplicas"] == 6, "100% of 6")
    cluster.request("rollouts-mocka", {"lanes.dev/approve": "2"})
    cluster.wait_phase("rollouts-mocka", "Healthy", timeout=90)
    cluster.until(lambda: autoscaler(cluster, COPY) is None, "the copy deleted after promotion")
    assert cluster.deployment(COPY) is None
    assert autoscaler(cluster, "mocka") is not None


def test_the_copy_goes_on_roll_back_and_with_the_rollout(
    cluster: Cluster, kube_api: client.ApiClient
) -> None:
    started(cluster, kube_api, [{"replicas": 1}])
    cluster.set_image("mocka-v1", V2)
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    cluster.until(lambda: autoscaler(cluster, COPY), "the canary's autoscaler")
    cluster.request("rollouts-mocka", {"lanes.dev/undo": "true"})
    cluster.wait_phase("rollouts-mocka", "Healthy", timeout=90)
    cluster.until(lambda: autoscaler(cluster, COPY) is None, "the copy deleted after roll back")

    cluster.set_image("mocka-v1", V3)
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    cluster.until(lambda: autoscaler(cluster, COPY), "a copy for the next release")
    cluster.delete_rollouts()
    cluster.until(lambda: autoscaler(cluster, COPY) is None, "the copy deleted with the rollout")


def test_an_autoscaler_ref_lanes_cannot_copy_is_refused_by_the_api_server(cluster: Cluster) -> None:
    body = workload_rollout("rollouts-bad", "mocka-v1")
    body["spec"]["autoscalerRef"] = {"kind": "ScaledObject", "name": "mocka"}
    with pytest.raises(ApiException) as info:
        cluster.create_rollout(body)
    assert info.value.status == 422 and "spec.autoscalerRef.kind" in info.value.body
