"""Planning a reconcile and the status it leads to, from raw objects, without a cluster."""

from __future__ import annotations

import copy

import pytest
import yaml

from lanes.importers import convert_document
from lanes.operator.conditions import (
    describe,
    group_status,
    lane_status,
    orphan_lane_status,
    same_status,
    set_condition,
)
from lanes.kube.ownership import owner_among, owners
from lanes.operator.plan import Inputs, lane_bodies_of, plan_group
from lanes.render import render_group
from lanes.render.observe import PodView
from tests.conftest import REFERENCE

DOCS = [convert_document(d) for d in yaml.safe_load_all((REFERENCE / "asm-mock-chain-inputs.yaml").read_text()) if d]
GROUP = next(d for d in DOCS if d["kind"] == "SwimLaneGroup")
LANES = [d for d in DOCS if d["kind"] == "SwimLane"]
SERVICES = {f"default/{s}": {"app": s} for s in ("mocka", "mockb", "mockc")}
PODS = [
    PodView("default", "a1", {"app": "mocka", "ASM_TRAFFIC_TAG": "base"}, True),
    PodView("default", "a2", {"app": "mocka", "ASM_TRAFFIC_TAG": "canary"}, True),
    PodView("default", "b1", {"app": "mockb", "ASM_TRAFFIC_TAG": "base"}, True),
]
NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def with_generation(body: dict, generation: int = 3) -> dict:
    body = copy.deepcopy(body)
    body["metadata"]["generation"] = generation
    return body


def inputs(group: dict | None = None, lanes: list[dict] | None = None) -> Inputs:
    return Inputs(with_generation(group or GROUP), lanes if lanes is not None else LANES, SERVICES, PODS)


