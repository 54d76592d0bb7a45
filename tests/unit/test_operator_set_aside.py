"""A lane made invalid by its own edit is set aside; anything else holds the group back."""

from __future__ import annotations

import copy

from lanes.operator.conditions import group_status, lane_status
from lanes.operator.plan import Inputs, plan_group

from .test_operator_plan import GROUP, LANES, NOW, PODS, SERVICES, conditions_by_type, with_generation


def in_force(group: dict, lanes: list[dict]) -> tuple[dict, list[dict]]:
    """The group and lanes as they read once their routes were put in force."""
    group = with_generation(group)
    group["status"] = {"generationInForce": 3}
    recorded = []
    for lane in lanes:
        lane = copy.deepcopy(lane)
        lane["status"] = {"specInForce": copy.deepcopy(lane["spec"])}
        recorded.append(lane)
    return group, recorded


def duplicating_base(lane: dict) -> dict:
    lane = copy.deepcopy(lane)
    lane["spec"]["labelSelector"] = dict(LANES[0]["spec"]["labelSelector"])
    return lane


GOOD = plan_group(Inputs(with_generation(GROUP), LANES, SERVICES, PODS)).desired


def test_an_edited_lane_keeps_its_last_valid_spec_in_force() -> None:
    group, lanes = in_force(GROUP, LANES)
    lanes[1] = {**duplicating_base(lanes[1]), "status": lanes[1]["status"]}
    plan = plan_group(Inputs(group, lanes, SERVICES, PODS))
    canary = LANES[1]["metadata"]["name"]
    assert plan.valid and plan.desired == GOOD
    assert set(plan.aside) == {canary} and plan.kept == {canary}
    status = lane_status(plan, lanes[1], NOW)
    ready = conditions_by_type(status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.labelSelector: selects the same pods as lane" in ready["message"]
    assert status["specInForce"] == LANES[1]["spec"], "the spec in force is not overwritten"
    base = conditions_by_type(lane_status(plan, lanes[0], NOW))["Ready"]
    assert base["status"] == "True"
    group_ready = conditions_by_type(group_status(plan, None, NOW, generated=len(GOOD)))["Ready"]
    assert group_ready["status"] == "False" and f"lanes set aside: SwimLane/{canary}" in group_ready["message"]


def test_a_new_invalid_lane_is_not_rendered() -> None:
    group, lanes = in_force(GROUP, LANES)
    rogue = duplicating_base(LANES[1])
    rogue["metadata"] = {**rogue["metadata"], "name": "rogue"}
    plan = plan_group(Inputs(group, [*lanes, rogue], SERVICES, PODS))
    assert plan.valid and plan.desired == GOOD
    assert set(plan.aside) == {"rogue"} and plan.kept == set()
    assert "its routes are not rendered" in conditions_by_type(lane_status(plan, rogue, NOW))["Ready"]["message"]


def test_a_group_changed_since_its_routes_were_in_force_is_held_back_whole() -> None:
    group, lanes = in_force(GROUP, LANES)
    group["status"] = {"generationInForce": 2}
    lanes[1] = {**duplicating_base(lanes[1]), "status": lanes[1]["status"]}
    plan = plan_group(Inputs(group, lanes, SERVICES, PODS))
    assert not plan.valid and plan.aside == {}
    assert conditions_by_type(lane_status(plan, lanes[0], NOW))["Ready"]["reason"] == "GroupInvalid"


def test_a_lane_broken_by_something_else_than_its_own_edit_holds_the_group_back() -> None:
    lanes = [LANES[0], duplicating_base(LANES[1])]
    group, recorded = in_force(GROUP, lanes)
    plan = plan_group(Inputs(group, recorded, SERVICES, PODS))
    assert not plan.valid and plan.aside == {}
