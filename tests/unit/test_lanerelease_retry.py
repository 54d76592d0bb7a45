"""A failed lane release stays failed until retried; retry has every undone member retry."""

from __future__ import annotations

from lanes.rollout.lanerelease import ReleaseObserved, check_release_intent, plan_release

from .test_lanerelease import LANE, NOW, SERVICES, member, release

FAILED = {
    "phase": "Failed", "reason": "AnalysisFailed", "failedChecks": 2,
    "rollouts": [{"name": f"rollouts-{s}", "revision": "v2", "undone": True} for s in SERVICES],
}


def healthy_members() -> ReleaseObserved:
    return ReleaseObserved(LANE, [member(s, phase="Healthy") for s in SERVICES], routed_weight=0)


def test_a_failed_release_asks_nothing_of_its_members_without_a_retry() -> None:
    plan = plan_release(release(FAILED), healthy_members(), NOW)
    assert plan.status.phase == "Failed" and plan.intents == ()


def test_retry_has_each_undone_member_retry_and_starts_from_initial() -> None:
    rel = release(FAILED, annotations={"lanes.dev/retry": "now"})
    plan = plan_release(rel, healthy_members(), NOW)
    assert {(i.rollout, i.intent) for i in plan.intents} == {
        (f"rollouts-{s}", "retry") for s in SERVICES}
    assert plan.status.phase == "Initial"
    assert plan.status.failed_checks == 0 and plan.status.rollouts == []
    assert "lanes.dev/retry" in plan.clear
    assert [e.reason for e in plan.events] == ["Retried"]
    again = plan_release(rel.model_copy(update={"status": plan.status}), healthy_members(), NOW)
    assert again.intents == ()


def test_retry_is_refused_unless_the_release_failed() -> None:
    assert check_release_intent(release(FAILED), "retry") is None
    refused = check_release_intent(release({"phase": "Progressing"}), "retry")
    assert refused is not None and "lanerelease/seed" in refused


def test_a_new_release_waiting_on_members_that_hold_a_failed_revision_says_so() -> None:
    failed = {"failedRevision": {"revision": "v2", "reason": "AnalysisFailed"}}
    held = member("mocka", phase="Healthy")
    held = held.model_copy(update={"status": held.status.model_copy(update={
        "failed_revision": held.status.model_validate(failed).failed_revision})})
    waiting = release({"phase": "Waiting"})
    plan = plan_release(waiting, ReleaseObserved(LANE, [held]), NOW)
    assert plan.status.phase == "Waiting"
    assert "rollouts-mocka, which hold(s) a failed revision" in plan.status.message


def test_a_lane_rolled_back_by_its_checks_marks_the_members_undo_as_a_failure() -> None:
    from lanes.rollout.lanerelease.members import undo_value

    class Draft:
        name = "lanerelease/seed"
        now = NOW
        status = release({"phase": "RollingBack", "reason": "AnalysisFailed"}).status

    assert undo_value(Draft()).endswith(" lanerelease/seed AnalysisFailed")  # type: ignore[arg-type]
    Draft.status = release({"phase": "RollingBack", "reason": "UndoRequested"}).status
    assert " " not in undo_value(Draft()), "a person's undo of the lane fails no revision"  # type: ignore[arg-type]
