"""Every transition of the WorkloadRollout state machine, one reconcile at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lanes.rollout import DeploymentView, Observed

from .rollout_fixtures import (
    HEALTHY,
    LONG_AGO,
    NOW,
    TIMED,
    TWO_STEPS,
    V1,
    V2,
    V3,
    Case,
    base,
    canary,
    held,
    observed,
    plan_case,
    status,
)
from .rollout_sim import rollout

CASES = [
    # Initial
    pytest.param(Case(None, Observed(None), "Initial"), id="initial-waits-for-its-deployment"),
    pytest.param(
        Case(None, observed(base(V1)), "Healthy"), id="initial-to-healthy-on-running-revision"
    ),
    pytest.param(
        Case(None, observed(base(V2, paused=True)), "Healthy"),
        id="initial-base-held-by-webhook-keeps-old-revision-stable",
    ),
    # Healthy
    pytest.param(Case(HEALTHY, observed(base(V1)), "Healthy"), id="healthy-steady"),
    pytest.param(
        Case(HEALTHY, observed(base(V2)), "Progressing", "StepUpgrade", 1,
             ["PauseBase", "ApplyCanary", "Event"]),
        id="healthy-new-template-pauses-base-and-starts-canary",
    ),
    pytest.param(
        Case(HEALTHY, observed(base(V2, paused=True)), "Progressing", "StepUpgrade", 1,
             ["ApplyCanary", "Event"]),
        id="healthy-new-template-already-held",
    ),
    pytest.param(
        Case(HEALTHY, observed(base(V1), canary()), "Healthy", None, 0, ["DeleteCanary"]),
        id="healthy-deletes-leftover-canary",
    ),
    pytest.param(
        Case(HEALTHY, observed(held(base(V1))), "Healthy", None, 0, ["UnpauseBase"]),
        id="healthy-releases-its-hold-when-template-is-back-on-stable",
    ),
    pytest.param(
        Case(HEALTHY, observed(base(V1, paused=True)), "Healthy", None, 0),
        id="healthy-leaves-a-pause-it-did-not-make",
    ),
    pytest.param(
        Case(HEALTHY, observed(base(V2), canary()), "Progressing", "StepUpgrade", 1,
             ["PauseBase", "ApplyCanary", "Event"]),
        id="healthy-start-reuses-a-canary-from-a-lost-status-write",
    ),
    pytest.param(
        Case(HEALTHY, observed(base(V2)), "Healthy", None, 0, ["PauseBase"],
             strategy_paused=True),
        id="healthy-paused-holds-new-template-without-canary",
    ),
    pytest.param(
        Case(HEALTHY, observed(base(V2), canary(ro=rollout(name="other"))), "Failed",
             "StepUpgrade", 1, ["PauseBase", "Event"]),
        id="healthy-new-template-with-foreign-canary-fails",
    ),
    pytest.param(
        Case(status("Paused", "StepPaused"),
             Observed(None, (), DeploymentView.from_object(canary())),
             "Initial", None, None, ["DeleteCanary"]),
        id="base-deleted-mid-rollout-drops-canary",
    ),
    # StepUpgrade
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary(available=0)), "Progressing",
             "StepUpgrade", 1),
        id="upgrade-waits-for-canary-pods",
    ),
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary()), "Paused", "StepPaused", 1,
             ["Event"]),
        id="upgrade-ready-pauses-for-approval",
    ),
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary()), "Progressing", "StepPaused", 1,
             ["Event"], spec={"steps": TIMED}),
        id="upgrade-ready-starts-timed-pause",
    ),
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary(V3)), "Progressing", "StepUpgrade",
             1, ["ApplyCanary"]),
        id="upgrade-updates-stale-canary-template",
    ),
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary(replicas=2)), "Progressing",
             "StepUpgrade", 1, ["ScaleCanary"]),
        id="upgrade-rescales-canary",
    ),
    pytest.param(
        Case(status("Progressing"), observed(base(V2), canary()), "Paused", "StepPaused", 1,
             ["PauseBase", "Event"]),
        id="upgrade-re-pauses-an-unpaused-base",
    ),
    pytest.param(
        Case(status("Progressing", index=1), observed(base(V2, paused=True, replicas=4),
             canary(replicas=4, available=3)), "Paused", "StepPaused", 1, ["Event"],
             spec={"steps": [{"replicas": "100%"}], "failureThreshold": 1}),
        id="upgrade-ready-within-failure-threshold",
    ),
    pytest.param(
        Case(status("Progressing", last=LONG_AGO), observed(canary_obj=canary(available=0)),
             "Failed", "StepUpgrade", 1, ["Event"]),
        id="upgrade-past-deadline-fails",
    ),
    pytest.param(
        Case(status("Progressing"), observed(), "Progressing", "StepUpgrade", 1),
        id="upgrade-waits-for-requested-canary-to-appear",
    ),
    pytest.param(
        Case(status("Progressing", last=LONG_AGO), observed(), "Failed", "StepUpgrade", 1,
             ["Event"]),
        id="upgrade-canary-never-appeared-fails",
    ),
    pytest.param(
        Case(status("Failed", last=LONG_AGO), observed(), "Progressing", "StepUpgrade", 1,
             ["ApplyCanary"]),
        id="failed-re-creates-missing-canary",
    ),
    pytest.param(
        Case(status("Failed", last=LONG_AGO), observed(canary_obj=canary(available=0)), "Failed",
             "StepUpgrade", 1),
        id="failed-stays-failed",
    ),
    pytest.param(
        Case(status("Failed", last=LONG_AGO), observed(canary_obj=canary()), "Paused",
             "StepPaused", 1, ["Event"]),
        id="failed-recovers-when-pods-become-available",
    ),
    # StepPaused
    pytest.param(
        Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), "Paused",
             "StepPaused", 1),
        id="paused-step-waits-for-approval",
    ),
    pytest.param(
        Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), "Progressing",
             "StepReady", 1, ["ClearIntent", "Event"], {"lanes.dev/approve": "1"}),
        id="approve-readies-the-step",
    ),
    pytest.param(
        Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), "Paused",
             "StepPaused", 1, ["ClearIntent", "Event"], {"lanes.dev/approve": "2"}),
        id="approve-of-another-step-is-dropped",
    ),
    pytest.param(
        Case(status("Progressing", "StepUpgrade"), observed(canary_obj=canary(available=0)),
             "Progressing", "StepUpgrade", 1, ["ClearIntent", "Event"], {"lanes.dev/approve": "1"}),
        id="approve-before-pods-are-ready-is-dropped",
    ),
    pytest.param(
        Case(status("Progressing", "StepPaused"), observed(canary_obj=canary()), "Progressing",
             "StepPaused", 1, spec={"steps": TIMED}),
        id="timed-pause-running",
    ),
    pytest.param(
        Case(status("Progressing", "StepPaused", last=NOW - timedelta(seconds=60)),
             observed(canary_obj=canary()), "Progressing", "StepReady", 1, spec={"steps": TIMED}),
        id="timed-pause-over",
    ),
    pytest.param(
        Case(status("Progressing", "StepPaused"), observed(canary_obj=canary()), "Progressing",
             "StepReady", 1, ["ClearIntent", "Event"], {"lanes.dev/approve": "1"},
             spec={"steps": TIMED}),
        id="approve-cuts-a-timed-pause-short",
    ),
    pytest.param(
        Case(status("Paused", "StepPaused"), observed(), "Progressing", "StepUpgrade", 1,
             ["ApplyCanary", "Event"]),
        id="paused-step-re-creates-a-deleted-canary",
    ),
    # StepReady
    pytest.param(
        Case(status("Progressing", "StepReady"), observed(canary_obj=canary()), "Progressing",
             "StepUpgrade", 2, ["ScaleCanary", "Event"], spec={"steps": TWO_STEPS}),
        id="ready-moves-to-next-step",
    ),
    pytest.param(
        Case(status("Progressing", "StepReady"), observed(canary_obj=canary()), "Promoting",
             "Completed", 1, ["UnpauseBase", "Event"]),
        id="ready-on-last-step-promotes",
    ),
    # Promoting
    pytest.param(
        Case(status("Promoting", "Completed"), observed(base(V2, updated=1, available=2),
             canary()), "Promoting", "Completed", 1),
        id="promoting-waits-for-base",
    ),
    pytest.param(
        Case(status("Promoting", "Completed"), observed(base(V2, paused=True), canary()),
             "Promoting", "Completed", 1, ["UnpauseBase"]),
        id="promoting-unpauses-base-again",
    ),
    pytest.param(
        Case(status("Promoting", "Completed"), observed(base(V2), canary()), "Healthy",
             "Completed", 1, ["DeleteCanary", "Event"]),
        id="promoting-done-deletes-canary",
    ),
    # Undo and roll back
    pytest.param(
        Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), "RollingBack",
             "StepPaused", 1, ["RestoreBaseTemplate", "DeleteCanary", "ClearIntent", "Event"],
             {"lanes.dev/undo": "now"}),
        id="undo-restores-stable-template-and-drops-canary",
    ),
    pytest.param(
        Case(status("Promoting", "Completed"), observed(base(V2, updated=1), canary()),
             "RollingBack", "Completed", 1,
             ["RestoreBaseTemplate", "DeleteCanary", "ClearIntent", "Event"],
             {"lanes.dev/undo": "now"}),
        id="undo-during-promotion",
    ),
    pytest.param(
        Case(HEALTHY, observed(base(V1)), "Healthy", None, 0, ["ClearIntent", "Event"],
             {"lanes.dev/undo": "now"}),
        id="undo-with-nothing-in-progress-is-dropped",
    ),
    pytest.param(
        Case(status("RollingBack", "StepPaused"), observed(), "RollingBack", "StepPaused", 1,
             ["RestoreBaseTemplate"]),
        id="rolling-back-restores-template-until-seen",
    ),
    pytest.param(
        Case(status("RollingBack", "StepPaused"), observed(base(V1, paused=True)), "RollingBack",
             "StepPaused", 1, ["UnpauseBase"]),
        id="rolling-back-unpauses-once-template-is-stable",
    ),
    pytest.param(
        Case(status("RollingBack", "StepPaused"), observed(base(V1)), "Healthy", None, 0,
             ["Event"]),
        id="rolling-back-done",
    ),
    pytest.param(
        Case(status("RollingBack", "StepPaused"), observed(canary_obj=canary(), sets=[]),
             "RollingBack", "StepPaused", 1, ["DeleteCanary"]),
        id="rolling-back-without-stable-replica-set-waits",
    ),
    # The base's template moves mid-release
    pytest.param(
        Case(status("Paused", "StepPaused"), observed(base(V3, paused=True), canary()),
             "Progressing", "StepUpgrade", 1, ["ApplyCanary", "Event"]),
        id="newer-template-restarts-canary-in-place",
    ),
    pytest.param(
        Case(status("Progressing", "StepUpgrade", 2), observed(base(V3, paused=True), canary()),
             "Progressing", "StepUpgrade", 1, ["ApplyCanary", "Event"], spec={"steps": TWO_STEPS}),
        id="newer-template-restarts-at-step-1",
    ),
    pytest.param(
        Case(status("Paused", "StepPaused"), observed(base(V1, paused=True), canary()),
             "RollingBack", "StepPaused", 1, ["DeleteCanary", "UnpauseBase", "Event"]),
        id="template-set-back-to-stable-rolls-back",
    ),
    # Pause and resume
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary(available=0)), "Paused",
             "StepUpgrade", 1, ["ClearIntent", "Event"], {"lanes.dev/pause": "now"}),
        id="pause-intent-stops-the-step",
    ),
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary()), "Paused", "StepUpgrade", 1,
             strategy_paused=True),
        id="spec-pause-stops-the-step",
    ),
    pytest.param(
        Case(status("Paused", paused=True), observed(canary_obj=canary()), "Paused",
             "StepUpgrade", 1),
        id="paused-does-not-advance",
    ),
    pytest.param(
        Case(status("Paused", paused=True), observed(base(V3, paused=True), canary()), "Paused",
             "StepUpgrade", 1),
        id="paused-does-not-restart-on-newer-template",
    ),
    pytest.param(
        Case(status("Paused", paused=True), observed(canary_obj=canary()), "Progressing",
             "StepUpgrade", 1, ["ClearIntent", "Event"], {"lanes.dev/resume": "now"}),
        id="resume-intent-continues",
    ),
    pytest.param(
        Case(status("Paused"), observed(canary_obj=canary(available=0)), "Progressing",
             "StepUpgrade", 1),
        id="spec-pause-lifted-continues",
    ),
    pytest.param(
        Case(status("Paused", "StepPaused", paused=True), observed(canary_obj=canary()),
             "Paused", "StepPaused", 1, ["ClearIntent", "Event"], {"lanes.dev/resume": "now"}),
        id="resume-at-approval-wait-still-waits",
    ),
    pytest.param(
        Case(status("Progressing"), observed(canary_obj=canary(available=0)), "Progressing",
             "StepUpgrade", 1, ["ClearIntent", "ClearIntent", "Event"],
             {"lanes.dev/pause": "a", "lanes.dev/resume": "b"}),
        id="pause-and-resume-together-are-both-dropped",
    ),
    pytest.param(
        Case(status("Promoting", "Completed"), observed(base(V2), canary()), "Healthy",
             "Completed", 1, ["DeleteCanary", "Event"], strategy_paused=True),
        id="spec-pause-does-not-stop-promotion",
    ),
    # Unsupported
    pytest.param(
        Case(None, observed(base(V1)), "Failed", None, None, ["Event"],
             spec={"enableExtraWorkloadForCanary": False}),
        id="in-place-canary-is-unsupported",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_transition(case: Case) -> None:
    plan = plan_case(case)
    canary_status = plan.status.canary_status
    assert plan.status.phase == case.phase, plan.status.message
    if case.index is not None:
        assert canary_status is not None
        assert canary_status.current_step_state == case.state
        assert canary_status.current_step_index == case.index
    assert [type(a).__name__ for a in plan.actions] == case.actions, plan.status.message
    assert plan.status.observed_generation == 1

