"""The moving parts of a release in its steps: canary batches, gates and analysis checks.

How a release ends (promotion, roll back, post-rollout hooks) is in `endings`.

Each handler makes at most one transition (`Draft.move`). Actions that create something are
issued only on a transition, so re-planning from the new status with observations that have
not caught up yet never asks for the canary twice; actions that correct an existing object
(pause, scale, restore a template, delete) follow what is observed on every reconcile.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from lanes.analysis.verdict import HookResult, judge
from lanes.api.analysis import Analysis, AnalysisStatus, Webhook, WebhookType

from .actions import (
    ApplyCanary,
    PauseBase,
    ScaleCanary,
)
from .batches import is_batch_ready
from .canary import drift, is_current
from .checks import (
    PROGRESS_DEADLINE_EXCEEDED,
    analysis_at,
    complete_readings,
    next_check_in,
    passed_at,
    progress_note,
    waits_for_approval,
)
from .draft import Draft
from .endings import enter_promotion, enter_rollback
from .engine import check_due, look_at_gate, rollback_fired
from .hooks import (
    answers,
    carry,
    failures,
    gate_interval,
    hooks_of,
    is_done,
    mark_done,
    names,
    pre_rollout_failed,
    release_hooks,
    rolled_back_by,
)
from .observed import DeploymentView
from .status import current_step, timestamp


def hold_base(d: Draft) -> None:
    """Keep the base Deployment paused so it stays on the version it runs."""
    if not d.base.paused:
        d.act(PauseBase(d.base.name))


def correct_canary(d: Draft, canary: DeploymentView, desired: dict[str, Any]) -> None:
    """Bring an existing canary Deployment back to the desired template or size (at least
    that size while the canary's own autoscaler is in force)."""
    kind = drift(canary, desired, d.autoscaled)
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
    if d.failed is not None and d.failed.revision != revision:
        d.failed = None
    hold_base(d)
    if d.foreign_canary:
        d.fail("CanaryConflict", _conflict(d))
        return
    if release_hooks(d.rollout, "confirm-rollout"):
        d.replicas = 0
        d.message = _confirm_message(d)
        d.event(reason, f"revision {revision} of Deployment {d.base.name} waits for "
                f"confirm-rollout; the base stays on revision {d.stable}")
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
    if d.state == "StepUpgrade" and d.index == 1 and not _rollout_confirmed(d):
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


Gate = Literal["open", "opened", "closed"]


def _gate(d: Draft, kind: WebhookType, phase: str) -> Gate:
    """Whether the release's `kind` hooks let it go on: `open` (none, or they already answered
    2xx), `opened` (every one answered 2xx in this reconcile) or `closed` (asked for, or a
    failed answer; asked again every interval). What they did is kept in `status.analysis`."""
    hooks = release_hooks(d.rollout, kind)
    if not hooks or is_done(d.analysis, kind):
        return "open"
    results = _look(d, hooks, phase)
    if results is None:
        return "closed"
    if all(r.ok for r in results):
        d.analysis = mark_done(d.analysis, kind)
        d.event(_GATE_EVENTS[kind][0], f"{kind} webhook(s) {names(hooks)} answered 2xx")
        return "opened"
    _closed(d, kind, results)
    return "closed"


def _look(d: Draft, hooks: tuple[Webhook, ...], phase: str) -> list[HookResult] | None:
    """One look at a gate of the release, asked again every interval of its first analysis."""
    interval = gate_interval(d.rollout)
    last = d.analysis.last_gate_time if d.analysis is not None else None
    return look_at_gate(d, hooks, phase, last, interval, interval)


def _closed(d: Draft, kind: WebhookType, results: list[HookResult]) -> None:
    """A gate said no: remember when, say why the first time, ask again after an interval."""
    first = d.analysis is None or d.analysis.last_gate_time is None
    said = f"{kind} {failures(results)}"
    d.analysis = (d.analysis or AnalysisStatus()).model_copy(
        update={"last_gate_time": timestamp(d.now), "message": said}
    )
    if first:
        d.event(_GATE_EVENTS[kind][1], said)
    d.wake(gate_interval(d.rollout))


_GATE_EVENTS: dict[str, tuple[str, str]] = {
    "confirm-rollout": ("RolloutConfirmed", "WaitingForConfirmRollout"),
    "confirm-promotion": ("PromotionConfirmed", "WaitingForConfirmPromotion"),
    "confirm-traffic-increase": ("TrafficIncreaseConfirmed", "WaitingForConfirmTrafficIncrease"),
}


def _confirm_message(d: Draft) -> str:
    hooks = release_hooks(d.rollout, "confirm-rollout")
    said = f" ({d.analysis.message})" if d.analysis is not None and d.analysis.message else ""
    return (
        f"{d.where}: revision {d.canary_revision} waits for confirm-rollout webhook(s) "
        f"{names(hooks)}{said}"
    )


def _rollout_confirmed(d: Draft) -> bool:
    """The confirm-rollout gate before the release's canary starts; opening it starts it."""
    gate = _gate(d, "confirm-rollout", "Waiting")
    if gate == "open":
        return True
    if gate == "closed":
        d.replicas = 0
        d.message = _confirm_message(d)
        return False
    desired = d.desired_canary(1)
    d.replicas = desired["spec"]["replicas"]
    d.act(ApplyCanary(desired))
    d.move(state="StepUpgrade", phase="Progressing")
    d.message = f"{d.where}: rollout confirmed; starting {d.replicas} canary pod(s)"
    return False


def _upgrade_step(d: Draft, canary: DeploymentView | None, desired: dict[str, Any]) -> None:
    deadline = d.last_update_time + timedelta(seconds=progress_deadline(d)[0])
    if d.last_update is None:
        d.last_update = timestamp(d.now)
    if canary is None:
        if d.phase == "Failed":
            d.act(ApplyCanary(desired))
            d.move(phase="Progressing")
            d.message = f"{d.where}: re-creating canary Deployment {d.canary_name}"
        elif d.now >= deadline:
            _deadline_exceeded(d, f"{d.where}: canary Deployment {d.canary_name} not found "
                                  f"{progress_deadline(d)[0]}s after it was requested")
        else:
            d.message = f"{d.where}: waiting for canary Deployment {d.canary_name}"
            d.requeue = (deadline - d.now).total_seconds()
        return
    correct_canary(d, canary, desired)
    ready = is_current(canary, desired, d.autoscaled) and is_batch_ready(
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
        seconds, owner = progress_deadline(d)
        _deadline_exceeded(d, f"{d.message} after {seconds}s (progressDeadlineSeconds of {owner})")
    elif d.phase != "Failed":
        d.requeue = (deadline - d.now).total_seconds()


def progress_deadline(d: Draft) -> tuple[int, str]:
    """The seconds a step's canary pods have to become available, and whose deadline it is:
    the rollout's own when it gives one, else the base Deployment's."""
    own = d.rollout.spec.progress_deadline_seconds
    if own is not None:
        return own, d.name
    return d.base.progress_deadline_seconds, f"Deployment {d.base.name}"


def _deadline_exceeded(d: Draft, message: str) -> None:
    """The step's canary pods were not ready within the progress deadline.

    Under the rollout's own `progressDeadlineSeconds` the release rolls back, its revision
    recorded as failed (Flagger's and Argo's abort); under the base's deadline it is left
    Failed where it stands, so a fix of the pods lets it carry on.
    """
    if d.rollout.spec.progress_deadline_seconds is None:
        d.fail(PROGRESS_DEADLINE_EXCEEDED, message)
        return
    d.event(PROGRESS_DEADLINE_EXCEEDED, message, warning=True)
    enter_rollback(d, f"{message}: rolling back revision {d.canary_revision} to {d.stable}",
                   reason=PROGRESS_DEADLINE_EXCEEDED)


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

    The check carries the `rollback` hooks of the analysis and, until they passed once, the
    release's `pre-rollout` ones: a rollback hook's 2xx rolls back at once, a failed pre-rollout is a
    failed check without judging the metrics. Stores the judged status with the step it was
    made at and posts its events. Returns False when the check rolled the release back, True
    when the step carries on.
    """
    pre = () if is_done(d.analysis, "pre-rollout") else release_hooks(d.rollout, "pre-rollout")
    since = d.last_update_time
    due_in = next_check_in(analysis, d.analysis, d.now, since)
    if not check_due(d, analysis, due_in, pre + hooks_of(analysis, "rollback"), "Progressing"):
        return True
    readings = d.observed.readings
    assert readings is not None
    stamp = d.now.isoformat()
    hooks = d.observed.hooks
    fired = rollback_fired(hooks, analysis)
    if fired is not None:
        d.analysis = rolled_back_by(d.analysis, fired, stamp, d.index)
        d.event("RolledBackByWebhook", d.analysis.message or "", warning=True)
        enter_rollback(d, f"{d.where}: rollback webhook {fired.name} answered")
        return False
    if pre:
        results = answers(hooks, pre)
        if not all(r.ok for r in results):
            status, rollback = pre_rollout_failed(analysis, d.analysis, results, stamp)
            d.analysis = status.model_copy(update={"step": d.index})
            d.event("PreRolloutFailed" if rollback else "HaltAdvancement", status.message or "",
                    warning=True)
            if rollback:
                enter_rollback(d, f"{d.where}: {status.message}")
                return False
            d.wake(analysis.interval_seconds)
            return True
        d.analysis = mark_done(d.analysis, "pre-rollout")
        d.event("PreRolloutPassed", f"pre-rollout webhook(s) {names(pre)} answered 2xx")
    full = complete_readings(analysis, readings)
    judged = judge(analysis, d.analysis, full, d.now, hooks)
    if judged.verdict != "wait":
        d.analysis = carry(judged.status.model_copy(update={"step": d.index}), d.analysis)
        for event in judged.events:
            d.event(event.reason, event.message, warning=event.type == "Warning")
    if judged.verdict == "rollback":
        enter_rollback(d, f"{d.where}: {judged.message}")
        return False
    d.wake(next_check_in(analysis, d.analysis, d.now, since) or analysis.interval_seconds)
    return True


def _traffic_increase_confirmed(d: Draft) -> bool:
    """The confirm-traffic-increase gate before a step that raises the canary's share.

    Asked (payload phase `Progressing`) when the next step's `traffic` is above this one's,
    again every interval while any answer is not 2xx; the step stays ready at its share
    meanwhile. Opening it is the move to the next step, so nothing needs keeping as done: the
    next increase asks again.
    """
    kind: WebhookType = "confirm-traffic-increase"
    hooks = release_hooks(d.rollout, kind)
    if not hooks or current_step(d.rollout, d.index + 1).weight <= d.step.weight:
        return True
    results = _look(d, hooks, "Progressing")
    if results is None:
        return False
    weight = current_step(d.rollout, d.index + 1).weight
    if all(r.ok for r in results):
        if d.analysis is not None and d.analysis.last_gate_time is not None:
            d.analysis = d.analysis.model_copy(update={"last_gate_time": None})
        d.event("TrafficIncreaseConfirmed",
                f"{kind} webhook(s) {names(hooks)} answered 2xx: canary weight {weight}")
        return True
    _closed(d, kind, results)
    return False


def _ready_step(d: Draft, canary: DeploymentView | None) -> None:
    if d.index >= d.steps:
        if _gate(d, "confirm-promotion", "WaitingPromotion") == "closed":
            d.message = _gate_message(d, "confirm-promotion", "promotion")
            return
        enter_promotion(d)
        return
    if not _traffic_increase_confirmed(d):
        weight = current_step(d.rollout, d.index + 1).weight
        d.message = _gate_message(d, "confirm-traffic-increase", f"canary weight {weight}")
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


def _gate_message(d: Draft, kind: WebhookType, what: str) -> str:
    """What a ready step says while a gate holds `what` back."""
    hooks = release_hooks(d.rollout, kind)
    said = f" ({d.analysis.message})" if d.analysis and d.analysis.last_gate_time else ""
    return f"{d.where} passed; {what} waits for {kind} webhook(s) {names(hooks)}{said}"


def _conflict(d: Draft) -> str:
    return (
        f"Deployment {d.canary_name} exists and is not managed by {d.name}; "
        "rename or delete it"
    )
