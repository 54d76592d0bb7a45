"""The moving parts of a release: canary steps, promotion, roll back.

Each handler makes at most one transition (`Draft.move`). Actions that create something are
issued only on a transition, so re-planning from the new status with observations that have
not caught up yet never asks for the canary twice; actions that correct an existing object
(pause, scale, restore a template, delete) follow what is observed on every reconcile.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lanes.analysis.verdict import judge
from lanes.api.analysis import Analysis

from .actions import (
    ApplyCanary,
    DeleteCanary,
    PauseBase,
    RestoreBaseTemplate,
    ScaleCanary,
    UnpauseBase,
)
from .batches import is_batch_ready
from .canary import drift, is_current
from .checks import (
    ANALYSIS_REASONS,
    analysis_at,
    complete_readings,
    failure_summary,
    next_check_in,
    passed_at,
    progress_note,
    waits_for_approval,
)
from .draft import PROMOTED, Draft, rolled_back, succeeded_reason
from .observed import DeploymentView
from .status import timestamp


def hold_base(d: Draft) -> None:
    """Keep the base Deployment paused so it stays on the version it runs."""
    if not d.base.paused:
        d.act(PauseBase(d.base.name))


def correct_canary(d: Draft, canary: DeploymentView, desired: dict[str, Any]) -> None:
    """Bring an existing canary Deployment back to the desired template or size."""
    kind = drift(canary, desired)
    if kind == "template":
        d.act(ApplyCanary(desired))
    elif kind == "replicas":
        d.act(ScaleCanary(canary.name, desired["spec"]["replicas"]))


def start_canary(d: Draft, revision: str, reason: str) -> None:
    """Hold the base and run `revision` in the canary Deployment at step 1.

    Used for a new release and for a newer template arriving mid-release (v1 -> v2 -> v3):
    the canary Deployment keeps its name, so it is updated in place, never duplicated.
    """
    d.move(phase="Progressing", canary_revision=revision, index=1, state="StepUpgrade", ready=0)
    d.analysis = None
    hold_base(d)
    if d.foreign_canary:
        d.fail("CanaryConflict", _conflict(d))
        return
    desired = d.desired_canary(1)
    d.replicas = desired["spec"]["replicas"]
    d.act(ApplyCanary(desired))
    d.message = f"{d.where}: starting {d.replicas} canary pod(s) of revision {revision}"
    d.event(
        reason,
        f"revision {revision} of Deployment {d.base.name} runs in canary Deployment "
        f"{d.canary_name}; the base stays on revision {d.stable}",
    )


def run_steps(d: Draft) -> None:
    """One reconcile of a release in its canary steps (phase Progressing, Paused or Failed)."""
    hold_base(d)
    if d.foreign_canary:
        d.fail("CanaryConflict", _conflict(d))
        return
    canary = d.canary
    if d.is_paused:
        d.message = f"paused at {d.where}; resume to continue"
        if d.phase != "Paused":
            d.move(phase="Paused")
        return
    if d.phase == "Paused" and not d.awaiting_approval:
        d.move(phase="Progressing")
        d.message = f"resumed at {d.where}"
        return
    desired = d.desired_canary()
    d.replicas = desired["spec"]["replicas"]
    if d.state == "StepPaused":
        _paused_step(d, canary, desired)
    elif d.state == "StepReady":
        _ready_step(d, canary)
    elif d.state == "Completed":
        enter_promotion(d)
    else:
        _upgrade_step(d, canary, desired)


def _upgrade_step(d: Draft, canary: DeploymentView | None, desired: dict[str, Any]) -> None:
    deadline = d.last_update_time + timedelta(seconds=d.base.progress_deadline_seconds)
    if d.last_update is None:
        d.last_update = timestamp(d.now)
    if canary is None:
        if d.phase == "Failed":
            d.act(ApplyCanary(desired))
            d.move(phase="Progressing")
            d.message = f"{d.where}: re-creating canary Deployment {d.canary_name}"
        elif d.now >= deadline:
            d.fail(
                "ProgressDeadlineExceeded",
                f"{d.where}: canary Deployment {d.canary_name} not found "
                f"{d.base.progress_deadline_seconds}s after it was requested",
            )
        else:
            d.message = f"{d.where}: waiting for canary Deployment {d.canary_name}"
            d.requeue = (deadline - d.now).total_seconds()
        return
    correct_canary(d, canary, desired)
    ready = is_current(canary, desired) and is_batch_ready(
        d.replicas,
        canary.updated_replicas,
        canary.available_replicas,
        d.rollout.spec.strategy.canary.failure_threshold,
    )
    if ready:
        approval = waits_for_approval(d.rollout, d.index)
        d.move(state="StepPaused", phase="Paused" if approval else "Progressing")
        d.message = _paused_message(d)
        d.event("StepReady", f"{d.where}: {d.ready}/{d.replicas} canary pod(s) available")
        return
    d.message = f"{d.where}: {d.ready}/{d.replicas} canary pod(s) available"
    if d.now >= deadline:
        d.fail(
            "ProgressDeadlineExceeded",
            f"{d.message} after {d.base.progress_deadline_seconds}s "
            f"(progressDeadlineSeconds of Deployment {d.base.name})",
        )
    elif d.phase != "Failed":
        d.requeue = (deadline - d.now).total_seconds()


def _paused_message(d: Draft) -> str:
    ready = f"{d.where}: {d.ready}/{d.replicas} canary pod(s) available"
    analysis = analysis_at(d.rollout, d.index)
    note = "" if analysis is None else f"; {progress_note(d.analysis, d.index)}"
    passed = analysis is None or passed_at(d.analysis, d.index)
    once = "" if passed else " once an analysis check passes"
    duration = d.step.pause_duration
    if duration is not None:
        end = d.last_update_time + timedelta(seconds=duration)
        return f"{ready}{note}; continues at {timestamp(end)}{once}"
    if not waits_for_approval(d.rollout, d.index):
        return f"{ready}{note}; continues{once}"
    if d.index >= d.steps:
        return f"{ready}{note}; approve to promote{once}"
    return f"{ready}{note}; approve to continue to step {d.index + 1}/{d.steps}{once}"


def _paused_step(d: Draft, canary: DeploymentView | None, desired: dict[str, Any]) -> None:
    """The step's canary pods are ready: check the analysis, then continue when the step's
    pause allows (approve, the duration, or a passing check)."""
    if canary is None:
        d.act(ApplyCanary(desired))
        d.move(state="StepUpgrade", phase="Progressing")
        d.message = f"{d.where}: canary Deployment {d.canary_name} disappeared; re-creating it"
        d.event("CanaryMissing", d.message, warning=True)
        return
    correct_canary(d, canary, desired)
    analysis = analysis_at(d.rollout, d.index)
    if analysis is not None and not _check(d, analysis):
        return
    d.message = _paused_message(d)
    if d.awaiting_approval or d.check is not None:
        return
    passed = analysis is None or passed_at(d.analysis, d.index)
    duration = d.step.pause_duration
    if duration is None:
        if passed:
            d.move(state="StepReady")
            d.message = f"{d.where}: analysis passed"
        return
    end = d.last_update_time + timedelta(seconds=duration)
    if d.now < end:
        d.wake((end - d.now).total_seconds())
    elif passed:
        d.move(state="StepReady")
        d.message = f"{d.where}: pause of {duration}s is over"
        if analysis is not None:
            d.message += " and analysis passed"


def _check(d: Draft, analysis: Analysis) -> bool:
    """Ask for the step's analysis check when it is due, or judge the one the operator made.

    Stores the judged status with the step it was made at and posts its events. Returns
    False when the verdict rolled the release back, True when the step carries on.
    """
    readings = d.observed.readings
    if readings is None:
        wait = next_check_in(analysis, d.analysis, d.now)
        if wait <= 0:
            d.check = analysis
        d.wake(wait or analysis.interval_seconds)
        return True
    full = complete_readings(analysis, readings)
    judged = judge(analysis, d.analysis, full, d.now, d.observed.hooks)
    if judged.verdict != "wait":
        d.analysis = judged.status.model_copy(update={"step": d.index})
        for event in judged.events:
            d.event(event.reason, event.message, warning=event.type == "Warning")
    if judged.verdict == "rollback":
        enter_rollback(d, f"{d.where}: {judged.message}")
        return False
    d.wake(next_check_in(analysis, d.analysis, d.now) or analysis.interval_seconds)
    return True


def _ready_step(d: Draft, canary: DeploymentView | None) -> None:
    if d.index >= d.steps:
        enter_promotion(d)
        return
    d.move(index=d.index + 1, state="StepUpgrade", phase="Progressing")
    desired = d.desired_canary()
    d.replicas = desired["spec"]["replicas"]
    if canary is None:
        d.act(ApplyCanary(desired))
    else:
        correct_canary(d, canary, desired)
    d.message = f"{d.where}: scaling canary Deployment {d.canary_name} to {d.replicas}"
    d.event("StepStarted", d.message)


def enter_promotion(d: Draft) -> None:
    """After the last step: let the base roll to the canary's revision."""
    d.move(phase="Promoting", state="Completed")
    if d.base.paused:
        d.act(UnpauseBase(d.base.name))
    d.message = f"promoting revision {d.canary_revision}: Deployment {d.base.name} rolls to it"
    d.event("Promoting", d.message)


