"""What the transitions produce: the canary applied, templates restored, conditions, timers,
and the changes made when a rollout is deleted."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from lanes.rollout import (
    ApplyCanary,
    ClearIntent,
    DeleteCanary,
    DeploymentView,
    Observed,
    PauseBase,
    RestoreBaseTemplate,
    ScaleCanary,
    UnpauseBase,
    plan_finalize,
    plan_step,
    template_hash,
)
from lanes.rollout.status import timestamp

from .rollout_fixtures import (
    HEALTHY,
    LONG_AGO,
    NOW,
    REV,
    TIMED,
    TWO_STEPS,
    V1,
    V2,
    V3,
    Case,
    base,
    canary,
    case_rollout,
    held,
    observed,
    plan_case,
    replica_set,
    status,
)
from .rollout_sim import rollout

def test_start_applies_the_canary_for_the_new_revision() -> None:
    plan = plan_case(Case(HEALTHY, observed(base(V2, paused=True)), ""))
    (apply,) = [a for a in plan.actions if isinstance(a, ApplyCanary)]
    assert apply.name == "mocka-v1-canary"
    assert apply.deployment["metadata"]["annotations"]["lanes.dev/revision"] == REV[V2]
    assert plan.status.canary_status.stable_revision == REV[V1]
    assert plan.status.canary_status.canary_revision == REV[V2]
    assert plan.status.canary_status.last_update_time == timestamp(NOW)
    assert plan.requeue_after == 0


def test_restart_points_the_canary_at_the_newest_revision() -> None:
    seen = observed(base(V3, paused=True), canary())
    plan = plan_case(Case(status("Paused", "StepPaused"), seen, ""))
    (apply,) = [a for a in plan.actions if isinstance(a, ApplyCanary)]
    assert apply.deployment["metadata"]["annotations"]["lanes.dev/revision"] == REV[V3]
    assert plan.status.canary_status.canary_revision == REV[V3]
    assert plan.status.canary_status.stable_revision == REV[V1]


def test_undo_writes_back_the_stable_replica_set_template() -> None:
    case = Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), "",
                annotations={"lanes.dev/undo": "now"})
    plan = plan_case(case)
    (restore,) = [a for a in plan.actions if isinstance(a, RestoreBaseTemplate)]
    assert restore.name == "mocka-v1"
    assert template_hash(restore.template) == REV[V1]
    assert "pod-template-hash" not in restore.template["metadata"]["labels"]
    assert plan.changes[0] == restore
    assert ClearIntent("lanes.dev/undo") in plan.followups


def test_promotion_makes_the_canary_revision_stable() -> None:
    plan = plan_case(Case(status("Promoting", "Completed"), observed(base(V2), canary()), ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert plan.status.canary_status.stable_revision == REV[V2]
    assert conditions == {"Progressing": ("False", "Completed"), "Succeeded": ("True", "Promoted")}
    assert DeleteCanary("mocka-v1-canary") in plan.actions


def test_roll_back_ends_with_succeeded_false() -> None:
    plan = plan_case(Case(status("RollingBack", "StepPaused"), observed(base(V1)), ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions == {
        "Progressing": ("False", "Cancelled"),
        "Succeeded": ("False", "RolledBack"),
    }
    assert plan.status.canary_status.stable_revision == REV[V1]


def test_in_progress_conditions_are_unknown_success() -> None:
    plan = plan_case(Case(status("Progressing"), observed(canary_obj=canary()), ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions == {"Progressing": ("True", "Paused"), "Succeeded": ("Unknown", "InProgress")}


def test_failed_reports_the_deadline() -> None:
    seen = observed(canary_obj=canary(available=0))
    plan = plan_case(Case(status("Progressing", last=LONG_AGO), seen, ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions["Succeeded"] == ("False", "ProgressDeadlineExceeded")
    assert "0/1 canary pod(s) available after 600s" in plan.status.message


def test_waiting_plans_requeue_for_the_next_deadline() -> None:
    waiting = plan_case(Case(status("Progressing"), observed(canary_obj=canary(available=0)), ""))
    timed = plan_case(Case(status("Progressing", "StepPaused"), observed(canary_obj=canary()), "",
                       spec={"steps": TIMED}))
    approval = plan_case(Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), ""))
    assert waiting.requeue_after == 590
    assert timed.requeue_after == 50
    assert approval.requeue_after is None


def test_next_step_scales_canary_to_a_percentage_of_base() -> None:
    case = Case(status("Progressing", "StepReady"), observed(canary_obj=canary()), "",
                spec={"steps": TWO_STEPS})
    assert ScaleCanary("mocka-v1-canary", 3) in plan_case(case).actions


def test_a_new_template_pauses_an_unpaused_base_first() -> None:
    plan = plan_case(Case(HEALTHY, observed(base(V2)), ""))
    assert plan.changes[0] == PauseBase("mocka-v1")


def test_transition_time_is_kept_while_the_condition_status_holds() -> None:
    first = plan_case(Case(HEALTHY, observed(base(V2, paused=True)), ""))
    later = NOW + timedelta(minutes=1)
    ro = case_rollout(Case(first.status, observed(canary_obj=canary()), ""))
    second = plan_step(ro, observed(canary_obj=canary()), later)
    times = {c.type: c.last_transition_time for c in second.status.conditions}
    assert times == {c.type: c.last_transition_time for c in first.status.conditions}
    assert second.status.phase == "Paused"


def test_a_second_rollout_on_a_driven_deployment_fails_with_conflict_and_touches_nothing() -> None:
    seen = replace(observed(base(V2, paused=True)), driven_by="rollouts-other")
    plan = plan_case(Case(None, seen, ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert plan.status.phase == "Failed"
    assert conditions == {"Progressing": ("False", "Conflict"), "Succeeded": ("False", "Conflict")}
    assert plan.status.message == (
        "Deployment mocka-v1 is already driven by workloadrollout/rollouts-other; "
        "a Deployment takes one rollout at a time"
    )
    assert plan.changes == ()
    assert [(e.reason, e.type) for e in plan.followups] == [("Conflict", "Warning")]
    again = plan_step(case_rollout(Case(plan.status, seen, "")), seen, NOW)
    assert again.status == plan.status and again.actions == ()


def test_a_conflicted_rollout_starts_afresh_once_the_deployment_is_free() -> None:
    seen = replace(observed(base(V1), sets=[replica_set()]), driven_by="rollouts-other")
    failed = plan_case(Case(None, seen, "")).status
    free = replace(seen, driven_by=None)
    plan = plan_step(case_rollout(Case(failed, free, "")), free, NOW)
    assert plan.status.phase == "Healthy"
    assert plan.status.conditions == []
    assert plan.status.canary_status.stable_revision == REV[V1]


def test_a_rollout_that_never_drove_the_deployment_leaves_it_alone_when_deleted() -> None:
    seen = replace(observed(held(base(V2, paused=True))), driven_by="rollouts-other")
    ro = rollout().model_copy(update={"status": status("Failed", None, 0, canary_rev=None)})
    assert plan_finalize(ro, seen) == ()


# --- finalize ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "seen", "expected"),
    [
        pytest.param(
            status("Paused", "StepPaused"),
            observed(canary_obj=canary()),
            [RestoreBaseTemplate, DeleteCanary, UnpauseBase],
            id="mid-steps-restores-stable",
        ),
        pytest.param(
            status("RollingBack", "StepPaused"),
            observed(base(V1, paused=True)),
            [UnpauseBase],
            id="rolling-back-finishes",
        ),
        pytest.param(
            status("Promoting", "Completed"),
            observed(base(V2, updated=1), canary()),
            [DeleteCanary],
            id="promoting-finishes-the-approved-release",
        ),
        pytest.param(HEALTHY, observed(base(V1)), [], id="healthy-nothing"),
        pytest.param(
            HEALTHY,
            observed(base(V2, paused=True)),
            [UnpauseBase],
            id="healthy-releases-a-held-template",
        ),
        pytest.param(
            HEALTHY, observed(base(V1, paused=True)), [], id="healthy-leaves-a-users-pause"
        ),
        pytest.param(
            HEALTHY, observed(held(base(V1))), [UnpauseBase], id="healthy-releases-its-hold"
        ),
        pytest.param(
            status("Paused", "StepPaused"),
            observed(canary_obj=canary(), sets=[]),
            [DeleteCanary],
            id="no-stable-replica-set-leaves-base-paused",
        ),
        pytest.param(
            status("Paused", "StepPaused"),
            Observed(None, (), DeploymentView.from_object(canary())),
            [DeleteCanary],
            id="base-gone",
        ),
        pytest.param(
            status("Paused", "StepPaused"),
            observed(canary_obj=canary(ro=rollout(name="other"))),
            [RestoreBaseTemplate, UnpauseBase],
            id="leaves-a-foreign-canary",
        ),
    ],
)
def test_finalize(before, seen: Observed, expected: list[type]) -> None:
    ro = rollout().model_copy(update={"status": before})
    assert [type(a) for a in plan_finalize(ro, seen)] == expected
