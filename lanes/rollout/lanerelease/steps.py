"""The steps of a lane release: from the members ready at their last step, through each
step's entry weight, to the promotion of the whole lane.

Each step is a `LaneReleaseStep` (an entry weight, a pause); a step ends as a WorkloadRollout's
does (`lanes.rollout.checks`): without pause on a passing check, `pause: {duration}` once the
duration is over (and a check passed), `pause: {}` on approve.
"""

from __future__ import annotations

from lanes.api.lanerelease import MemberStatus

from ..status import parse_time, timestamp
from .entry import flavour_problem
from .gates import check, confirm_promotion, pre_rollout, under_analysis
from .members import (
    deleting,
    member_problem,
    ready_at_last_step,
    revision_of,
)
from .unit import DRIVING, SWIM_LANE_NOT_FOUND, UNSUPPORTED_FLAVOUR, ReleaseDraft


def lane_found(d: ReleaseDraft) -> bool:
    """Whether the lane the release names exists; if not, say so naming the field (an event
    the first time), and wait."""
    if d.observed.lane is not None:
        if d.status.reason == SWIM_LANE_NOT_FOUND:
            d.move(reason=None)
        return True
    message = f"spec.swimLaneRef.name: SwimLane {d.lane} not found; the release waits for it"
    if d.status.message != message:
        d.event(SWIM_LANE_NOT_FOUND, f"{d.name}: {message}", warning=True)
    d.move(reason=SWIM_LANE_NOT_FOUND)
    d.say(message)
    return False


def start(d: ReleaseDraft) -> None:
    """Accept the release, or say why its group or members cannot take one."""
    refused = flavour_problem(d)
    if refused is not None:
        if d.status.message != refused:
            d.event(UNSUPPORTED_FLAVOUR, f"{d.name}: {refused}", warning=True)
        d.move(reason=UNSUPPORTED_FLAVOUR)
        d.say(refused)
        return
    problems = [p for r in d.members if (p := member_problem(r)) is not None]
    if problems:
        d.move(reason="InvalidSpec")
        d.say("; ".join(problems))
        return
    d.move(phase="Waiting", reason=None)
    d.say(f"waiting for the canary pods of the lane {d.lane}")
    d.requeue = 0.0


def wait_for_members(d: ReleaseDraft) -> None:
    """Start step 1 once the lane is free and every member is ready at its last step."""
    busy = sorted(o.metadata.name for o in d.observed.others
                  if o.spec.swim_lane_ref.name == d.lane and o.status is not None
                  and o.status.phase in DRIVING)
    if busy:
        d.say(f"lane {d.lane} is being released by lanerelease/{busy[0]}; a lane takes one "
              "release at a time, this one starts after it")
        return
    if d.observed.lane is None:
        d.say(f"SwimLane {d.lane} not found; waiting for it")
        return
    if flavour_problem(d) is not None:
        d.move(phase="Initial")
        start(d)
        return
    if d.missing:
        d.say(f"waiting for workloadrollout {', '.join(d.missing)} (not found)")
        return
    if not d.members:
        d.say(f"no WorkloadRollout puts canary pods in the lane {d.lane}; waiting for one")
        return
    problems = [p for r in d.members if (p := member_problem(r)) is not None]
    if problems:
        d.move(phase="Initial", reason="InvalidSpec")
        d.say("; ".join(problems))
        return
    going = [r.metadata.name for r in d.members if deleting(r)]
    if going:
        d.say(f"waiting for workloadrollout {', '.join(going)} (being deleted)")
        return
    waiting = [r.metadata.name for r in d.members if not ready_at_last_step(r)]
    held = [r.metadata.name for r in d.members
            if r.status is not None and r.status.phase == "Healthy" and r.status.failed_revision]
    if held:
        d.say(f"waiting for workloadrollout {', '.join(held)}, which hold(s) a failed revision "
              "back; `kubectl lane retry` each, or apply a new revision")
        return
    if waiting:
        d.say(f"waiting for the canary pods of {', '.join(waiting)} to be ready at their "
              "last step")
        return
    d.move(rollouts=[MemberStatus(name=r.metadata.name, revision=revision_of(r))
                     for r in d.members])
    if not pre_rollout(d):
        return
    step = d.steps[0]
    d.move(
        phase="Progressing", current_step_index=1, weight=step.weight,
        step_start_time=timestamp(d.now), step_passed=False, last_check_time=d.now.isoformat(),
    )
    names = ", ".join(r.metadata.name for r in d.members)
    d.say(f"step 1/{len(d.steps)}: {entering(d, 1)} ({names})")
    d.event("Started", f"{d.name} started: {names} released together; {entering(d, 1)}")
    d.requeue = 0.0