def promote(d: Draft) -> None:
    """Wait for the base to run the new revision everywhere, then drop the canary."""
    base = d.base
    if base.paused:
        d.act(UnpauseBase(base.name))
    if base.rolled_out:
        d.move(phase="Healthy", stable=d.canary_revision, replicas=0, outcome=PROMOTED)
        if d.canary is not None:
            d.act(DeleteCanary(d.canary.name))
        d.message = healthy_message(d)
        d.event("Promoted", d.message)
        return
    d.message = (
        f"promoting revision {d.canary_revision}: Deployment {base.name} has "
        f"{base.updated_replicas}/{base.replicas} updated, "
        f"{base.available_replicas}/{base.replicas} available"
    )


def enter_rollback(d: Draft, message: str) -> None:
    """Start rolling back: restore the stable template and drop the canary."""
    d.move(phase="RollingBack")
    d.event("RollingBack", message)
    roll_back(d, finish=False)


def roll_back(d: Draft, finish: bool = True) -> None:
    """Bring the base back to the stable revision without restarting its running pods.

    The stable ReplicaSet's template is written back while the base is still paused, so the
    Deployment controller adopts that ReplicaSet as current; only once the restored template
    is observed is the base unpaused, and then it has nothing to roll.
    """
    base, canary = d.base, d.canary
    d.replicas = 0
    if base.revision != d.stable:
        stable = d.observed.replica_set_of(d.stable or "")
        if stable is not None:
            d.act(RestoreBaseTemplate(base.name, stable.deployment_template))
        if canary is not None:
            d.act(DeleteCanary(canary.name))
        d.message = (
            f"rolling back: restoring Deployment {base.name} to revision {d.stable}"
            if stable is not None
            else f"no ReplicaSet of Deployment {base.name} runs stable revision {d.stable}; "
            "restore its template by hand"
        )
        return
    if canary is not None:
        d.act(DeleteCanary(canary.name))
    if base.paused:
        d.act(UnpauseBase(base.name))
    if finish and not base.paused and base.rolled_out and canary is None:
        d.move(phase="Healthy", index=0, state=None, outcome=rolled_back(d.analysis))
        d.message = healthy_message(d)
        d.event("RolledBack", d.message)
        return
    d.message = (
        f"rolling back to revision {d.stable}: Deployment {base.name} has "
        f"{base.available_replicas}/{base.replicas} available"
    )


def healthy_message(d: Draft) -> str:
    """What a settled rollout says, from how its last release ended."""
    ended = d.outcome[1][1] if d.outcome else succeeded_reason(d.rollout)
    if ended == "Promoted":
        return f"revision {d.stable} promoted; Deployment {d.base.name} runs it"
    if ended in ANALYSIS_REASONS and d.analysis is not None:
        return (
            f"revision {d.canary_revision} rolled back: {failure_summary(d.analysis)}; "
            f"Deployment {d.base.name} runs revision {d.stable}"
        )
    if ended == "RolledBack":
        return (
            f"revision {d.canary_revision} rolled back; "
            f"Deployment {d.base.name} runs revision {d.stable}"
        )
    return f"Deployment {d.base.name} runs revision {d.stable}"


def _conflict(d: Draft) -> str:
    return (
        f"Deployment {d.canary_name} exists and is not managed by {d.name}; "
        "rename or delete it"
    )
