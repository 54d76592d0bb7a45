"""Every transition of the WorkloadRollout state machine, one reconcile at a time."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from lanes.api.workloadrollout import CanaryStatus, WorkloadRollout, WorkloadRolloutStatus
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
    canary_deployment,
    plan_finalize,
    plan_step,
    template_hash,
)
from lanes.rollout.status import timestamp

from .rollout_sim import IMAGE, START, deployment, rollout

V1, V2, V3 = (f"{IMAGE}:{tag}" for tag in ("1.0", "2.0", "3.0"))
REV = {image: template_hash(deployment(image=image)["spec"]["template"]) for image in (V1, V2, V3)}
NOW = START + timedelta(minutes=5)
RECENT = NOW - timedelta(seconds=10)
LONG_AGO = NOW - timedelta(seconds=601)


def base(
    image: str = V1,
    paused: bool = False,
    replicas: int = 3,
    updated: int | None = None,
    available: int | None = None,
) -> dict:
    """The base Deployment; by default fully rolled out."""
    obj = deployment(image=image, replicas=replicas)
    obj["metadata"]["generation"] = 4
    obj["spec"]["paused"] = paused
    obj["status"] = {
        "observedGeneration": 4,
        "replicas": replicas,
        "updatedReplicas": replicas if updated is None else updated,
        "availableReplicas": replicas if available is None else available,
    }
    return obj


def replica_set(image: str = V1, replicas: int = 3, number: int = 1) -> dict:
    template = copy.deepcopy(deployment(image=image)["spec"]["template"])
    template["metadata"]["labels"]["pod-template-hash"] = f"h{number}"
    return {
        "metadata": {
            "name": f"mocka-v1-h{number}",
            "annotations": {"deployment.kubernetes.io/revision": str(number)},
            "ownerReferences": [{"uid": "uid-mocka-v1", "controller": True}],
        },
        "spec": {"replicas": replicas, "template": template},
        "status": {"availableReplicas": replicas},
    }


def canary(
    image: str = V2, replicas: int = 1, available: int | None = None, ro: WorkloadRollout | None = None
) -> dict:
    """A canary Deployment as the planner would have applied it, with its status."""
    obj = canary_deployment(ro or rollout(), DeploymentView.from_object(base(image)), replicas)
    obj["metadata"]["generation"] = 1
    ready = replicas if available is None else available
    obj["status"] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": ready,
    }
    return obj


def observed(base_obj: dict | None = None, canary_obj: dict | None = None, sets=None) -> Observed:
    return Observed.from_objects(
        base(V2, paused=True) if base_obj is None else base_obj,
        [replica_set()] if sets is None else sets,
        canary_obj,
    )


def status(
    phase: str,
    state: str | None = "StepUpgrade",
    index: int = 1,
    *,
    canary_rev: str | None = REV[V2],
    paused: bool = False,
    last=RECENT,
    conditions=(),
) -> WorkloadRolloutStatus:
    return WorkloadRolloutStatus(
        phase=phase,
        paused=paused,
        conditions=list(conditions),
        canary_status=CanaryStatus(
            stable_revision=REV[V1],
            canary_revision=canary_rev,
            current_step_index=index,
            current_step_state=state,
            canary_replicas=1,
            last_update_time=timestamp(last),
        ),
    )


HEALTHY = status("Healthy", None, 0, canary_rev=None)
TWO_STEPS = [{"replicas": 1}, {"replicas": "100%"}]
TIMED = [{"replicas": 1, "pause": {"duration": 60}}, {"replicas": 2}]


@dataclass
class Case:
    """One reconcile: the rollout's status and what is observed -> the next state and actions."""

    before: WorkloadRolloutStatus | None
    seen: Observed
    phase: str
    state: str | None = None
    index: int | None = None
    actions: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    strategy_paused: bool = False
    now: Any = NOW


