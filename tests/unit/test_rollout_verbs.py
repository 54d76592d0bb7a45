"""promote --full, abort, restart and undo --to-revision: when each verb applies, and what it does."""

from __future__ import annotations

import pytest

from lanes.rollout import ApplyCanary, Observed, canary_deployment, check_intent, plan_step
from lanes.rollout.canary import RESTARTED_ANNOTATION, TEMPLATE_ANNOTATION
from lanes.rollout.history import check_undo_to, numbered
from lanes.rollout.intents import check_restart, intent_patch, restart_patch
from lanes.rollout.status import timestamp

from .rollout_fixtures import (
    HEALTHY,
    NOW,
    REV,
    TWO_STEPS,
    V1,
    V2,
    V3,
    Case,
    base,
    canary,
    case_rollout,
    observed,
    plan_case,
    replica_set,
    status,
)

IN_STEP_1 = status("Paused", "StepPaused")


@pytest.mark.parametrize(
    ("before", "intent", "refusal"),
    [
        (HEALTHY, "promote", "has no release in progress to promote (phase Healthy)"),
        (status("Promoting", "Completed"), "promote", "is already promoting revision"),
        (status("RollingBack", "StepPaused"), "promote", "is rolling back; it cannot be promoted"),
        (HEALTHY, "abort", "has nothing in progress to abort (phase Healthy)"),
        (status("RollingBack", "StepPaused"), "abort", "is already rolling back"),
        (IN_STEP_1, "promote", None),
        (status("Progressing", "StepUpgrade"), "promote", None),
        (status("Paused", "StepPaused", paused=True), "promote", None),
        (status("Failed", "StepUpgrade"), "promote", None),
        (IN_STEP_1, "abort", None),
        (status("Promoting", "Completed"), "abort", None),
    ],
    ids=["promote-healthy", "promote-promoting", "promote-rolling-back", "abort-healthy",
         "abort-rolling-back", "promote-paused-step", "promote-upgrading", "promote-paused",
         "promote-failed", "abort-in-steps", "abort-promoting"],
)
def test_when_promote_and_abort_apply(before, intent, refusal) -> None:
    said = check_intent(case_rollout(Case(before, observed(), "")), intent)
    if refusal is None:
        assert said is None
    else:
        assert said is not None and said.startswith("workloadrollout/rollouts-mocka ")
        assert refusal in said


def test_promote_full_is_refused_while_the_spec_pauses_the_rollout() -> None:
    found = case_rollout(Case(IN_STEP_1, observed(), "", strategy_paused=True))
    assert "paused by spec.strategy.paused" in (check_intent(found, "promote") or "")


def test_promote_full_is_refused_for_a_member_a_lane_release_holds() -> None:
    found = case_rollout(Case(IN_STEP_1, observed(), "", annotations={"lanes.dev/lane-release": "shop"}))
    assert "promote the lane release instead" in (check_intent(found, "promote") or "")


def test_promote_full_skips_the_remaining_steps() -> None:
    plan = plan_case(Case(IN_STEP_1, observed(canary_obj=canary()), "",
                          annotations={"lanes.dev/promote-full": "now"}, spec={"steps": TWO_STEPS}))
    assert plan.status.phase == "Promoting"
    assert plan.status.canary_status.current_step_state == "Completed"
    names = sorted(type(a).__name__ for a in plan.actions)
    assert names == ["ClearIntent", "Event", "Event", "UnpauseBase"]
    assert [a.annotation for a in plan.actions if hasattr(a, "annotation")] == ["lanes.dev/promote-full"]
    assert "FullPromotionRequested" in [getattr(a, "reason", None) for a in plan.actions]


def test_promote_full_lifts_a_pause_request() -> None:
    plan = plan_case(Case(status("Paused", "StepPaused", paused=True), observed(canary_obj=canary()),
                          "", annotations={"lanes.dev/promote-full": "now"}))
    assert plan.status.phase == "Promoting"
    assert plan.status.paused is False


def test_promote_full_on_a_healthy_rollout_is_dropped_with_the_reason() -> None:
    plan = plan_case(Case(HEALTHY, observed(base(V1)), "", annotations={"lanes.dev/promote-full": "now"}))
    assert plan.status.phase == "Healthy"
    rejected = [a for a in plan.actions if getattr(a, "reason", None) == "IntentRejected"]
    assert rejected and "no release in progress to promote" in rejected[0].message


def test_abort_rolls_back_and_records_the_revision_as_failed() -> None:
    plan = plan_case(Case(IN_STEP_1, observed(canary_obj=canary()), "",
                          annotations={"lanes.dev/abort": "now"}))
    assert plan.status.phase == "RollingBack"
    assert [type(a).__name__ for a in plan.actions] == [
        "RestoreBaseTemplate", "DeleteCanary", "ClearIntent", "Event"]
    failed = plan.status.failed_revision
    assert failed is not None and failed.revision == REV[V2] and failed.reason == "Aborted"
    assert "abort requested" in failed.message


def test_an_aborted_revision_is_held_once_healthy_again() -> None:
    aborted = plan_case(Case(IN_STEP_1, observed(canary_obj=canary()), "",
                             annotations={"lanes.dev/abort": "now"})).status
    healthy = aborted.model_copy(update={"phase": "Healthy"})
    plan = plan_case(Case(healthy, observed(base(V2)), ""))
    assert plan.status.phase == "Healthy"
    assert "ApplyCanary" not in [type(a).__name__ for a in plan.actions]
    assert "Aborted" in (plan.status.message or "")


