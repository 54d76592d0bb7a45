"""Blue-green lanes: preview at entry 0, a switch to 100 in one move, the old versions held for
`scaleDownDelaySeconds` (a switch back is an undo), then the promotion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from lanes.api.lanerelease import LaneReleaseSpec

from .test_lanerelease import LANE, NOW, ReleaseObserved, advance, plan_release, release, rollouts


def _annotated(rel, **annotations: str):
    return rel.model_copy(update={"metadata": rel.metadata.model_copy(
        update={"annotations": annotations})})


def _previewing(**blue_green: object):
    rel = release(steps=[], analysis=None, blueGreen=blue_green)
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    rel = advance(rel, plan_release(rel, observed, NOW))
    return rel, observed


def test_expands_to_a_preview_then_a_switch_held_for_the_delay() -> None:
    spec = LaneReleaseSpec.model_validate(
        {"swimLaneRef": {"name": "canary"}, "blueGreen": {"scaleDownDelaySeconds": 90}})
    assert [(s.weight, s.pause.duration) for s in spec.all_steps] == [(0, 0), (100, 90)]
    manual = spec.model_copy(update={"blue_green": spec.blue_green.model_copy(
        update={"auto_promotion_enabled": False})})
    assert [(s.weight, s.pause.duration) for s in manual.all_steps] == [(0, None), (100, 90)]


@pytest.mark.parametrize("extra", [{"steps": [{"weight": 10}]}, {"stepWeight": 10}],
                         ids=["steps", "step-weight"])
def test_blue_green_with_steps_is_refused(extra: dict) -> None:
    with pytest.raises(ValidationError, match="give blueGreen or steps"):
        LaneReleaseSpec.model_validate({"swimLaneRef": {"name": "canary"}, "blueGreen": {},
                                        **extra})


def test_preview_enters_no_one_then_the_switch_enters_everyone_in_one_move() -> None:
    rel, observed = _previewing(autoPromotionEnabled=False, scaleDownDelaySeconds=60)
    assert (rel.status.phase, rel.status.current_step_index, rel.status.weight) == (
        "Progressing", 1, 0)
    plan = plan_release(rel, observed, NOW + timedelta(seconds=5))
    assert plan.status.weight == 0 and "waiting for approve" in plan.status.message
    rel = advance(rel, plan_release(_annotated(rel, **{"lanes.dev/approve": "1"}), observed, NOW))
    assert (rel.status.current_step_index, rel.status.weight) == (2, 100)


def test_the_old_versions_are_held_for_the_delay_then_the_lane_is_promoted() -> None:
    rel, observed = _previewing(scaleDownDelaySeconds=60)
    rel = advance(rel, plan_release(rel, observed, NOW))
    assert (rel.status.current_step_index, rel.status.weight) == (2, 100)
    switched = rel.status.step_start_time
    plan = plan_release(rel, observed, NOW + timedelta(seconds=30))
    assert plan.status.phase == "Progressing" and plan.requeue_after == pytest.approx(30, abs=1)
    assert plan.status.step_start_time == switched
    plan = plan_release(rel, observed, NOW + timedelta(seconds=61))
    assert (plan.status.phase, plan.status.weight) == ("Promoting", 100)


def test_a_switch_back_within_the_delay_is_an_undo_taking_everyone_out_at_once() -> None:
    rel, observed = _previewing(scaleDownDelaySeconds=60)
    rel = advance(rel, plan_release(rel, observed, NOW))
    plan = plan_release(_annotated(rel, **{"lanes.dev/undo": "t"}), observed,
                        NOW + timedelta(seconds=10))
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, "UndoRequested")
