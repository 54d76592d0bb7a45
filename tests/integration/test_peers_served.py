"""ASM's swimlanes and Kruise's Rollouts served as they are, on a real API server.

The peer controller's reconcile runs against kube-apiserver with the peer kinds' CRDs it
installs itself: each peer object becomes the lanes.dev object it converts into, owned by it
(so the garbage collector deletes it with the peer object); the status lanes' controllers
write on that object comes back on the peer object in the peer's layout; a Rollout whose
status another field manager writes (kruise-rollout's controller) is refused, and what lanes
served for it before is deleted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes.importers.served import (
    ASM_GROUP_KIND,
    ASM_LANE_KIND,
    KRUISE_ROLLOUT_KIND,
    PEER_KINDS,
    SERVED_CONDITION,
    SERVED_LABEL,
    PeerKind,
    peer_key,
)
from lanes.kube.peers import PeersApi
from lanes.operator.peers import PeerController

MERGE = "application/merge-patch+json"


def until(check: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


@pytest.fixture(scope="module")
def peers(kube_api: client.ApiClient) -> PeerController:
    """The peer controller on the shared control plane, the peer kinds' CRDs installed."""
    api = PeersApi(kube_api)
    api.install_crds()
    extensions = client.ApiextensionsV1Api(kube_api)

    def established() -> bool:
        return all(
            any(c.type == "Established" and c.status == "True"
                for c in extensions.read_custom_resource_definition(k.crd_name).status.conditions or [])
            for k in PEER_KINDS
        )

    until(established, "the peer kinds' CRDs to be Established")
    return PeerController(api)


@pytest.fixture
def custom(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture
def suffix() -> Iterator[str]:
    yield uuid.uuid4().hex[:6]


def create(custom: client.CustomObjectsApi, kind: PeerKind, body: dict, namespace: str | None = None) -> dict:
    """A peer object as a user's `kubectl apply` makes it."""
    body = {"apiVersion": kind.api_version, "kind": kind.kind, **body}
    if kind.namespaced:
        return custom.create_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, body,
                                                      field_manager="kubectl")
    return custom.create_cluster_custom_object(kind.group, kind.version, kind.plural, body,
                                               field_manager="kubectl")


def reconcile(peers: PeerController, kind: PeerKind, namespace: str | None, name: str) -> None:
    peers.run(peer_key(kind, namespace, name), True)


def read(peers: PeerController, kind: PeerKind, namespace: str | None, name: str) -> dict:
    found = peers.api.peer(kind, namespace, name)
    assert found is not None
    return found


def served_condition(body: dict) -> dict:
    [found] = [c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == SERVED_CONDITION]
    return found


def rollout(name: str, deployment: str) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "strategy": {"canary": {"enableExtraWorkloadForCanary": True, "steps": [{"replicas": 1}],
                                "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}}}},
    }}


def test_installs_only_the_crds_the_cluster_lacks(peers: PeerController) -> None:
    assert peers.api.install_crds() == []


