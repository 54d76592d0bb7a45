"""The members of a lane release: which WorkloadRollouts they are, whether they can take part,
and what the release asks of them (approve together and hold their canaries on promotion,
undo together on roll back).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lanes.api.lanerelease import LaneRelease, MemberStatus
from lanes.api.swimlane import SwimLane
from lanes.api.workloadrollout import WorkloadRollout
from lanes.render.observe import selects

from ..actions import LANE_RELEASE_ANNOTATION
from ..checks import PRE_ROLLOUT_FAILED, ROLLED_BACK_BY_WEBHOOK, analysis_at
from ..endings import ABORTED
from ..intents import requested
from ..status import IN_PROGRESS, parse_time, step_count, timestamp, utc
from .entry import routes_settled
from .gates import end
from .unit import (
    ANALYSIS_FAILED,
    ANALYSIS_UNAVAILABLE,
    DRIVING,
    LANE_DELETED,
    ROLLOUT_DELETED,
    ROLLOUT_FAILED,
    ReleaseDraft,
    RolloutIntent,
    enter_rollback,
)


FAILURES = (ANALYSIS_FAILED, ANALYSIS_UNAVAILABLE, PRE_ROLLOUT_FAILED, ROLLED_BACK_BY_WEBHOOK,
            ABORTED)
"""Why a lane's roll back leaves its members' revisions failed: its checks or webhooks, or a
person's abort."""


def undo_value(d: ReleaseDraft) -> str:
    """The undo a lane release writes on a member: a time, then, when the lane failed its
    checks, the release and the reason, so the member records its revision as failed."""
    stamp = timestamp(d.now)
    reason = d.status.reason
    return f"{stamp} {d.name} {reason}" if reason in FAILURES else stamp


def member_rollouts(
    release: LaneRelease, lane: SwimLane | None, rollouts: Sequence[WorkloadRollout]
) -> tuple[list[WorkloadRollout], list[str]]:
    """The release's rollouts present now, and the names of those it names that are missing.

    Without `spec.rollouts`, the members are the rollouts whose canary pods the lane selects
    (their `patchPodTemplateMetadata` labels), and nothing can be missing.
    """
    by_name = {r.metadata.name: r for r in rollouts}
    if release.spec.rollouts:
        found = [by_name[n] for n in release.spec.rollouts if n in by_name]
        return found, [n for n in release.spec.rollouts if n not in by_name]
    if lane is None:
        return [], []
    chosen = []
    for rollout in sorted(rollouts, key=lambda r: r.metadata.name):
        patch = rollout.spec.strategy.canary.patch_pod_template_metadata
        if patch is not None and patch.labels and selects(lane.spec.label_selector, patch.labels):
            chosen.append(rollout)
    return chosen, []


def member_problem(rollout: WorkloadRollout) -> str | None:
    """Why a rollout cannot take part in a lane release, or None."""
    last = step_count(rollout)
    step = rollout.spec.strategy.canary.steps[-1]
    name = f"workloadrollout/{rollout.metadata.name}"
    if analysis_at(rollout, last) is not None:
        return (f"{name}: its last step is under its own analysis; a lane release judges the "
                "whole lane, so remove the rollout's analysis")
    if step.pause is not None and step.pause.duration is not None:
        return (f"{name}: its last step pauses for {step.pause.duration}s and then promotes on "
                "its own; a lane release needs it to wait for approval (`pause: {}` or none)")
    return None


def ready_at_last_step(rollout: WorkloadRollout) -> bool:
    """Whether a rollout's canary pods are ready at its last step, waiting for approval."""
    status = rollout.status
    canary = status.canary_status if status is not None else None
    return (
        status is not None and canary is not None
        and status.phase in ("Paused", "Progressing")
        and canary.current_step_index == step_count(rollout)
        and canary.current_step_state == "StepPaused"
        and canary.canary_ready_replicas > 0
    )


def deleting(rollout: WorkloadRollout) -> bool:
    """Whether a rollout is being deleted (its finalizer still runs)."""
    return rollout.metadata.deletion_timestamp is not None


