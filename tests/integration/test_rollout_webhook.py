"""The admission hold on the real API server: it calls the operator's webhook over TLS.

With the webhook up, a template change is stored already paused, so the Deployment controller
never starts a ReplicaSet of the new template. With the operator down the configuration stays
(persistent) but fails open (failurePolicy Ignore): the change is admitted at once and starts
rolling, and the operator, once back, holds the base itself and runs the canary from there.
"""

from __future__ import annotations

import base64
import time
import uuid

import pytest
from kubernetes import client

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

V1, V2, V3 = f"{IMAGE}:1.0", f"{IMAGE}:2.0", f"{IMAGE}:3.0"


@pytest.fixture
def config_name() -> str:
    return f"hold-{uuid.uuid4().hex[:6]}.lanes.dev"


@pytest.fixture
def cluster(kube_api, namespace):
    with PodReadier(kube_api, namespace):
        yield Cluster(kube_api, namespace)


@pytest.fixture
def operator(control_plane, kube_api, cluster, config_name):
    with Operator(control_plane.kubeconfig, config_name) as running:
        wait_for_webhook(kube_api, config_name, running.webhook.port)
        yield running
        cluster.delete_rollouts()


def start(cluster: Cluster, replicas: int = 2) -> None:
    cluster.create_deployment(deployment("mocka-v1", "mocka", V1, replicas=replicas))
    cluster.create_rollout(workload_rollout("rollouts-mocka", "mocka-v1"))


def settled(cluster: Cluster) -> None:
    """The rollout has recorded its stable revision and labelled its base for the webhook."""
    cluster.wait_phase("rollouts-mocka", "Healthy")
    cluster.until(
        lambda: (cluster.deployment("mocka-v1")["metadata"].get("labels") or {}).get("lanes.dev/rollout"),
        "the base labelled for the webhook",
    )
    cluster.until(
        lambda: (cluster.deployment("mocka-v1").get("status") or {}).get("availableReplicas") == 2,
        "the base available",
    )


def test_configuration_scopes_and_fails_open(control_plane, kube_api, cluster, config_name) -> None:
    with Operator(control_plane.kubeconfig, config_name) as operator:
        wait_for_webhook(kube_api, config_name, operator.webhook.port)
        config = client.AdmissionregistrationV1Api(kube_api).read_mutating_webhook_configuration(config_name)
    (hook,) = config.webhooks
    assert hook.failure_policy == "Ignore"
    assert hook.side_effects == "None"
    assert hook.client_config.url.startswith("https://127.0.0.1:")
    assert b"BEGIN CERTIFICATE" in base64.b64decode(hook.client_config.ca_bundle)
    assert [(r.api_groups, r.resources, r.operations) for r in hook.rules] == [
        (["apps"], ["deployments"], ["UPDATE"])
    ]
    expressions = {(e.key, e.operator) for e in hook.object_selector.match_expressions}
    assert expressions == {("lanes.dev/rollout", "Exists"), ("lanes.dev/canary", "DoesNotExist")}
    after = client.AdmissionregistrationV1Api(kube_api).read_mutating_webhook_configuration(config_name)
    assert len(after.webhooks) == 1, "a persistent webhook outlives a stopped operator"


def test_template_change_is_stored_paused(operator, cluster) -> None:
    start(cluster)
    settled(cluster)
    pods = base_pods(cluster)
    stored = cluster.set_image("mocka-v1", V2)
    assert stored.spec.paused is True
    assert stored.metadata.annotations["lanes.dev/held-by"] == "rollouts-mocka"
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    assert len(cluster.replica_sets("mocka-v1")) == 1
    assert base_pods(cluster) == pods
    assert image_of(cluster.deployment("mocka-v1-canary")) == V2

    stored = cluster.set_image("mocka-v1", V3)
    assert stored.spec.paused is True
    cluster.until(lambda: image_of(cluster.deployment("mocka-v1-canary")) == V3, "the canary restarted on v3")
    cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
    assert len(cluster.replica_sets("mocka-v1")) == 1
    assert base_pods(cluster) == pods

    cluster.create_deployment(deployment("plain", "plain", V1))
    assert cluster.set_image("plain", V2).spec.paused is not True


def base_pods(cluster: Cluster) -> set[str]:
    return {
        p["metadata"]["uid"]
        for p in cluster.pods({"app": "mocka"})
        if "lanes.dev/canary" not in p["metadata"]["labels"]
    }


def test_operator_down_admits_the_change_and_holds_it_once_back(
    control_plane, kube_api, cluster, config_name
) -> None:
    port = None
    with Operator(control_plane.kubeconfig, config_name) as operator:
        port = operator.webhook.port
        wait_for_webhook(kube_api, config_name, port)
        start(cluster)
        settled(cluster)

    began = time.monotonic()
    stored = cluster.set_image("mocka-v1", V2)
    assert time.monotonic() - began < 5, "a down webhook must fail open at once"
    assert not stored.spec.paused
    cluster.until(lambda: len(cluster.replica_sets("mocka-v1")) == 2, "the Deployment controller rolling")

    with Operator(control_plane.kubeconfig, config_name, port=port):
        cluster.wait_phase("rollouts-mocka", "Paused", "StepPaused")
        base = cluster.deployment("mocka-v1")
        assert base["spec"]["paused"] is True
        assert base["metadata"]["annotations"]["lanes.dev/held-by"] == "rollouts-mocka"
        assert image_of(cluster.deployment("mocka-v1-canary")) == V2
        cluster.request("rollouts-mocka", {"lanes.dev/approve": "1"})
        cluster.wait_phase("rollouts-mocka", "Healthy")
        cluster.until(lambda: cluster.deployment("mocka-v1-canary") is None, "the canary deleted")
        cluster.until(
            lambda: {image_of_pod(p) for p in cluster.pods({"app": "mocka"})} == {V2}
            and len(cluster.pods({"app": "mocka"})) == 2,
            "the base on v2",
        )
        cluster.delete_rollouts()


def image_of_pod(pod: dict) -> str:
    return pod["spec"]["containers"][0]["image"]