def test_asm_objects_are_served_owned_and_report_in_their_status(
    peers: PeerController, custom: client.CustomObjectsApi, suffix: str
) -> None:
    group_name, lane_name = f"rollout-{suffix}", f"base-{suffix}"
    create(custom, ASM_GROUP_KIND, {"metadata": {"name": group_name}, "spec": {
        "ingress": {"gateway": {"name": "ingressgateway", "namespace": "istio-system", "type": "ASM"}},
        "isPermissive": True,
        "permissiveModeConfiguration": {"fallbackTarget": lane_name, "routeHeader": "x-asm-prefer-tag",
                                        "traceHeader": "x-asm-prefer-tag"},
        "services": [{"name": "mocka", "namespace": "default"}],
    }})
    lane = create(custom, ASM_LANE_KIND, {
        "metadata": {"name": lane_name, "labels": {"swimlane-group": group_name}},
        "spec": {"labelSelector": {"ASM_TRAFFIC_TAG": "base"},
                 "services": [{"name": "mocka", "namespace": "default"}]},
    })
    try:
        reconcile(peers, ASM_GROUP_KIND, None, group_name)
        reconcile(peers, ASM_LANE_KIND, None, lane_name)
        group = peers.api.served(ASM_GROUP_KIND, None, group_name)
        served_lane = peers.api.served(ASM_LANE_KIND, None, lane_name)
        assert group is not None and served_lane is not None
        assert group["metadata"]["labels"][SERVED_LABEL] == "asmswimlanegroup.istio.alibabacloud.com"
        assert served_lane["metadata"]["labels"]["swimlane-group"] == group_name
        [owner] = served_lane["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("ASMSwimLane", lane_name, lane["metadata"]["uid"])
        assert group["spec"]["permissiveModeConfiguration"]["fallbackTarget"] == lane_name
        condition = served_condition(read(peers, ASM_GROUP_KIND, None, group_name))
        assert (condition["status"], condition["reason"]) == ("True", "Served")

        custom.patch_cluster_custom_object_status(
            "lanes.dev", "v1alpha1", "swimlanegroups", group_name,
            {"status": {"observedGeneration": group["metadata"]["generation"], "conditions": [
                {"type": "Ready", "status": "True", "reason": "InForce", "message": "routes in force"}]}},
            _content_type=MERGE)
        reconcile(peers, ASM_GROUP_KIND, None, group_name)
        status = read(peers, ASM_GROUP_KIND, None, group_name)["status"]
        assert status["observedGeneration"] == 1
        assert [c["type"] for c in status["conditions"]] == ["Ready", SERVED_CONDITION]

        before = read(peers, ASM_GROUP_KIND, None, group_name)["metadata"]["resourceVersion"]
        reconcile(peers, ASM_GROUP_KIND, None, group_name)
        assert read(peers, ASM_GROUP_KIND, None, group_name)["metadata"]["resourceVersion"] == before
    finally:
        custom.delete_cluster_custom_object(ASM_GROUP_KIND.group, ASM_GROUP_KIND.version, ASM_GROUP_KIND.plural,
                                            group_name)
        custom.delete_cluster_custom_object(ASM_LANE_KIND.group, ASM_LANE_KIND.version, ASM_LANE_KIND.plural,
                                            lane_name)
    until(lambda: peers.api.served(ASM_LANE_KIND, None, lane_name) is None,
          "the garbage collector to delete the served lane with its ASMSwimLane")


def test_a_kruise_rollout_reports_in_kruise_layout_and_goes_with_its_rollout(
    peers: PeerController, custom: client.CustomObjectsApi, namespace: str
) -> None:
    peer = create(custom, KRUISE_ROLLOUT_KIND, rollout("rollouts-mocka", "mocka-v1"), namespace)
    reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mocka")
    served = peers.api.served(KRUISE_ROLLOUT_KIND, namespace, "rollouts-mocka")
    assert served is not None
    assert served["spec"]["workloadRef"]["name"] == "mocka-v1"
    assert served["metadata"]["ownerReferences"][0]["uid"] == peer["metadata"]["uid"]

    custom.patch_namespaced_custom_object_status(
        "lanes.dev", "v1alpha1", namespace, "workloadrollouts", "rollouts-mocka",
        {"status": {"phase": "Paused", "observedGeneration": served["metadata"]["generation"],
                    "message": "step 1/1: waiting for approval",
                    "canaryStatus": {"stableRevision": "5d8f", "canaryRevision": "7c9b",
                                     "currentStepIndex": 1, "currentStepState": "StepPaused",
                                     "canaryReplicas": 1, "canaryReadyReplicas": 1}}},
        _content_type=MERGE)
    reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mocka")
    status = read(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mocka")["status"]
    assert status["phase"] == "Progressing"
    assert status["observedGeneration"] == 1
    assert (status["currentStepIndex"], status["currentStepState"]) == (1, "StepPaused")
    assert status["canaryStatus"] == {
        "stableRevision": "5d8f", "canaryRevision": "7c9b", "podTemplateHash": "7c9b",
        "currentStepIndex": 1, "currentStepState": "StepPaused",
        "canaryReplicas": 1, "canaryReadyReplicas": 1,
    }
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "InRolling")
    assert served_condition({"status": status})["reason"] == "Served"

    custom.delete_namespaced_custom_object(KRUISE_ROLLOUT_KIND.group, KRUISE_ROLLOUT_KIND.version, namespace,
                                           KRUISE_ROLLOUT_KIND.plural, "rollouts-mocka")
    until(lambda: peers.api.served(KRUISE_ROLLOUT_KIND, namespace, "rollouts-mocka") is None,
          "the garbage collector to delete the WorkloadRollout with its Rollout")


def kruise_writes_status(custom: client.CustomObjectsApi, namespace: str, name: str) -> None:
    """What kruise-rollout's controller does first: its own status on the Rollout."""
    custom.patch_namespaced_custom_object_status(
        KRUISE_ROLLOUT_KIND.group, KRUISE_ROLLOUT_KIND.version, namespace, KRUISE_ROLLOUT_KIND.plural, name,
        {"status": {"phase": "Healthy", "observedGeneration": 1}},
        field_manager="kruise-rollout", _content_type=MERGE)


def test_a_rollout_kruise_runs_is_refused_with_a_condition(
    peers: PeerController, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, KRUISE_ROLLOUT_KIND, rollout("rollouts-mockb", "mockb-v1"), namespace)
    kruise_writes_status(custom, namespace, "rollouts-mockb")
    reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockb")
    assert peers.api.served(KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockb") is None
    status = read(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockb")["status"]
    assert status["phase"] == "Healthy"
    condition = served_condition({"status": status})
    assert (condition["status"], condition["reason"]) == ("False", "OwnedByPeerController")
    assert "field manager 'kruise-rollout'" in condition["message"]

    before = read(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockb")["metadata"]["resourceVersion"]
    reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockb")
    assert read(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockb")["metadata"]["resourceVersion"] == before


def test_a_served_rollout_kruise_takes_over_is_given_up(
    peers: PeerController, custom: client.CustomObjectsApi, namespace: str
) -> None:
    create(custom, KRUISE_ROLLOUT_KIND, rollout("rollouts-mockc", "mockc-v1"), namespace)
    reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockc")
    assert peers.api.served(KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockc") is not None
    kruise_writes_status(custom, namespace, "rollouts-mockc")
    reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockc")
    assert peers.api.served(KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockc") is None
    condition = served_condition(read(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-mockc"))
    assert condition["reason"] == "OwnedByPeerController"


def test_a_rollout_with_a_finalizer_of_kruise_is_refused(
    peers: PeerController, custom: client.CustomObjectsApi, namespace: str
) -> None:
    body = rollout("rollouts-final", "mocka-v1")
    body["metadata"]["finalizers"] = ["rollouts.kruise.io/rollout"]
    create(custom, KRUISE_ROLLOUT_KIND, body, namespace)
    try:
        reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-final")
        assert peers.api.served(KRUISE_ROLLOUT_KIND, namespace, "rollouts-final") is None
        condition = served_condition(read(peers, KRUISE_ROLLOUT_KIND, namespace, "rollouts-final"))
        assert "finalizer rollouts.kruise.io/rollout" in condition["message"]
    finally:
        try:
            custom.patch_namespaced_custom_object(
                KRUISE_ROLLOUT_KIND.group, KRUISE_ROLLOUT_KIND.version, namespace, KRUISE_ROLLOUT_KIND.plural,
                "rollouts-final", {"metadata": {"finalizers": None}}, _content_type=MERGE)
        except ApiException as error:
            if error.status != 404:
                raise


def test_a_lone_rollout_is_refused_naming_what_to_add(
    peers: PeerController, custom: client.CustomObjectsApi, namespace: str
) -> None:
    body = rollout("podinfo", "podinfo")
    canary = body["spec"]["strategy"]["canary"]
    del canary["patchPodTemplateMetadata"]
    canary["trafficRoutings"] = [{"service": "podinfo"}]
    create(custom, KRUISE_ROLLOUT_KIND, body, namespace)
    reconcile(peers, KRUISE_ROLLOUT_KIND, namespace, "podinfo")
    assert peers.api.served(KRUISE_ROLLOUT_KIND, namespace, "podinfo") is None
    condition = served_condition(read(peers, KRUISE_ROLLOUT_KIND, namespace, "podinfo"))
    assert condition["reason"] == "LoneRollout"
    assert "patchPodTemplateMetadata.labels" in condition["message"]