def test_abort_wins_over_undo_requested_with_it() -> None:
    plan = plan_case(Case(IN_STEP_1, observed(canary_obj=canary()), "",
                          annotations={"lanes.dev/abort": "a", "lanes.dev/undo": "b"}))
    assert plan.status.failed_revision is not None


def test_the_patches_name_their_annotations() -> None:
    found = case_rollout(Case(IN_STEP_1, observed(), ""))
    assert intent_patch(found, "promote", NOW) == {
        "metadata": {"annotations": {"lanes.dev/promote-full": timestamp(NOW)}}}
    assert intent_patch(found, "abort", NOW) == {
        "metadata": {"annotations": {"lanes.dev/abort": timestamp(NOW)}}}
    assert restart_patch(NOW) == {"metadata": {"annotations": {"lanes.dev/restart": timestamp(NOW)}}}


@pytest.mark.parametrize(
    ("before", "refused"),
    [(HEALTHY, True), (status("Promoting", "Completed"), True), (IN_STEP_1, False),
     (status("Progressing", "StepUpgrade"), False), (status("Failed", "StepUpgrade"), False)],
    ids=["healthy", "promoting", "paused-step", "upgrading", "failed"],
)
def test_restart_needs_canary_pods(before, refused) -> None:
    said = check_restart(case_rollout(Case(before, observed(), "")))
    assert (said is not None) == refused
    if refused:
        assert said.startswith("workloadrollout/rollouts-mocka runs no canary pods to restart")


def test_a_restart_is_a_new_canary_template_the_operator_applies() -> None:
    plain = case_rollout(Case(IN_STEP_1, observed(), ""))
    restarted = case_rollout(Case(IN_STEP_1, observed(), "",
                                  annotations={"lanes.dev/restart": "2026-01-01T00:00:00Z"}))
    view = observed().base
    assert view is not None
    before = canary_deployment(plain, view, 1)
    after = canary_deployment(restarted, view, 1)
    assert after["spec"]["template"]["metadata"]["annotations"][RESTARTED_ANNOTATION] == \
        "2026-01-01T00:00:00Z"
    assert RESTARTED_ANNOTATION not in (before["spec"]["template"]["metadata"].get("annotations") or {})
    assert after["metadata"]["annotations"][TEMPLATE_ANNOTATION] != \
        before["metadata"]["annotations"][TEMPLATE_ANNOTATION]
    assert after["metadata"]["annotations"]["lanes.dev/revision"] == REV[V2]

    plan = plan_step(restarted, observed(canary_obj=canary()), NOW)
    assert plan.status.phase == "Paused"
    assert [type(a) for a in plan.actions] == [ApplyCanary]


def history(*images: str, base_image: str = V2) -> Observed:
    """A base on `base_image` whose ReplicaSets ran `images`, numbered from 1."""
    sets = [replica_set(image, number=n) for n, image in enumerate(images, start=1)]
    return Observed.from_objects(base(base_image), sets)


@pytest.mark.parametrize(
    ("before", "seen", "number", "refusal"),
    [
        (HEALTHY, history(V1, V2), 1, None),
        (IN_STEP_1, history(V1, V2, V3), 3, None),
        (HEALTHY, history(V1, V2), 7, "Deployment mocka-v1 has no revision 7 (it keeps 1, 2; "
                                      "spec.revisionHistoryLimit prunes older ones)"),
        (HEALTHY, history(V1, V2), 2, "Deployment mocka-v1 already carries revision 2"),
        (status("Promoting", "Completed"), history(V1, V2), 1,
         "is promoting; undo to a revision once it is Healthy"),
        (HEALTHY, Observed(None), 1, "Deployment mocka-v1 not found; it has no revisions"),
    ],
    ids=["healthy-to-older", "in-steps-to-another", "pruned", "already-there", "promoting",
         "no-deployment"],
)
def test_when_undo_to_a_revision_applies(before, seen, number, refusal) -> None:
    said = check_undo_to(case_rollout(Case(before, seen, "")), seen, number)
    if refusal is None:
        assert said is None
        assert numbered(seen, number) is not None
    else:
        assert said is not None and said.startswith("workloadrollout/rollouts-mocka")
        assert refusal in said


def test_undo_to_a_failed_revision_asks_for_retry_first() -> None:
    aborted = plan_case(Case(IN_STEP_1, observed(canary_obj=canary()), "",
                             annotations={"lanes.dev/abort": "now"})).status
    healthy = aborted.model_copy(update={"phase": "Healthy"})
    seen = history(V2, V1, base_image=V1)
    said = check_undo_to(case_rollout(Case(healthy, seen, "")), seen, 1)
    assert said is not None and "failed (Aborted)" in said and "kubectl lane retry" in said


def test_the_revision_written_back_is_the_template_the_base_ran() -> None:
    seen = history(V1, V2)
    chosen = numbered(seen, 1)
    assert chosen is not None and chosen.revision == REV[V1]
    assert "pod-template-hash" not in chosen.deployment_template["metadata"]["labels"]
