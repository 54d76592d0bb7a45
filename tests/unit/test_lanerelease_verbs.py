"""promote --full and abort on a lane release: the remaining steps skipped and every member
promoted together; the lane rolled back with every member's revision recorded as failed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lanes.rollout.intents import ANNOTATIONS
from lanes.rollout.lanerelease import ReleaseObserved, check_release_intent, plan_release
from lanes.rollout.lanerelease.members import undo_value

from .test_lanerelease import LANE, NOW, SERVICES, advance, member, release, rollouts, started


def asked(rel, **annotations: str):
    return rel.model_copy(update={"metadata": rel.metadata.model_copy(
        update={"annotations": annotations})})


def test_promote_full_skips_the_remaining_steps_and_promotes_every_member_together() -> None:
    rel = started()
    assert rel.status.current_step_index == 1
    plan = plan_release(asked(rel, **{ANNOTATIONS["promote"]: "t"}), ReleaseObserved(
        LANE, rollouts()), NOW)
    assert (plan.status.phase, plan.status.weight) == ("Promoting", 100)
    assert plan.clear == (ANNOTATIONS["promote"],)
    assert "FullPromotionRequested" in [e.reason for e in plan.events]
    assert plan.check is None
    rel = advance(rel, plan)
    routed = ReleaseObserved(LANE, rollouts(), routed_weight=100)
    rel = advance(rel, plan_release(rel, routed, NOW + timedelta(seconds=1)))
    plan = plan_release(rel, routed, NOW + timedelta(seconds=30))
    assert {(i.rollout, i.intent) for i in plan.intents} == {
        (f"rollouts-{s}", "approve") for s in SERVICES}


def test_promote_full_of_a_paused_release_unpauses_it() -> None:
    rel = started()
    rel = advance(rel, plan_release(asked(rel, **{ANNOTATIONS["pause"]: "t"}),
                                    ReleaseObserved(LANE, rollouts()), NOW))
    assert rel.status.paused
    plan = plan_release(asked(rel, **{ANNOTATIONS["promote"]: "t"}),
                        ReleaseObserved(LANE, rollouts()), NOW)
    assert plan.status.phase == "Promoting" and not plan.status.paused


def test_promote_full_with_a_member_gone_rolls_the_lane_back_instead() -> None:
    rel = started()
    observed = ReleaseObserved(LANE, rollouts(mockb={"phase": "RollingBack"}))
    plan = plan_release(asked(rel, **{ANNOTATIONS["promote"]: "t"}), observed, NOW)
    assert (plan.status.phase, plan.status.reason) == ("RollingBack", "RolloutFailed")


def test_abort_rolls_the_lane_back_and_fails_every_members_revision() -> None:
    rel = started()
    plan = plan_release(asked(rel, **{ANNOTATIONS["abort"]: "t"}),
                        ReleaseObserved(LANE, rollouts()), NOW)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, "Aborted")
    assert plan.clear == (ANNOTATIONS["abort"],)
    rel = advance(rel, plan)
    routed = ReleaseObserved(LANE, rollouts(), routed_weight=0)
    rel = advance(rel, plan_release(rel, routed, NOW + timedelta(seconds=1)))
    plan = plan_release(rel, routed, NOW + timedelta(seconds=30))
    undos = {(i.rollout, i.intent) for i in plan.intents}
    assert undos == {(f"rollouts-{s}", "undo") for s in SERVICES}
    assert all(i.value.endswith(" lanerelease/seed Aborted") for i in plan.intents)
    rel = advance(rel, plan)
    done = ReleaseObserved(LANE, [member(s, phase="Healthy") for s in SERVICES], routed_weight=0)
    plan = plan_release(rel, done, NOW + timedelta(seconds=40))
    assert (plan.status.phase, plan.status.reason) == ("Failed", "Aborted")


def test_an_aborted_lane_marks_the_members_undo_as_a_failure() -> None:
    class Draft:
        name = "lanerelease/seed"
        now = NOW
        status = release({"phase": "RollingBack", "reason": "Aborted"}).status

    assert undo_value(Draft()).endswith(" lanerelease/seed Aborted")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "intent", "refused"),
    [
        pytest.param({"phase": "Waiting"}, "promote", "no step in progress", id="promote-waiting"),
        pytest.param({"phase": "Promoting"}, "promote", "no step in progress",
                     id="promote-promoting"),
        pytest.param({"phase": "Succeeded"}, "abort", "nothing in its steps to abort",
                     id="abort-succeeded"),
        pytest.param({"phase": "RollingBack"}, "abort", "nothing in its steps to abort",
                     id="abort-rolling-back"),
    ],
)
def test_promote_full_and_abort_are_refused_outside_the_steps(status, intent, refused) -> None:
    said = check_release_intent(release(status), intent)
    assert said is not None and refused in said and "lanerelease/seed" in said


def test_promote_full_is_refused_while_the_spec_pauses_the_release() -> None:
    said = check_release_intent(release({"phase": "Paused"}, paused=True), "promote")
    assert said is not None and "spec.paused" in said


@pytest.mark.parametrize("intent", ["promote", "abort"])
def test_promote_full_and_abort_apply_in_the_steps(intent) -> None:
    assert check_release_intent(release({"phase": "Progressing"}), intent) is None
    assert check_release_intent(release({"phase": "Paused"}), intent) is None