def canary_holder(releases: Sequence[LaneRelease], rollout: str, now: datetime) -> str | None:
    """The release that still needs a member's canary, whose deletion must wait for it.

    A release driving the rollout needs its canary while untagged requests may enter the lane:
    while its entry weight is above 0, and until the gateway has routed 0 for `routeSettle`
    (`LaneReleaseStatus.routes_since`). Deleting the canary earlier would send requests already
    in the lane to that service's base, a chain mixing old and new versions.
    """
    for release in sorted(releases, key=lambda r: r.metadata.name):
        status = release.status
        if status is None or status.phase not in DRIVING \
                or rollout not in {m.name for m in status.rollouts}:
            continue
        since = parse_time(status.routes_since)
        if status.weight > 0 or since is None \
                or (utc(now) - since).total_seconds() < release.spec.route_settle_seconds:
            return release.metadata.name
    return None


def revision_of(rollout: WorkloadRollout) -> str | None:
    status = rollout.status
    return status.canary_status.canary_revision if status and status.canary_status else None


def stable_of(rollout: WorkloadRollout) -> str | None:
    status = rollout.status
    return status.canary_status.stable_revision if status and status.canary_status else None


def _recorded(d: ReleaseDraft) -> dict[str, MemberStatus]:
    return {m.name: m for m in d.status.rollouts}


def member_trouble(d: ReleaseDraft) -> bool:
    """Roll back when the lane or a member went away or a member left its last step."""
    if d.observed.lane is None:
        enter_rollback(d, LANE_DELETED, f"SwimLane {d.lane} was deleted; rolling back")
        return True
    present = {r.metadata.name: r for r in d.observed.rollouts}
    for name, member in _recorded(d).items():
        rollout = present.get(name)
        if rollout is None or deleting(rollout):
            roll_back_deleted(d, name)
            return True
        if not ready_at_last_step(rollout) or revision_of(rollout) != member.revision:
            phase = rollout.status.phase if rollout.status else "Initial"
            enter_rollback(d, ROLLOUT_FAILED,
                            f"workloadrollout/{name} left its last step on its own (phase "
                            f"{phase}, revision {revision_of(rollout)}); rolling back the whole "
                            "lane")
            return True
    return False


def roll_back_deleted(d: ReleaseDraft, name: str) -> None:
    d.move(rollouts=[m.model_copy(update={"deleted": m.deleted or m.name == name})
                     for m in d.status.rollouts])
    enter_rollback(d, ROLLOUT_DELETED,
                    f"workloadrollout/{name} was deleted mid-release; rolling back the whole "
                    "lane (its canary is kept until no untagged request enters the lane)")


