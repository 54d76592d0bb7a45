"""Peer objects served as they are: what is applied for one, its status, and the refusals."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lanes.importers.served import (
    KRUISE_ROLLOUT_KIND,
    PEER_KINDS,
    SERVED_CONDITION,
    SERVED_LABEL,
    owner_of_served,
    owning_controller,
    parse_peer_key,
    peer_key,
    peer_kind_of,
    peer_status,
    plan_serving,
    served_document,
)

INPUTS = Path(__file__).resolve().parents[1] / "testdata" / "reference" / "asm-mock-chain-inputs.yaml"
OURS = ("lanes", "lanes-served")


def peers() -> list[dict]:
    """The mock chain's peer objects as the API server returns them."""
    found = []
    for n, doc in enumerate(d for d in yaml.safe_load_all(INPUTS.read_text()) if d):
        kind = peer_kind_of(doc)
        if kind is None:
            continue
        doc["metadata"].update(uid=f"uid-{n}", generation=1,
                               **({"namespace": "default"} if kind.namespaced else {}))
        found.append(doc)
    return found


def by_name(name: str) -> dict:
    return copy.deepcopy(next(p for p in peers() if p["metadata"]["name"] == name))


def served_condition(status: dict) -> dict:
    [found] = [c for c in status["conditions"] if c["type"] == SERVED_CONDITION]
    return found


def test_the_mock_chain_has_every_peer_kind() -> None:
    assert {peer_kind_of(p) for p in peers()} == set(PEER_KINDS)


