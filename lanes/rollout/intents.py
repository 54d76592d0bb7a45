"""User intents: approve, undo, pause, resume, retry, promote --full, abort and restart, as
annotations on the WorkloadRollout.

The CLI annotates the rollout and the operator acts on the next reconcile, then removes the
annotation. Annotations rather than spec fields keep the spec what the user (or GitOps)
declared, and rather than a status write they leave the status to the operator alone.

- `lanes.dev/approve: "<step>"` continues past the paused step `<step>` (1-based, the
  status's `currentStepIndex`); an approve for any other step is stale and is dropped, so
  a late or repeated approve never skips a step. A step under analysis is approved only
  once its latest check passed: approve does not overrule the metrics.
- `lanes.dev/undo: "<time>"` rolls back whatever is in progress.
- `lanes.dev/pause: "<time>"` / `lanes.dev/resume: "<time>"` stop and continue the steps.
- `lanes.dev/retry: "<time>"` forgets the failed revision (`status.failedRevision`), so the
  template that failed is released again: at once when the base carries it.
- `lanes.dev/promote-full: "<time>"` skips the remaining steps, their pauses, analysis and
  gates: the base rolls to the canary's revision at once (Argo's `promote --full`); a lane
  release promotes every member together.
- `lanes.dev/abort: "<time>"` rolls back now as undo does, and records the revision as failed
  (`status.failedRevision`, reason `Aborted`; a lane release: each member's), so the same
  template applied again by a GitOps tool starts nothing until retry.
- `lanes.dev/restart: "<time>"` (a rollout's only) is not an intent that is acted on once and
  cleared but a desired state, like `kubectl rollout restart`'s `restartedAt`: the canary's pod
  template carries it (`lanes.rollout.canary.RESTARTED_ANNOTATION`), so a new value rolls the
  canary pods by the canary Deployment's own rolling update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from lanes.api.workloadrollout import WorkloadRollout

from .actions import LANE_RELEASE_ANNOTATION
from .checks import analysis_at, passed_at
from .status import IN_PROGRESS, IN_STEPS, status_of, step_count, timestamp

Intent = Literal["approve", "undo", "pause", "resume", "retry", "promote", "abort"]
PREFIX = "lanes.dev/"
ANNOTATIONS: dict[Intent, str] = {
    "approve": f"{PREFIX}approve",
    "undo": f"{PREFIX}undo",
    "pause": f"{PREFIX}pause",
    "resume": f"{PREFIX}resume",
    "retry": f"{PREFIX}retry",
    "promote": f"{PREFIX}promote-full",
    "abort": f"{PREFIX}abort",
}
"""The intents both units (a rollout and a lane release) take."""
RESTART_ANNOTATION = f"{PREFIX}restart"
PRIORITY: tuple[Intent, ...] = ("abort", "undo", "retry", "resume", "pause", "promote", "approve")


def requested(
    rollout: WorkloadRollout, kinds: dict[Intent, str] = ANNOTATIONS
) -> dict[Intent, str]:
    """The intents of `kinds` present on a rollout, with their annotation values."""
    annotations = rollout.metadata.annotations
    return {i: annotations[key] for i, key in kinds.items() if key in annotations}


def check_intent(rollout: WorkloadRollout, intent: Intent) -> str | None:
    """Why an intent cannot apply to the rollout now, or None when it can.

    The CLI calls this to refuse a verb without patching anything; the operator calls it to
    drop an annotation someone wrote by hand at the wrong time.
    """
    status = status_of(rollout)
    name = f"workloadrollout/{rollout.metadata.name}"
    phase = status.phase
    spec_paused = rollout.spec.strategy.paused
    if intent == "approve":
        canary = status.canary_status
        if phase not in IN_STEPS or canary is None:
            return f"{name} has no canary step waiting for approval (phase {phase})"
        if spec_paused:
            return f"{name} is paused by spec.strategy.paused; set it to false first"
        if status.paused:
            return f"{name} is paused; resume it first"
        if canary.current_step_state != "StepPaused":
            return (
                f"{name} is at step {canary.current_step_index}/{step_count(rollout)} "
                f"({canary.current_step_state}): only a paused step can be approved; "
                "wait until its canary pods are ready"
            )
        index = canary.current_step_index
        if analysis_at(rollout, index) is not None and not passed_at(status.analysis, index):
            said = status.analysis.message if status.analysis and status.analysis.step == index else None
            return (
                f"{name} is at step {index}/{step_count(rollout)}: its analysis has not passed "
                f"({said or 'no check made yet'}); approve once a check passes"
            )
        return None
    if intent in ("undo", "abort"):
        if phase == "RollingBack":
            return f"{name} is already rolling back"
        release = status.canary_status.canary_revision if status.canary_status else None
        if phase not in IN_PROGRESS or release is None:
            return f"{name} has nothing in progress to {intent} (phase {phase})"
        return None
    if intent == "promote":
        return _refuse_promotion(rollout, name)
    if intent == "retry":
        if status.failed_revision is None:
            return f"{name} has no failed revision to retry"
        if phase != "Healthy":
            return f"{name} is {phase.lower()}; retry once it is Healthy again"
        return None
    if intent == "pause":
        if phase in ("Promoting", "RollingBack"):
            return f"{name} is {phase.lower()} and cannot be paused; it finishes on its own"
        if spec_paused:
            return f"{name} is already paused by spec.strategy.paused"
        if status.paused:
            return f"{name} is already paused"
        return None
    if spec_paused:
        return f"{name} is paused by spec.strategy.paused; set it to false to resume"
    if not status.paused:
        return f"{name} is not paused"
    return None


def _refuse_promotion(rollout: WorkloadRollout, name: str) -> str | None:
    """Why a full promotion cannot start now: nothing in its steps, or a hold it must not
    override (the spec's pause, a lane release moving the rollout with its lane)."""
    status = status_of(rollout)
    phase = status.phase
    release = status.canary_status.canary_revision if status.canary_status else None
    if phase == "Promoting":
        return f"{name} is already promoting revision {release}"
    if phase == "RollingBack":
        return f"{name} is rolling back; it cannot be promoted"
    if phase not in IN_STEPS or release is None:
        return f"{name} has no release in progress to promote (phase {phase})"
    if rollout.spec.strategy.paused:
        return f"{name} is paused by spec.strategy.paused; set it to false first"
    holder = rollout.metadata.annotations.get(LANE_RELEASE_ANNOTATION)
    if holder:
        return (f"{name} is released with its lane by lanerelease/{holder}; promote the lane "
                "release instead")
    return None


def check_restart(rollout: WorkloadRollout) -> str | None:
    """Why the canary pods cannot be restarted now: only a release in its steps runs them."""
    status = status_of(rollout)
    name = f"workloadrollout/{rollout.metadata.name}"
    release = status.canary_status.canary_revision if status.canary_status else None
    if status.phase not in IN_STEPS or release is None:
        return f"{name} runs no canary pods to restart (phase {status.phase})"
    return None


def restart_patch(now: datetime) -> dict:
    """The merge patch that asks for the canary pods to be restarted."""
    return {"metadata": {"annotations": {RESTART_ANNOTATION: timestamp(now)}}}


def approvable_step(rollout: WorkloadRollout) -> int:
    """The step an approve written now refers to: the current step index."""
    canary = status_of(rollout).canary_status
    return canary.current_step_index if canary else 0


def intent_patch(rollout: WorkloadRollout, intent: Intent, now: datetime) -> dict:
    """The JSON merge patch that requests an intent.

    Pause and resume each remove the other, so the latest request is the only one left.
    """
    value = str(approvable_step(rollout)) if intent == "approve" else timestamp(now)
    annotations: dict[str, str | None] = {ANNOTATIONS[intent]: value}
    if intent == "pause":
        annotations[ANNOTATIONS["resume"]] = None
    elif intent == "resume":
        annotations[ANNOTATIONS["pause"]] = None
    return {"metadata": {"annotations": annotations}}