def edited(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = body
    for part in parents:
        target = target[part]
    target[last] = value
    return body


def test_a_valid_group_plans_what_render_gives() -> None:
    plan = plan_group(inputs())
    assert plan.valid and plan.errors == []
    assert plan.lane_names == ["base", "canary"]
    assert plan.observed.ready["default/mocka"] == ["base", "canary"]
    assert plan.desired == render_group(plan.group, plan.lanes, plan.observed)


@pytest.mark.parametrize(
    ("group", "lanes", "expected"),
    [
        pytest.param(edited(GROUP, "spec.flavour", "linkerd"), LANES, "SwimLaneGroup/rollout: spec.flavour", id="bad-flavour"),
        pytest.param(edited(GROUP, "spec.services", []), LANES, "SwimLaneGroup/rollout: spec.services", id="no-services"),
        pytest.param(
            edited(GROUP, "spec.permissiveModeConfiguration.fallbackTarget", "gold"), LANES,
            "spec.permissiveModeConfiguration.fallbackTarget", id="fallback-not-a-lane",
        ),
        pytest.param(GROUP, [LANES[0], edited(LANES[1], "spec.labelSelector", {})], "SwimLane/canary: spec.labelSelector", id="empty-selector"),
        pytest.param(GROUP, [LANES[0], edited(LANES[1], "spec.labelSelector", LANES[0]["spec"]["labelSelector"])], "selects the same pods", id="same-selector"),
    ],
)
def test_invalid_input_plans_nothing_and_names_the_field(group, lanes, expected) -> None:
    plan = plan_group(inputs(group, lanes))
    assert not plan.valid and plan.desired is None
    assert expected in "; ".join(str(e) for e in plan.errors)


def test_lanes_of_other_groups_are_left_out() -> None:
    stranger = edited(LANES[1], "metadata.labels", {"swimlane-group": "other"})
    assert [b["metadata"]["name"] for b in lane_bodies_of("rollout", [stranger, *LANES])] == ["base", "canary"]


def test_owners_cover_every_flavour() -> None:
    versions = {api_version for api_version, _ in owners("rollout")}
    assert versions == {"networking.istio.io/v1", "networking.istio.io/v1alpha3"}


def conditions_by_type(status: dict) -> dict:
    return {c["type"]: c for c in status["conditions"]}


def test_group_status_when_routes_are_in_force() -> None:
    plan = plan_group(inputs())
    status = group_status(plan, None, NOW, generated=7)
    ready, degraded = conditions_by_type(status)["Ready"], conditions_by_type(status)["Degraded"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "RoutesInForce", 3)
    assert (degraded["status"], degraded["reason"]) == ("False", "AsExpected")
    assert status["lanes"] == [
        {"name": "base", "services": ["default/mocka", "default/mockb"]},
        {"name": "canary", "services": ["default/mocka"]},
    ]
    assert status["generated"] == 7 and status["observedGeneration"] == 3


def test_transition_time_moves_only_when_status_flips() -> None:
    plan = plan_group(inputs())
    first = group_status(plan, None, NOW, generated=7)
    again = group_status(plan, first, LATER, generated=7)
    assert again == first and same_status(again, first)
    broken = plan_group(inputs(edited(GROUP, "spec.flavour", "linkerd")))
    flipped = group_status(broken, first, LATER)
    assert conditions_by_type(flipped)["Ready"]["lastTransitionTime"] == LATER


def test_invalid_group_status_names_the_field_and_keeps_lanes() -> None:
    good = group_status(plan_group(inputs()), None, NOW, generated=7)
    plan = plan_group(inputs(edited(GROUP, "spec.flavour", "linkerd")))
    status = group_status(plan, good, LATER)
    ready, degraded = conditions_by_type(status)["Ready"], conditions_by_type(status)["Degraded"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "spec.flavour" in degraded["message"]
    assert status["generated"] == 7


def test_pruned_fields_degrade_but_stay_ready() -> None:
    status = group_status(
        plan_group(inputs()), None, NOW, generated=7,
        dropped={"VirtualService istio-system/x": ["spec.http[0].route[0].fallback"]},
    )
    found = conditions_by_type(status)
    assert found["Ready"]["status"] == "True"
    assert found["Degraded"]["reason"] == "FieldsPruned"
    assert "spec.http[0].route[0].fallback" in found["Degraded"]["message"]


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_owner_among_finds_the_group_that_generated_an_object(flavour) -> None:
    obj = plan_group(inputs(edited(GROUP, "spec.flavour", flavour))).desired[-1]
    assert owner_among(["other", GROUP["metadata"]["name"]], obj) == GROUP["metadata"]["name"]
    assert owner_among(["other"], obj) is None
    assert owner_among([GROUP["metadata"]["name"]], {"metadata": {"labels": {}}}) is None


def born(body: dict, name: str, created: str, deleting: bool = False) -> dict:
    body = edited(body, "metadata.name", name)
    body["metadata"]["creationTimestamp"] = created
    if deleting:
        body["metadata"]["deletionTimestamp"] = created
    return body


MINE = born(GROUP, GROUP["metadata"]["name"], "2026-01-02T00:00:00Z")


def held_inputs(others: list[dict], held: dict[str, set[str]] | None = None, group: dict = MINE) -> Inputs:
    routed = {key: frozenset(groups) for key, groups in (held or {}).items()}
    return Inputs(with_generation(group), LANES, SERVICES, PODS, others, routed)


OLDER = born(GROUP, "older", "2026-01-01T00:00:00Z")
NEWER = born(GROUP, "newer", "2026-01-03T00:00:00Z")


@pytest.mark.parametrize(
    ("others", "held", "expected"),
    [
        pytest.param(
            [OLDER], {}, "service default/mocka belongs to SwimLaneGroup older, created earlier",
            id="an-older-group-listing-it",
        ),
        pytest.param(
            [NEWER], {"default/mockb": {"newer"}}, "service default/mockb is routed by SwimLaneGroup newer",
            id="routes-in-force-win-over-age",
        ),
        pytest.param(
            [OLDER], {"default/mockb": {"older", "rollout"}},
            "service default/mockb is routed by SwimLaneGroup older",
            id="of-two-groups-routing-it-the-older",
        ),
    ],
)
def test_a_service_another_group_holds_keeps_every_route_back(others, held, expected) -> None:
    plan = plan_group(held_inputs(others, held))
    assert not plan.valid and plan.reason == "Conflict"
    assert expected in describe(plan.errors)
    assert "a service belongs to one group" in describe(plan.errors)
    assert all(e.path.startswith("spec.services[") for e in plan.errors)
    status = conditions_by_type(group_status(plan, None, NOW))
    assert (status["Ready"]["status"], status["Ready"]["reason"]) == ("False", "Conflict")
    assert (status["Degraded"]["status"], status["Degraded"]["reason"]) == ("True", "Conflict")
    lane = conditions_by_type(lane_status(plan, LANES[0], NOW))
    assert lane["Ready"]["reason"] == "Conflict" and plan.name in lane["Ready"]["message"]


@pytest.mark.parametrize(
    ("others", "held"),
    [
        pytest.param([NEWER], {}, id="a-newer-group-listing-it"),
        pytest.param(
            [OLDER], {k: {"rollout"} for k in SERVICES}, id="its-own-routes-in-force-against-an-older-group"
        ),
        pytest.param([NEWER], {k: {"rollout", "newer"} for k in SERVICES}, id="routed-by-a-newer-group-too"),
        pytest.param(
            [born(GROUP, "going", "2026-01-01T00:00:00Z", deleting=True)], {}, id="an-older-group-being-deleted"
        ),
        pytest.param(
            [born(edited(GROUP, "spec.services", [{"name": "mockz", "namespace": "default"}]), "older", "2026-01-01T00:00:00Z")],
            {},
            id="an-older-group-on-other-services",
        ),
    ],
)
def test_services_no_other_group_holds_are_routed(others, held) -> None:
    plan = plan_group(held_inputs(others, held))
    assert plan.valid, describe(plan.errors)


def test_other_errors_keep_their_reason_next_to_a_conflict() -> None:
    broken = edited(MINE, "spec.permissiveModeConfiguration.fallbackTarget", "gold")
    plan = plan_group(held_inputs([OLDER], group=broken))
    assert plan.reason == "InvalidSpec"
    assert "fallbackTarget" in describe(plan.errors) and "created earlier" in describe(plan.errors)


def test_apply_failure_is_not_ready() -> None:
    status = group_status(plan_group(inputs()), None, NOW, failure=("ApplyFailed", "403 Forbidden: no"))
    assert conditions_by_type(status)["Ready"]["reason"] == "ApplyFailed"


def test_lane_status_for_own_and_group_errors() -> None:
    lanes = [LANES[0], edited(LANES[1], "spec.labelSelector", {})]
    plan = plan_group(inputs(lanes=lanes))
    canary = lane_status(plan, with_generation(lanes[1], 2), NOW)
    base = lane_status(plan, lanes[0], NOW)
    assert conditions_by_type(canary)["Ready"]["reason"] == "InvalidSpec"
    assert conditions_by_type(canary)["Ready"]["observedGeneration"] == 2
    assert conditions_by_type(base)["Ready"]["reason"] == "GroupInvalid"


def test_lane_status_lists_services_with_ready_pods() -> None:
    plan = plan_group(inputs())
    status = lane_status(plan, LANES[1], NOW)
    assert status["services"] == ["default/mocka"]
    assert conditions_by_type(status)["Ready"]["status"] == "True"


def test_orphan_lane() -> None:
    status = orphan_lane_status(LANES[1], "rollout", NOW)
    assert conditions_by_type(status)["Ready"]["reason"] == "GroupNotFound"


def test_same_status_treats_none_as_absent() -> None:
    assert same_status({"a": 1, "message": None}, {"a": 1, "other": 2})
    assert not same_status({"a": 1, "message": None}, {"a": 1, "message": "x"})
    assert not same_status({"a": 1}, None)


def test_set_condition_without_previous() -> None:
    condition = set_condition([], "Ready", True, "R", "m", None, NOW)
    assert condition == {"type": "Ready", "status": "True", "reason": "R", "message": "m", "lastTransitionTime": NOW}