@pytest.mark.parametrize("peer", peers(), ids=lambda p: f"{p['kind']}-{p['metadata']['name']}")
def test_each_peer_object_becomes_its_served_kind_owned_by_it(peer: dict) -> None:
    kind = peer_kind_of(peer)
    assert kind is not None
    document = served_document(peer)
    assert document["kind"] == kind.served_kind
    assert document["metadata"]["name"] == peer["metadata"]["name"]
    assert document["metadata"]["labels"][SERVED_LABEL] == kind.label
    [owner] = document["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (peer["kind"], peer["metadata"]["uid"], True)
    assert ("namespace" in document["metadata"]) == kind.namespaced
    assert owner_of_served(document) == peer_key(kind, peer["metadata"].get("namespace"), peer["metadata"]["name"])


@pytest.mark.parametrize("peer", peers(), ids=lambda p: f"{p['kind']}-{p['metadata']['name']}")
def test_keys_read_back(peer: dict) -> None:
    kind = peer_kind_of(peer)
    assert kind is not None
    key = peer_key(kind, peer["metadata"].get("namespace"), peer["metadata"]["name"])
    assert parse_peer_key(key) == (kind, peer["metadata"].get("namespace"), peer["metadata"]["name"])


def test_a_new_peer_object_is_applied_and_reports_served() -> None:
    peer = by_name("rollouts-mocka")
    plan = plan_serving(peer, None, OURS)
    assert plan.apply == served_document(peer)
    assert not plan.delete
    assert plan.status is not None
    assert served_condition(plan.status)["status"] == "True"
    assert plan.status["phase"] == "Initial"


def test_nothing_is_written_once_live_and_status_agree() -> None:
    peer = by_name("rollouts-mocka")
    live = {**served_document(peer), "status": {"phase": "Healthy"}}
    live["metadata"] = {**live["metadata"], "generation": 1, "uid": "served"}
    live["spec"] = {**live["spec"], "defaulted": True}
    peer["status"] = peer_status(peer, live)
    plan = plan_serving(peer, live, OURS)
    assert (plan.apply, plan.delete, plan.status) == (None, False, None)


@pytest.mark.parametrize(("phase", "paused", "kruise_phase", "reason"), [
    ("Progressing", False, "Progressing", "InRolling"),
    ("Paused", False, "Progressing", "InRolling"),
    ("Paused", True, "Progressing", "Paused"),
    ("Promoting", False, "Progressing", "Finalising"),
    ("RollingBack", False, "Progressing", "Cancelling"),
    ("Healthy", False, "Healthy", "Completed"),
])
def test_a_rollout_reports_in_kruise_layout(phase: str, paused: bool, kruise_phase: str, reason: str) -> None:
    peer = by_name("rollouts-mockb")
    live = {**served_document(peer), "status": {
        "phase": phase, "paused": paused, "observedGeneration": 3,
        "canaryStatus": {"stableRevision": "a", "canaryRevision": "b", "currentStepIndex": 1,
                         "currentStepState": "Completed" if phase == "Healthy" else "StepPaused",
                         "canaryReplicas": 1, "canaryReadyReplicas": 1}}}
    live["metadata"] = {**live["metadata"], "generation": 3}
    status = peer_status(peer, live)
    assert status["phase"] == kruise_phase
    assert status["observedGeneration"] == 1
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == reason
    assert status["canaryStatus"]["podTemplateHash"] == "b"
    assert ("Succeeded" in {c["type"] for c in status["conditions"]}) == (phase == "Healthy")


def test_a_served_object_behind_its_spec_gives_no_observed_generation() -> None:
    peer = by_name("rollout")
    live = {**served_document(peer), "status": {"observedGeneration": 1}}
    live["metadata"] = {**live["metadata"], "generation": 2}
    assert "observedGeneration" not in peer_status(peer, live)


@pytest.mark.parametrize(("marks", "named"), [
    ({"finalizers": ["rollouts.kruise.io/rollout"]}, "finalizer rollouts.kruise.io/rollout"),
    ({"managedFields": [{"manager": "kruise-rollout", "operation": "Update", "subresource": "status"}]},
     "status written by field manager 'kruise-rollout'"),
], ids=["finalizer", "status-manager"])
def test_a_rollout_its_controller_runs_is_refused_and_what_was_served_deleted(marks: dict, named: str) -> None:
    peer = by_name("rollouts-mockc")
    peer["metadata"].update(marks)
    assert owning_controller(peer, OURS) == named
    live = served_document(peer)
    plan = plan_serving(peer, live, OURS)
    assert plan.apply is None and plan.delete
    assert plan.status is not None
    condition = served_condition(plan.status)
    assert (condition["status"], condition["reason"]) == ("False", "OwnedByPeerController")
    assert named in condition["message"]
    peer["status"] = plan.status
    again = plan_serving(peer, None, OURS)
    assert (again.apply, again.delete, again.status) == (None, False, None)


def test_our_own_writes_and_a_users_apply_are_no_mark() -> None:
    peer = by_name("rollouts-mocka")
    peer["metadata"]["managedFields"] = [
        {"manager": "kubectl", "operation": "Apply"},
        {"manager": "lanes", "operation": "Update", "subresource": "status"},
    ]
    peer["metadata"]["finalizers"] = ["example.com/other"]
    assert owning_controller(peer, OURS) is None


def test_a_lone_rollout_is_refused_naming_what_to_add() -> None:
    peer = by_name("rollouts-mocka")
    canary = peer["spec"]["strategy"]["canary"]
    del canary["patchPodTemplateMetadata"]
    canary["trafficRoutings"] = [{"service": "mocka"}]
    plan = plan_serving(peer, None, OURS)
    assert plan.apply is None and plan.status is not None
    assert served_condition(plan.status)["reason"] == "LoneRollout"


def test_a_name_someone_else_holds_is_left_alone() -> None:
    peer = by_name("base")
    theirs = {"apiVersion": "lanes.dev/v1alpha1", "kind": "SwimLane", "metadata": {"name": "base"}}
    plan = plan_serving(peer, theirs, OURS)
    assert plan.apply is None and not plan.delete
    assert plan.status is not None
    assert served_condition(plan.status)["reason"] == "NameTaken"


def test_a_spec_that_does_not_convert_is_refused_naming_the_field() -> None:
    peer = by_name("rollouts-mocka")
    peer["spec"]["workloadRef"]["kind"] = "CloneSet"
    plan = plan_serving(peer, None, OURS)
    assert plan.apply is None
    assert plan.status is not None
    condition = served_condition(plan.status)
    assert condition["reason"] == "Invalid"
    assert "spec.workloadRef.kind" in condition["message"]


def test_the_kruise_kind_is_the_v1beta1_rollout() -> None:
    assert (KRUISE_ROLLOUT_KIND.api_version, KRUISE_ROLLOUT_KIND.plural) == ("rollouts.kruise.io/v1beta1", "rollouts")