def _rollout(case: Case) -> WorkloadRollout:
    ro = rollout(**case.spec)
    if case.strategy_paused:
        strategy = ro.spec.strategy.model_copy(update={"paused": True})
        ro = ro.model_copy(update={"spec": ro.spec.model_copy(update={"strategy": strategy})})
    metadata = ro.metadata.model_copy(update={"annotations": case.annotations})
    return ro.model_copy(update={"metadata": metadata, "status": case.before})


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
        Case(status("Paused", "StepPaused"), Observed(None, (), DeploymentView.from_object(canary())),
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
    plan = plan_step(_rollout(case), case.seen, case.now)
    canary_status = plan.status.canary_status
    assert plan.status.phase == case.phase, plan.status.message
    if case.index is not None:
        assert canary_status is not None
        assert canary_status.current_step_state == case.state
        assert canary_status.current_step_index == case.index
    assert [type(a).__name__ for a in plan.actions] == case.actions, plan.status.message
    assert plan.status.observed_generation == 1


def _plan(case: Case):
    return plan_step(_rollout(case), case.seen, case.now)


def test_start_applies_the_canary_for_the_new_revision() -> None:
    plan = _plan(Case(HEALTHY, observed(base(V2, paused=True)), ""))
    (apply,) = [a for a in plan.actions if isinstance(a, ApplyCanary)]
    assert apply.name == "mocka-v1-canary"
    assert apply.deployment["metadata"]["annotations"]["lanes.dev/revision"] == REV[V2]
    assert plan.status.canary_status.stable_revision == REV[V1]
    assert plan.status.canary_status.canary_revision == REV[V2]
    assert plan.status.canary_status.last_update_time == timestamp(NOW)
    assert plan.requeue_after == 0


def test_restart_points_the_canary_at_the_newest_revision() -> None:
    plan = _plan(Case(status("Paused", "StepPaused"), observed(base(V3, paused=True), canary()), ""))
    (apply,) = [a for a in plan.actions if isinstance(a, ApplyCanary)]
    assert apply.deployment["metadata"]["annotations"]["lanes.dev/revision"] == REV[V3]
    assert plan.status.canary_status.canary_revision == REV[V3]
    assert plan.status.canary_status.stable_revision == REV[V1]


def test_undo_writes_back_the_stable_replica_set_template() -> None:
    case = Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), "",
                annotations={"lanes.dev/undo": "now"})
    plan = _plan(case)
    (restore,) = [a for a in plan.actions if isinstance(a, RestoreBaseTemplate)]
    assert restore.name == "mocka-v1"
    assert template_hash(restore.template) == REV[V1]
    assert "pod-template-hash" not in restore.template["metadata"]["labels"]
    assert plan.changes[0] == restore
    assert ClearIntent("lanes.dev/undo") in plan.followups


def test_promotion_makes_the_canary_revision_stable() -> None:
    plan = _plan(Case(status("Promoting", "Completed"), observed(base(V2), canary()), ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert plan.status.canary_status.stable_revision == REV[V2]
    assert conditions == {"Progressing": ("False", "Completed"), "Succeeded": ("True", "Promoted")}
    assert DeleteCanary("mocka-v1-canary") in plan.actions


def test_roll_back_ends_with_succeeded_false() -> None:
    plan = _plan(Case(status("RollingBack", "StepPaused"), observed(base(V1)), ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions == {"Progressing": ("False", "Cancelled"), "Succeeded": ("False", "RolledBack")}
    assert plan.status.canary_status.stable_revision == REV[V1]


def test_in_progress_conditions_are_unknown_success() -> None:
    plan = _plan(Case(status("Progressing"), observed(canary_obj=canary()), ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions == {"Progressing": ("True", "Paused"), "Succeeded": ("Unknown", "InProgress")}


def test_failed_reports_the_deadline() -> None:
    plan = _plan(Case(status("Progressing", last=LONG_AGO), observed(canary_obj=canary(available=0)), ""))
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions["Succeeded"] == ("False", "ProgressDeadlineExceeded")
    assert "0/1 canary pod(s) available after 600s" in plan.status.message


def test_waiting_plans_requeue_for_the_next_deadline() -> None:
    waiting = _plan(Case(status("Progressing"), observed(canary_obj=canary(available=0)), ""))
    timed = _plan(Case(status("Progressing", "StepPaused"), observed(canary_obj=canary()), "",
                       spec={"steps": TIMED}))
    approval = _plan(Case(status("Paused", "StepPaused"), observed(canary_obj=canary()), ""))
    assert waiting.requeue_after == 590
    assert timed.requeue_after == 50
    assert approval.requeue_after is None


def test_next_step_scales_canary_to_a_percentage_of_base() -> None:
    case = Case(status("Progressing", "StepReady"), observed(canary_obj=canary()), "",
                spec={"steps": TWO_STEPS})
    assert ScaleCanary("mocka-v1-canary", 3) in _plan(case).actions


def test_a_new_template_pauses_an_unpaused_base_first() -> None:
    plan = _plan(Case(HEALTHY, observed(base(V2)), ""))
    assert plan.changes[0] == PauseBase("mocka-v1")


def test_transition_time_is_kept_while_the_condition_status_holds() -> None:
    first = _plan(Case(HEALTHY, observed(base(V2, paused=True)), ""))
    later = NOW + timedelta(minutes=1)
    ro = _rollout(Case(first.status, observed(canary_obj=canary()), ""))
    second = plan_step(ro, observed(canary_obj=canary()), later)
    times = {c.type: c.last_transition_time for c in second.status.conditions}
    assert times == {c.type: c.last_transition_time for c in first.status.conditions}
    assert second.status.phase == "Paused"


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
