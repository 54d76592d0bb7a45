"""The lane release's own intents: `kubectl lane approve|undo|pause|resume|retry|abort` and
`promote --full` on a LaneRelease.

The same annotations as on a WorkloadRollout (`lanes.rollout.intents`), screened by the
engine's rules (`screen_intents`); what differs is when each may apply to a lane. promote
--full skips the remaining entry steps, their analysis and gates, and promotes every member
together; abort rolls the lane back as undo does, but each member records its revision as
failed (reason `Aborted`), so applying the same templates again starts nothing until retry.
"""

from __future__ import annotations

from datetime import datetime

from lanes.api.lanerelease import LaneRelease, LaneReleaseStatus

from ..endings import ABORTED
from ..engine import screen_intents
from ..intents import ANNOTATIONS, Intent, requested
from ..status import timestamp
from .members import member_trouble
from .steps import advance, promote_now
from .unit import ENDED, UNDO_REQUESTED, ReleaseDraft, RolloutIntent, enter_rollback


def check_release_intent(release: LaneRelease, intent: Intent) -> str | None:
    """Why an intent cannot apply to the release now, or None when it can.

    The CLI calls this to refuse a verb before writing anything; the planner to drop an
    annotation written at the wrong time.
    """
    status = release.status or LaneReleaseStatus()
    phase, index = status.phase, status.current_step_index
    name = f"lanerelease/{release.metadata.name}"
    count = len(release.spec.all_steps)
    if intent == "retry":
        return None if phase == "Failed" else f"{name} is {phase.lower()}: only a failed release can be retried"
    if intent == "undo":
        if phase not in ("Initial", "Waiting", "Progressing", "Paused"):
            return f"{name} is {phase.lower()}: nothing to undo"
        return None
    if intent == "abort":
        if phase not in ("Progressing", "Paused"):
            return f"{name} is {phase.lower()}: nothing in its steps to abort"
        return None
    if intent == "promote":
        if phase not in ("Progressing", "Paused"):
            return f"{name} has no step in progress to promote (phase {phase})"
        if release.spec.paused:
            return f"{name} is paused by spec.paused; set it to false first"
        return None
    if intent == "pause":
        if phase in ("Promoting", "RollingBack", *ENDED):
            return f"{name} is {phase.lower()} and cannot be paused"
        if release.spec.paused or status.paused:
            return f"{name} is already paused"
        return None
    if intent == "resume":
        if release.spec.paused:
            return f"{name} is paused by spec.paused; set it to false to resume"
        return None if status.paused else f"{name} is not paused"
    if phase != "Progressing" or status.paused or release.spec.paused:
        return f"{name} has no step waiting for approval (phase {phase})"
    step = release.spec.all_steps[min(max(index, 1), count) - 1]
    analysis = release.spec.analysis
    under = analysis is not None and bool(analysis.metrics)
    if step.pause is not None and step.pause.duration is not None:
        return f"{name} step {index}/{count} pauses for {step.pause.duration}s, not for approval"
    if step.pause is None and under:
        return f"{name} step {index}/{count} continues on its own once a check passes"
    if under and not status.step_passed:
        return f"{name} step {index}/{count}: its analysis has not passed yet; approve once it has"
    return None


def release_intent_patch(release: LaneRelease, intent: Intent, now: datetime) -> dict:
    """The merge patch requesting an intent; approve names the current step."""
    status = release.status or LaneReleaseStatus()
    value = str(status.current_step_index) if intent == "approve" else timestamp(now)
    annotations: dict[str, str | None] = {ANNOTATIONS[intent]: value}
    if intent in ("pause", "resume"):
        annotations[ANNOTATIONS["resume" if intent == "pause" else "pause"]] = None
    return {"metadata": {"annotations": annotations}}


def take_intent(d: ReleaseDraft) -> bool:
    """Act on the release's own intents (abort, undo, resume, pause, promote --full, approve).
    True if one moved it."""
    present = requested(d.release)  # type: ignore[arg-type]
    if not present:
        return False
    for intent in present:
        d.clear.append(ANNOTATIONS[intent])
    index = d.status.current_step_index

    def refuse(intent: Intent) -> str | None:
        return check_release_intent(d.release.model_copy(update={"status": d.status}), intent)

    for intent in screen_intents(d, present, refuse, index, f"step {index}"):
        if intent == "undo":
            enter_rollback(d, UNDO_REQUESTED, f"undo requested: rolling back lane {d.lane}")
            return True
        if intent == "abort":
            enter_rollback(d, ABORTED, f"abort requested: rolling back lane {d.lane}; every "
                                       "member's revision is recorded as failed")
            return True
        if intent == "promote":
            if not member_trouble(d):
                promote_now(d)
            return True
        elif intent in ("pause", "resume"):
            d.move(paused=intent == "pause")
            d.event("Paused" if intent == "pause" else "Resumed", f"{d.name} {intent}d")
        elif not member_trouble(d):
            d.event("Approved", f"{d.name} step {d.status.current_step_index} approved")
            advance(d)
            return True
        else:
            return True
    return False


def retry(d: ReleaseDraft) -> bool:
    """Start a failed release again, if a retry is requested: each member rollout forgets its
    failed revision (its own retry), and the release goes back to Initial. True if it did."""
    present = requested(d.release)  # type: ignore[arg-type]
    if "retry" not in present or d.status.phase != "Failed":
        return False
    d.clear.append(ANNOTATIONS["retry"])
    stamp = timestamp(d.now)
    for member in d.status.rollouts:
        if member.undone and not member.deleted:
            d.intents.append(RolloutIntent(member.name, "retry", stamp))
    d.status = LaneReleaseStatus(conditions=d.status.conditions)
    d.say(f"retry requested: the release of lane {d.lane} starts again")
    d.event("Retried", d.status.message or "")
    d.requeue = 0.0
    return True


def drop_intents(d: ReleaseDraft) -> None:
    """Clear the intents of a release that has ended: nothing is left for them to move."""
    for intent in requested(d.release):  # type: ignore[arg-type]
        d.clear.append(ANNOTATIONS[intent])