def promote(d: ReleaseDraft) -> None:
    """Every untagged request into the lane, every member approved together and its canary
    held; once every base runs the new version, the entry weight back to 0, then the holds
    released so the rollouts drop their canaries."""
    present = {r.metadata.name: r for r in d.observed.rollouts}
    name = d.release.metadata.name
    if d.status.weight == 100:
        if not any(m.promoted for m in d.status.rollouts):
            gone = [m.name for m in d.status.rollouts
                    if (r := present.get(m.name)) is None or deleting(r)]
            if gone:
                roll_back_deleted(d, gone[0])
                return
        if not routes_settled(d, 100):
            d.say(f"promoting lane {d.lane}: waiting for every untagged request to enter the "
                  f"lane (the gateway routes {d.observed.routed_weight}%)")
            return
        approving, pending, members = [], [], []
        for member in d.status.rollouts:
            rollout = present.get(member.name)
            members.append(member.model_copy(update={"promoted": True}))
            if rollout is None or member.deleted:
                continue
            if deleting(rollout):
                if _took_approval(rollout):
                    if member.name not in d.observed.rolled_out:
                        pending.append(member.name)
                else:
                    members[-1] = members[-1].model_copy(update={"deleted": True})
                    d.event("RolloutDeleted", f"{d.name}: workloadrollout/{member.name} was "
                                              "deleted before it took the approval; its base "
                                              "stays on the stable revision", warning=True)
                continue
            wanted = "approve" not in requested(rollout) and ready_at_last_step(rollout) \
                and revision_of(rollout) == member.revision
            held = rollout.metadata.annotations.get(LANE_RELEASE_ANNOTATION) == name
            if wanted or not held:
                index = rollout.status.canary_status.current_step_index if wanted else 0
                d.intents.append(RolloutIntent(member.name, "approve" if wanted else None,
                                               str(index), hold=name))
                if wanted:
                    approving.append(member.name)
            if member.name not in d.observed.rolled_out and not _healthy(rollout):
                pending.append(member.name)
        d.move(rollouts=members)
        if approving:
            d.event("Promoting", f"{d.name}: approved {', '.join(approving)} together")
        if pending or approving:
            d.say(f"promoting lane {d.lane}: every untagged request runs through the lane while "
                  f"{', '.join(pending or approving)} roll to the new version")
            return
        d.move(weight=0, routes_since=None)
        d.say(f"promoting lane {d.lane}: every base runs the new version; entry weight back "
              "to 0, then the canaries go")
        d.event("Promoting", f"{d.name}: every base of lane {d.lane} runs the new version; "
                             "untagged requests back on base")
        d.requeue = 0.0
        return
    if not routes_settled(d, 0):
        d.say(f"promoting lane {d.lane}: waiting for untagged requests to leave the lane (the "
              f"gateway routes {d.observed.routed_weight}%)")
        return
    pending, gone_back = [], []
    for member in d.status.rollouts:
        rollout = present.get(member.name)
        if rollout is None:
            continue
        if deleting(rollout):
            pending.append(member.name)
            continue
        if rollout.metadata.annotations.get(LANE_RELEASE_ANNOTATION) == name:
            d.intents.append(RolloutIntent(member.name, None, unhold=True))
        if not _healthy(rollout):
            pending.append(member.name)
        elif stable_of(rollout) != member.revision:
            gone_back.append(member.name)
    if pending:
        d.say(f"promoting lane {d.lane}: waiting for {', '.join(pending)} to drop their canary")
        return
    deleted = [m.name for m in d.status.rollouts if m.deleted]
    if deleted:
        end(d, "Failed", ROLLOUT_DELETED,
             f"workloadrollout/{', '.join(deleted)} deleted before it took the approval, its "
             f"base on the stable revision; the other services of lane {d.lane} are promoted")
        return
    if gone_back:
        end(d, "Failed", ROLLOUT_FAILED,
             f"workloadrollout/{', '.join(gone_back)} rolled back on its own during promotion; "
             f"the other services of lane {d.lane} are promoted")
        return
    end(d, "Succeeded", None, f"lane {d.lane} promoted: "
                               f"{', '.join(m.name for m in d.status.rollouts)} run the new "
                               "version together")


def _healthy(rollout: WorkloadRollout) -> bool:
    return rollout.status is not None and rollout.status.phase == "Healthy"


def _took_approval(rollout: WorkloadRollout) -> bool:
    """Whether a member acted on the release's approval: its base rolls to the new version."""
    return rollout.status is not None and rollout.status.phase == "Promoting"


def roll_back(d: ReleaseDraft) -> None:
    if not routes_settled(d, 0):
        d.say(f"rolling back lane {d.lane}: waiting for untagged requests to leave the lane "
              f"(the gateway routes {d.observed.routed_weight}%)")
        return
    present = {r.metadata.name: r for r in d.observed.rollouts}
    members, pending, undoing = [], [], []
    for member in d.status.rollouts:
        rollout = present.get(member.name)
        status = rollout.status if rollout is not None else None
        if rollout is not None and deleting(rollout):
            members.append(member.model_copy(update={"undone": True}))
            pending.append(member.name)
            continue
        if rollout is None or status is None or status.phase not in IN_PROGRESS:
            members.append(member)
            continue
        if status.phase != "RollingBack" and revision_of(rollout) == member.revision \
                and "undo" not in requested(rollout):
            d.intents.append(RolloutIntent(member.name, "undo", undo_value(d)))
            undoing.append(member.name)
        members.append(member.model_copy(update={"undone": True}))
        pending.append(member.name)
    d.move(rollouts=members)
    if undoing:
        d.event("RollingBack", f"{d.name}: undoing {', '.join(undoing)} together")
    if pending:
        d.say(f"rolling back lane {d.lane}: waiting for {', '.join(pending)} to be back on "
              "their stable revision")
        return
    reason = d.status.reason or "RolledBack"
    deleted = [m.name for m in d.status.rollouts if m.deleted]
    cause = f"{reason}: workloadrollout/{', '.join(deleted)} deleted" if deleted else reason
    end(d, "Failed", reason, f"lane {d.lane} rolled back ({cause}): every rollout is on "
                              "its stable revision; base was never restarted")