def run_steps(d: ReleaseDraft) -> None:
    """One reconcile of a release in its steps: pause, check, then end the step if it may."""
    index, count = d.status.current_step_index, len(d.steps)
    if d.paused:
        if d.status.phase != "Paused":
            d.move(phase="Paused")
        d.say(f"paused at step {index}/{count} (entry weight {d.status.weight}%); resume to "
              "continue")
        return
    if d.status.phase == "Paused":
        d.move(phase="Progressing")
    analysis = d.release.spec.analysis
    if analysis is not None and under_analysis(analysis) and not check(d, analysis):
        return
    step = d.step
    if step.pause is None and not under_analysis(analysis):
        d.say(f"step {index}/{count}: entry weight {d.status.weight}%; waiting for approve")
        return
    if step.pause is not None and step.pause.duration is None:
        d.say(f"step {index}/{count}: entry weight {d.status.weight}%; "
              + ("check passed, waiting for approve" if d.status.step_passed
                 else "waiting for approve"))
        return
    if step.pause is not None and step.pause.duration is not None:
        started = parse_time(d.status.step_start_time) or d.now
        left = step.pause.duration - (d.now - started).total_seconds()
        if left > 0:
            d.say(f"step {index}/{count}: entry weight {d.status.weight}%; paused for "
                  f"{step.pause.duration}s")
            d.requeue = left if d.requeue is None else min(d.requeue, left)
            return
    advance(d)


def entering(d: ReleaseDraft, index: int) -> str:
    """What step `index` (from 1) sends into the lane, in words: an entry weight, or at the
    shadow step the share of requests copied."""
    mirror = d.release.spec.mirror
    if mirror is not None and index <= len(d.release.spec.shadow_steps()):
        return (f"shadow: {mirror.percent}% of untagged requests copied into lane {d.lane}, "
                "answers discarded, entry weight 0%")
    return f"entry weight {d.steps[index - 1].weight}% into lane {d.lane}"


def advance(d: ReleaseDraft) -> None:
    """The next step's entry weight, or after the last one (and its gate) the promotion."""
    index, count = d.status.current_step_index, len(d.steps)
    if index < count:
        step = d.steps[index]
        d.move(current_step_index=index + 1, weight=step.weight,
               step_start_time=timestamp(d.now), step_passed=False)
        d.say(f"step {index + 1}/{count}: {entering(d, index + 1)}")
        d.event("Advance", f"Advance {d.name}: {entering(d, index + 1)}")
        d.requeue = 0.0
        return
    if not confirm_promotion(d):
        return
    enter_promotion(d, "all steps passed")


def promote_now(d: ReleaseDraft) -> None:
    """promote --full: skip the remaining entry steps, their analysis and gates."""
    index, count = d.status.current_step_index, len(d.steps)
    d.move(paused=False)
    d.event("FullPromotionRequested", f"{d.name}: promote --full requested at step "
                                      f"{index}/{count}: the remaining steps, their analysis "
                                      "and gates are skipped")
    enter_promotion(d, f"promote --full at step {index}/{count}")


def enter_promotion(d: ReleaseDraft, why: str) -> None:
    """Every untagged request into the lane, then every member promoted together
    (`members.promote`)."""
    d.move(phase="Promoting", weight=100, step_passed=False, routes_since=None)
    d.say(f"promoting lane {d.lane}: every untagged request enters the lane while the bases "
          "roll")
    d.event("Promoting", f"{d.name}: {why}; every untagged request now enters lane "
                         f"{d.lane}, then every rollout is promoted together")
    d.requeue = 0.0
