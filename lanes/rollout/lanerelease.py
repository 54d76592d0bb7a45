"""The LaneRelease state machine: (release, observed lane and rollouts, readings, now) -> plan.

A lane release drives the WorkloadRollouts of one lane as one unit. It moves at most one phase
per reconcile and keeps everything it needs in its status, so a restarted operator resumes
where the last one stopped. The phases:

- Initial -> Waiting: the members are resolved (the rollouts named in `spec.rollouts`, else
  every rollout of the namespace whose `patchPodTemplateMetadata` labels the lane selects).
  Each member's last step must wait for approval (no analysis of its own, no timed pause): the
  lane release is what approves it.
- Waiting -> Progressing at step 1 once every member has its canary pods ready at its last
  step (StepPaused); the lane's entry weight is then step 1's.
- Each step: under analysis, a check is due every `interval` (the first one interval after the
  start, so the lane has had traffic to judge); the metrics of every member are judged with
  `lanes.analysis.verdict.judge` on that member's service and lane subset, and a check fails
  for the lane when any member's does (the event names service, metric, value and range).
  Failed checks count for the whole release. A step ends as a WorkloadRollout's does
  (`lanes.rollout.checks`): without pause on a passing check, `pause: {duration}` once the
  duration is over (and a check passed), `pause: {}` on approve.
- After the last step -> Promoting: the entry weight goes to 100, so every untagged request
  runs through the lane, whose chain is entirely the new version. Once the gateway has routed
  100 (`ReleaseObserved.routed_weight`) for `spec.routeSettle`, every member is approved, all
  in the same reconcile, and marked with `LANE_RELEASE_ANNOTATION`, so its rollout keeps its
  canary after its base has rolled. Once every base runs the new version on every replica
  (`ReleaseObserved.rolled_out`) the entry weight goes back to 0; once the gateway has routed 0
  for `routeSettle` the marks are removed, the rollouts drop their canaries and finish, and the
  release is Succeeded. Requests that explicitly ask for the base lane see each base service as
  it rolls: a mix of old and new pods, as in any rolling update.
- Roll back (failed checks reach `threshold`, Prometheus unavailable for threshold x interval,
  `undo`, a member failing or vanishing, the lane deleted) -> RollingBack: the entry weight goes
  to 0 at once; only once the gateway has routed 0 into the lane for `routeSettle` is every
  member undone (bases are never restarted: each rollout restores its stable template). Once
  no member is in progress -> Failed, Succeeded=False with the reason.

While a lane release drives them, the members' own traffic steps do not apply: the lane's entry
weight decides which untagged requests see the new versions (`driven_rollouts`).

Edge cases, each ending with base traffic on one version per service:

- A member deleted mid-release: the release rolls back (`RolloutDeleted`), entry weight 0
  first, as for a failure of the unit. The deleted rollout's finalizer keeps its canary while
  the release may still send untagged requests into the lane (`canary_holder`): only once the
  gateway has routed 0 for `routeSettle` does it restore the base to the stable revision and
  delete the canary, so no request in the lane meets that service's old version. Deleted
  while promoting before it took the approval: the same roll back. Deleted after it took it
  (its base already rolling to the new version): it counts as done, its canary kept until the
  entry weight is back to 0. Deleted in the moment between the approvals and its own taking
  of one: its base stays on the stable revision, the others finish, and the release ends
  Failed (`RolloutDeleted`), naming it.
- The lane deleted: no request can enter it any more; the release rolls back (`LaneDeleted`).
- A member failing on its own (undone, rolled back, restarted on another template, Failed past
  its progress deadline): the release rolls back (`RolloutFailed`), naming it.
- While Waiting none of this is a failure yet: the release waits, saying for what.

Webhooks of `spec.analysis`, with Flagger's meaning (`lanes.rollout.hooks` has the shared
rules; the plan names the calls in `ReleasePlan.hooks_due`, the operator calls them with
Flagger's payload for the release and plans again with `ReleaseObserved.hooks`):

- `pre-rollout`: called once every member is ready at its last step, before step 1. All 2xx:
  the release starts; any failure: the release rolls back (`PreRolloutFailed`) with the entry
  weight never above 0, so no request entered the lane.
- `rollout`: called with every check; a failure is a failed check of the lane.
- `rollback`: called with every check; any 2xx rolls the whole lane back at once
  (`RolledBackByWebhook`).
- `confirm-promotion`: a gate after the last step, before the all-or-nothing promotion, asked
  every `interval` until every such hook answers 2xx.
- `post-rollout`: called once the release has ended, either way; its answer is only reported.
- `event`: `ReleasePlan.event_hooks`, sent every event the release posts, best effort.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from lanes.analysis.verdict import HookResult, Reading, judge
from lanes.api.analysis import Analysis, AnalysisStatus, Webhook, WebhookType
from lanes.api.lanerelease import (
    LaneRelease,
    LaneReleaseStatus,
    LaneReleaseStep,
    MemberStatus,
    ServiceCheck,
)
from lanes.api.observations import TrafficStep
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import entry_service
from lanes.api.workloadrollout import WorkloadRollout
from lanes.render.observe import selects

from .actions import LANE_RELEASE_ANNOTATION, Event
from .checks import PRE_ROLLOUT_FAILED, ROLLED_BACK_BY_WEBHOOK, analysis_at, complete_readings
from .hooks import HookCall, answered, answers, failures, gate_wait, hooks_of, names
from .intents import ANNOTATIONS, PRIORITY, Intent, requested
from .status import IN_PROGRESS, parse_time, set_condition, step_count, timestamp, utc

IN_RELEASE = ("Waiting", "Progressing", "Paused", "Promoting", "RollingBack")
DRIVING = ("Progressing", "Paused", "Promoting", "RollingBack")
ENDED = ("Succeeded", "Failed")
ENTERING = ("Progressing", "Paused", "Promoting")
READY, PROGRESSING, SUCCEEDED = "Ready", "Progressing", "Succeeded"

ANALYSIS_FAILED = "AnalysisFailed"
ANALYSIS_UNAVAILABLE = "AnalysisUnavailable"
ROLLOUT_DELETED = "RolloutDeleted"
ROLLOUT_FAILED = "RolloutFailed"
LANE_DELETED = "LaneDeleted"
UNDO_REQUESTED = "UndoRequested"
UNSUPPORTED_FLAVOUR = "UnsupportedFlavour"
ENTRY_FLAVOURS = ("istio",)
"""The flavours that render a lane release's entry weight at the gateway."""
PROMOTED = "Promoted"
ROUTES_POLL = 1.0
"""Seconds between looks at the gateway route while waiting for an entry weight to apply
(a change of the generated route also triggers a look at once)."""


@dataclass(frozen=True)
class ReleaseObserved:
    """What the operator read for one release.

    `rollouts` are the WorkloadRollouts of the release's namespace; `services` the group
    service each member's canary serves (rollout name -> service name, for events and status;
    the workload's name stands in); `readings` one reading per metric of each member (rollout
    name -> metric name -> reading), given only to a plan made after a check was asked for;
    `routed_weight` the share of untagged requests the gateway's routes put into the lane now
    (None when the group's gateway route is not found); `rolled_out` the members whose base
    Deployment runs their canary's revision on every replica; `others` the other
    LaneReleases of the namespace (a lane takes one release at a time); `hooks` the answers
    of the webhooks a plan named (`ReleasePlan.hooks_due`), given to the plan made after;
    `flavour` the mesh flavour of the lane's group (None when the group is not found).
    """

    lane: SwimLane | None
    rollouts: Sequence[WorkloadRollout] = ()
    services: Mapping[str, str] = field(default_factory=dict)
    readings: Mapping[str, Mapping[str, Reading]] | None = None
    routed_weight: int | None = None
    rolled_out: frozenset[str] = frozenset()
    others: Sequence[LaneRelease] = ()
    hooks: Sequence[HookResult] = ()
    flavour: str | None = None

    def with_readings(self, readings: Mapping[str, Mapping[str, Reading]]) -> ReleaseObserved:
        """The same observation with a check's readings."""
        return replace(self, readings=readings)

    def with_hooks(self, hooks: Sequence[HookResult]) -> ReleaseObserved:
        """The same observation with the answers of the webhooks a plan named."""
        return replace(self, hooks=tuple(hooks))


@dataclass(frozen=True)
class RolloutIntent:
    """Annotate a member rollout: an intent (the annotation `kubectl lane` writes), and the
    release's hold on its canary (`hold` sets it, `unhold` removes it)."""

    rollout: str
    intent: Intent | None
    value: str = ""
    hold: str | None = None
    unhold: bool = False

    @property
    def annotations(self) -> dict[str, str | None]:
        """The annotations to merge into the rollout (None removes one)."""
        out: dict[str, str | None] = {}
        if self.intent is not None:
            out[ANNOTATIONS[self.intent]] = self.value
        if self.hold is not None:
            out[LANE_RELEASE_ANNOTATION] = self.hold
        elif self.unhold:
            out[LANE_RELEASE_ANNOTATION] = None
        return out


@dataclass(frozen=True)
class ReleasePlan:
    """One reconcile's outcome: the status, the member intents to write first, then events.

    `check` is the analysis whose check is due, asked for only by a plan made without
    readings; the operator reads every member's metrics and plans again with the same `now`.
    `clear` are the release's own intent annotations to remove after the status is written.
    `hooks_due` are the webhooks to call now (with the check's readings when `check` is set),
    each with its payload phase; the operator passes the answers back in
    `ReleaseObserved.hooks` and plans again with the same `now`. `event_hooks` are sent every
    event the operator posts for the release.
    """

    status: LaneReleaseStatus
    intents: tuple[RolloutIntent, ...] = ()
    events: tuple[Event, ...] = ()
    clear: tuple[str, ...] = ()
    check: Analysis | None = None
    requeue_after: float | None = None
    hooks_due: tuple[HookCall, ...] = ()
    event_hooks: tuple[Webhook, ...] = ()

    @property
    def calls_out(self) -> bool:
        """Whether the operator must read or call something and plan again."""
        return self.check is not None or bool(self.hooks_due)


def release_checksum(status: LaneReleaseStatus | None) -> str:
    """The `checksum` of the release's webhook payloads: one per set of member revisions."""
    members = sorted(f"{m.name}={m.revision or ''}" for m in (status.rollouts if status else ()))
    return hashlib.sha256(",".join(members).encode()).hexdigest()[:16] if members else ""


def flagger_phase(status: LaneReleaseStatus | None) -> str:
    """The phase a webhook payload carries, in Flagger's words, for a release's status."""
    phase = status.phase if status is not None else "Initial"
    return {"Initial": "Initializing", "Waiting": "Initializing", "Paused": "Progressing",
            "RollingBack": "Failed"}.get(phase, phase)


def under_analysis(analysis: Analysis | None) -> bool:
    """Whether an analysis makes checks: it has metrics, or `rollout` or `rollback` hooks."""
    return analysis is not None and (
        bool(analysis.metrics) or bool(hooks_of(analysis, "rollout"))
        or bool(hooks_of(analysis, "rollback"))
    )


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


def _revision(rollout: WorkloadRollout) -> str | None:
    status = rollout.status
    return status.canary_status.canary_revision if status and status.canary_status else None


def _stable(rollout: WorkloadRollout) -> str | None:
    status = rollout.status
    return status.canary_status.stable_revision if status and status.canary_status else None


class _Draft:
    """The release's status being planned, and what the plan collects on the way."""

    def __init__(self, release: LaneRelease, observed: ReleaseObserved, now: datetime):
        self.release = release
        self.observed = observed
        self.now = utc(now)
        self.status = release.status or LaneReleaseStatus()
        self.intents: list[RolloutIntent] = []
        self.events: list[Event] = []
        self.clear: list[str] = []
        self.check: Analysis | None = None
        self.hooks_due: list[HookCall] = []
        self.requeue: float | None = None
        self.steps = release.spec.all_steps
        self.members, self.missing = member_rollouts(release, observed.lane, observed.rollouts)

    @property
    def name(self) -> str:
        return f"lanerelease/{self.release.metadata.name}"

    @property
    def lane(self) -> str:
        return self.release.spec.swim_lane_ref.name

    def move(self, **changes: object) -> None:
        self.status = self.status.model_copy(update=changes)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event(reason, message, "Warning" if warning else "Normal"))

    def say(self, message: str) -> None:
        self.move(message=message)

    def service_of(self, rollout: WorkloadRollout) -> str:
        return self.observed.services.get(rollout.metadata.name, rollout.spec.workload_ref.name)

    @property
    def step(self) -> LaneReleaseStep:
        index = min(max(self.status.current_step_index, 1), len(self.steps))
        return self.steps[index - 1]

    @property
    def paused(self) -> bool:
        return self.release.spec.paused or self.status.paused

    def hooks(self, kind: WebhookType) -> tuple[Webhook, ...]:
        return hooks_of(self.release.spec.analysis, kind)

    def call(self, hooks: Sequence[Webhook], phase: str) -> None:
        self.hooks_due += [HookCall(h, phase) for h in hooks]

    def answers(self, hooks: Sequence[Webhook]) -> list[HookResult] | None:
        """The answers of these hooks (all of one type), or None when they were not called."""
        if not hooks or not answered(self.observed.hooks, hooks[0].type):
            return None
        return answers(self.observed.hooks, hooks)

    def done(self, kind: WebhookType) -> bool:
        return kind in self.status.hooks_done

    def mark_done(self, kind: WebhookType) -> None:
        if kind not in self.status.hooks_done:
            self.move(hooks_done=[*self.status.hooks_done, kind], last_gate_time=None)

    def plan(self) -> ReleasePlan:
        self._conditions()
        return ReleasePlan(
            status=self.status, intents=tuple(self.intents), events=tuple(self.events),
            clear=tuple(self.clear), check=self.check, requeue_after=self.requeue,
            hooks_due=tuple(self.hooks_due), event_hooks=self.hooks("event"),
        )

    def _conditions(self) -> None:
        phase, generation = self.status.phase, self.release.metadata.generation
        conditions = self.status.conditions
        message = self.status.message or phase
        refused = self.status.reason if phase == "Initial" else None
        invalid = refused in ("InvalidSpec", UNSUPPORTED_FLAVOUR)
        settled = phase in ENDED
        conditions = set_condition(
            conditions, READY, "True" if settled else "False",
            refused if invalid else phase, message, self.now, generation,
        )
        conditions = set_condition(
            conditions, PROGRESSING, "True" if phase in IN_RELEASE else "False",
            phase, message, self.now, generation,
        )
        if settled:
            ok = phase == "Succeeded"
            conditions = set_condition(
                conditions, SUCCEEDED, "True" if ok else "False",
                PROMOTED if ok else (self.status.reason or "RolledBack"), message, self.now,
                generation,
            )
        else:
            conditions = [c for c in conditions if c.type != SUCCEEDED]
        self.move(conditions=conditions, observed_generation=generation)


def plan_release(release: LaneRelease, observed: ReleaseObserved, now: datetime) -> ReleasePlan:
    """The next status of a lane release and what gets it there, moving at most one phase.

    Planning again from the returned status with the same observation asks for nothing new
    (member intents are asked for only while the member has not acted on them).
    """
    d = _Draft(release, observed, now)
    phase = d.status.phase
    if phase in ENDED:
        _drop_intents(d)
        return d.plan()
    if _take_intent(d):
        return d.plan()
    if phase == "Initial":
        _initial(d)
    elif phase == "Waiting":
        _waiting(d)
    elif phase in ("Progressing", "Paused"):
        if not _member_trouble(d):
            _steps(d)
    elif phase == "Promoting":
        _promoting(d)
    else:
        _rolling_back(d)
    return d.plan()


def _flavour_problem(d: _Draft) -> str | None:
    """Why the lane's group cannot carry an entry weight, or None."""
    flavour, lane = d.observed.flavour, d.observed.lane
    if flavour is None or flavour in ENTRY_FLAVOURS or lane is None:
        return None
    return (f"SwimLaneGroup {lane.group} spec.flavour: {flavour} renders no entry weight at "
            f"the gateway, so no untagged request could enter lane {d.lane}; a lane release "
            f"needs flavour {' or '.join(ENTRY_FLAVOURS)}")


def _initial(d: _Draft) -> None:
    refused = _flavour_problem(d)
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


def _waiting(d: _Draft) -> None:
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
    if _flavour_problem(d) is not None:
        d.move(phase="Initial")
        _initial(d)
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
    if waiting:
        d.say(f"waiting for the canary pods of {', '.join(waiting)} to be ready at their "
              "last step")
        return
    d.move(rollouts=[MemberStatus(name=r.metadata.name, revision=_revision(r))
                     for r in d.members])
    if not _pre_rollout(d):
        return
    step = d.steps[0]
    d.move(
        phase="Progressing", current_step_index=1, weight=step.weight,
        step_start_time=timestamp(d.now), step_passed=False, last_check_time=d.now.isoformat(),
    )
    names = ", ".join(r.metadata.name for r in d.members)
    d.say(f"step 1/{len(d.steps)}: entry weight {step.weight}% into lane {d.lane} ({names})")
    d.event("Started", f"{d.name} started: {names} released together; "
                       f"entry weight {step.weight}% into lane {d.lane}")
    d.requeue = 0.0


def _pre_rollout(d: _Draft) -> bool:
    """Call the `pre-rollout` hooks before any traffic enters the lane. True once they passed
    (or there are none); a failure rolls the release back with the entry weight still 0."""
    hooks = d.hooks("pre-rollout")
    if not hooks or d.done("pre-rollout"):
        return True
    results = d.answers(hooks)
    if results is None:
        d.call(hooks, "Initializing")
        d.say(f"calling pre-rollout webhook(s) {names(hooks)} before lane {d.lane} gets traffic")
        return False
    d.mark_done("pre-rollout")
    if all(r.ok for r in results):
        d.event("PreRollout", f"{d.name}: pre-rollout webhook(s) {names(hooks)} passed")
        return True
    _enter_rollback(d, PRE_ROLLOUT_FAILED,
                    f"Rolling back lane {d.lane} before any traffic entered it: pre-rollout "
                    f"{failures(results)}")
    return False


def _recorded(d: _Draft) -> dict[str, MemberStatus]:
    return {m.name: m for m in d.status.rollouts}


def _member_trouble(d: _Draft) -> bool:
    """Roll back when the lane or a member went away or a member left its last step."""
    if d.observed.lane is None:
        _enter_rollback(d, LANE_DELETED, f"SwimLane {d.lane} was deleted; rolling back")
        return True
    present = {r.metadata.name: r for r in d.observed.rollouts}
    for name, member in _recorded(d).items():
        rollout = present.get(name)
        if rollout is None or deleting(rollout):
            _roll_back_deleted(d, name)
            return True
        if not ready_at_last_step(rollout) or _revision(rollout) != member.revision:
            phase = rollout.status.phase if rollout.status else "Initial"
            _enter_rollback(d, ROLLOUT_FAILED,
                            f"workloadrollout/{name} left its last step on its own (phase "
                            f"{phase}, revision {_revision(rollout)}); rolling back the whole "
                            "lane")
            return True
    return False


def _roll_back_deleted(d: _Draft, name: str) -> None:
    d.move(rollouts=[m.model_copy(update={"deleted": m.deleted or m.name == name})
                     for m in d.status.rollouts])
    _enter_rollback(d, ROLLOUT_DELETED,
                    f"workloadrollout/{name} was deleted mid-release; rolling back the whole "
                    "lane (its canary is kept until no untagged request enters the lane)")


def _steps(d: _Draft) -> None:
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
    if analysis is not None and under_analysis(analysis) and not _check(d, analysis):
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
    _advance(d)


def _check(d: _Draft, analysis: Analysis) -> bool:
    """Make or ask for the check due at this step. True when the step's check has passed."""
    last = parse_time(d.status.last_check_time)
    interval = analysis.interval_seconds
    due_in = 0.0 if last is None else interval - (d.now - last).total_seconds()
    if due_in > 0:
        d.requeue = due_in
        return d.status.step_passed
    if d.observed.readings is None:
        d.check = analysis
        d.call(d.hooks("rollout") + d.hooks("rollback"), flagger_phase(d.status))
        d.requeue = interval
        return False
    rollback = [r for r in answers(d.observed.hooks, d.hooks("rollback")) if r.ok]
    if rollback:
        hook = rollback[0]
        d.move(checks=d.status.checks + 1, last_check_time=d.now.isoformat())
        _enter_rollback(d, ROLLED_BACK_BY_WEBHOOK,
                        f"Rolling back lane {d.lane}: rollback webhook {hook.name} asked to roll "
                        f"back ({hook.message or '2xx'})")
        return False
    verdict, services, lane_status, failures = _judge(d, analysis)
    hooks = [r for r in answers(d.observed.hooks, d.hooks("rollout")) if not r.ok]
    if hooks:
        failures = failures + [f"webhook {r.name}: {r.message or 'failed'}" for r in hooks]
        if verdict not in ("halt", "rollback"):
            failed = lane_status.failed_checks + 1
            verdict = "rollback" if failed >= analysis.threshold else "halt"
            lane_status = lane_status.model_copy(update={
                "failed_checks": failed, "phase": "Failed" if verdict == "rollback" else "Halted",
                "checks": max(lane_status.checks, d.status.checks + 1),
                "last_check_time": d.now.isoformat(),
            })
    index, count = d.status.current_step_index, len(d.steps)
    d.move(
        checks=lane_status.checks, failed_checks=lane_status.failed_checks,
        last_check_time=lane_status.last_check_time,
        unavailable_since=lane_status.unavailable_since, analysis_phase=lane_status.phase,
        services=services, check_step=index,
    )
    d.requeue = interval
    if verdict == "pass":
        d.move(step_passed=True)
        summary = "; ".join(
            f"{s.service}: " + ", ".join(m.message for m in s.metrics) for s in services
        )
        d.say(f"step {index}/{count}: check passed ({summary})")
        return True
    if verdict == "hold":
        d.say(f"step {index}/{count}: {lane_status.message}")
        return False
    said = "; ".join(failures)
    threshold = analysis.threshold
    if verdict == "rollback":
        reason = ANALYSIS_UNAVAILABLE if lane_status.unavailable_since and not failures \
            else ANALYSIS_FAILED
        detail = said or lane_status.message or ""
        _enter_rollback(d, reason, f"Rolling back lane {d.lane}: failed checks threshold "
                                   f"reached {lane_status.failed_checks}/{threshold} ({detail})"
                        if failures else f"Rolling back lane {d.lane}: {detail}")
        return False
    d.say(f"step {index}/{count}: halt advancement: {said} (failed checks "
          f"{lane_status.failed_checks}/{threshold})")
    for failure in failures:
        d.event("HaltAdvancement", f"Halt {d.name} advancement: {failure} (failed checks "
                                   f"{lane_status.failed_checks}/{threshold})", warning=True)
    return False


_SEVERITY = {"wait": 0, "pass": 1, "hold": 2, "halt": 3, "rollback": 4}


def _judge(
    d: _Draft, analysis: Analysis
) -> tuple[str, list[ServiceCheck], AnalysisStatus, list[str]]:
    """Judge every member's readings as one check of the lane.

    Each member is judged by `judge` from the lane's own counts, so a failure of any one is
    the lane's failed check (counted once), the threshold is the lane's, and the lane's
    verdict is the most severe of its members'.
    """
    before = AnalysisStatus(
        phase="Waiting", failed_checks=d.status.failed_checks, checks=d.status.checks,
        last_check_time=d.status.last_check_time, unavailable_since=d.status.unavailable_since,
    )
    readings = d.observed.readings or {}
    services, failures = [], []
    worst = None
    for rollout in d.members:
        name = rollout.metadata.name
        service = d.service_of(rollout)
        judgement = judge(analysis, before, complete_readings(analysis, readings.get(name, {})),
                          d.now)
        metrics = list(judgement.status.metrics)
        services.append(ServiceCheck(service=service, rollout=name,
                                     ok=judgement.verdict == "pass", metrics=metrics))
        failures += [f"{service}: {m.message} (range {m.range})" for m in metrics if not m.ok]
        if worst is None or _SEVERITY[judgement.verdict] > _SEVERITY[worst.verdict]:
            worst = judgement
    assert worst is not None
    return worst.verdict, services, worst.status, failures


def _advance(d: _Draft) -> None:
    index, count = d.status.current_step_index, len(d.steps)
    if index < count:
        step = d.steps[index]
        d.move(current_step_index=index + 1, weight=step.weight,
               step_start_time=timestamp(d.now), step_passed=False)
        d.say(f"step {index + 1}/{count}: entry weight {step.weight}% into lane {d.lane}")
        d.event("Advance", f"Advance {d.name}: entry weight {step.weight}% into lane {d.lane}")
        d.requeue = 0.0
        return
    if not _confirm_promotion(d):
        return
    d.move(phase="Promoting", weight=100, step_passed=False, routes_since=None)
    d.say(f"promoting lane {d.lane}: every untagged request enters the lane while the bases "
          "roll")
    d.event("Promoting", f"{d.name}: all steps passed; every untagged request now enters lane "
                         f"{d.lane}, then every rollout is promoted together")
    d.requeue = 0.0


def _confirm_promotion(d: _Draft) -> bool:
    """Ask the `confirm-promotion` gate before promoting; True once every hook said 2xx. A
    closed gate is asked again every `interval`, the lane holding its last entry weight."""
    hooks = d.hooks("confirm-promotion")
    if not hooks or d.done("confirm-promotion"):
        return True
    analysis = d.release.spec.analysis
    assert analysis is not None
    wait = gate_wait(analysis.interval_seconds,
                     AnalysisStatus(last_gate_time=d.status.last_gate_time), d.now)
    if wait > 0:
        d.requeue = wait
        return False
    results = d.answers(hooks)
    if results is None:
        d.call(hooks, "Progressing")
        d.requeue = 0.0
        return False
    if all(r.ok for r in results):
        d.mark_done("confirm-promotion")
        return True
    d.move(last_gate_time=d.now.isoformat())
    message = (f"{d.name}: confirm-promotion gate closed, promotion of lane {d.lane} waits "
               f"({failures(results)})")
    if d.status.message != message:
        d.event("WaitingForPromotion", message)
    d.say(message)
    d.requeue = analysis.interval_seconds
    return False


def _routes_settled(d: _Draft, wanted: int) -> bool:
    """Whether the gateway has routed `wanted` percent into the lane for `routeSettle`."""
    routed = d.observed.routed_weight
    if routed != wanted and not (wanted == 0 and routed is None):
        d.move(routes_since=None)
        d.requeue = ROUTES_POLL
        return False
    settle = d.release.spec.route_settle_seconds
    since = parse_time(d.status.routes_since)
    if since is None:
        d.move(routes_since=d.now.isoformat())
        d.requeue = settle
        return False
    left = settle - (d.now - since).total_seconds()
    if left > 0:
        d.requeue = left
        return False
    return True


def _promoting(d: _Draft) -> None:
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
                _roll_back_deleted(d, gone[0])
                return
        if not _routes_settled(d, 100):
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
                and _revision(rollout) == member.revision
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
    if not _routes_settled(d, 0):
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
        elif _stable(rollout) != member.revision:
            gone_back.append(member.name)
    if pending:
        d.say(f"promoting lane {d.lane}: waiting for {', '.join(pending)} to drop their canary")
        return
    deleted = [m.name for m in d.status.rollouts if m.deleted]
    if deleted:
        _end(d, "Failed", ROLLOUT_DELETED,
             f"workloadrollout/{', '.join(deleted)} deleted before it took the approval, its "
             f"base on the stable revision; the other services of lane {d.lane} are promoted")
        return
    if gone_back:
        _end(d, "Failed", ROLLOUT_FAILED,
             f"workloadrollout/{', '.join(gone_back)} rolled back on its own during promotion; "
             f"the other services of lane {d.lane} are promoted")
        return
    _end(d, "Succeeded", None, f"lane {d.lane} promoted: "
                               f"{', '.join(m.name for m in d.status.rollouts)} run the new "
                               "version together")


def _healthy(rollout: WorkloadRollout) -> bool:
    return rollout.status is not None and rollout.status.phase == "Healthy"


def _took_approval(rollout: WorkloadRollout) -> bool:
    """Whether a member acted on the release's approval: its base rolls to the new version."""
    return rollout.status is not None and rollout.status.phase == "Promoting"


def _enter_rollback(d: _Draft, reason: str, message: str) -> None:
    d.move(phase="RollingBack", weight=0, reason=reason, routes_since=None)
    d.say(message)
    d.event("RollingBack", message, warning=True)
    d.requeue = 0.0


def _rolling_back(d: _Draft) -> None:
    if not _routes_settled(d, 0):
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
        if status.phase != "RollingBack" and _revision(rollout) == member.revision \
                and "undo" not in requested(rollout):
            d.intents.append(RolloutIntent(member.name, "undo", timestamp(d.now)))
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
    _end(d, "Failed", reason, f"lane {d.lane} rolled back ({cause}): every rollout is on "
                              "its stable revision; base was never restarted")


def _end(d: _Draft, phase: str, reason: str | None, message: str) -> None:
    hooks = d.hooks("post-rollout") if not d.done("post-rollout") else ()
    results = d.answers(hooks)
    if hooks and results is None:
        d.call(hooks, phase)
    d.move(phase=phase, weight=0, reason=reason)
    d.say(message)
    d.event("Succeeded" if phase == "Succeeded" else "RolledBack", message,
            warning=phase != "Succeeded")
    if results is not None:
        d.mark_done("post-rollout")
        bad = failures(results)
        d.event("PostRollout", f"{d.name}: post-rollout webhook(s) {names(hooks)} "
                               + (f"failed: {bad}" if bad else "passed"), warning=bool(bad))


def check_release_intent(release: LaneRelease, intent: Intent) -> str | None:
    """Why an intent cannot apply to the release now, or None when it can.

    The CLI calls this to refuse a verb before writing anything; the planner to drop an
    annotation written at the wrong time.
    """
    status = release.status or LaneReleaseStatus()
    phase, index = status.phase, status.current_step_index
    name = f"lanerelease/{release.metadata.name}"
    count = len(release.spec.all_steps)
    if intent == "undo":
        if phase not in ("Initial", "Waiting", "Progressing", "Paused"):
            return f"{name} is {phase.lower()}: nothing to undo"
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


def _take_intent(d: _Draft) -> bool:
    """Act on the release's own intents (undo, resume, pause, approve). True if one moved it."""
    present = requested(d.release)  # type: ignore[arg-type]
    if not present:
        return False
    for intent in present:
        d.clear.append(ANNOTATIONS[intent])
    if "pause" in present and "resume" in present:
        d.event("IntentRejected", "both pause and resume were requested; ignored both", True)
        present = {k: v for k, v in present.items() if k not in ("pause", "resume")}
    for intent in PRIORITY:
        if intent not in present:
            continue
        refused = check_release_intent(d.release.model_copy(update={"status": d.status}), intent)
        if refused is None and intent == "approve" \
                and present[intent].strip() != str(d.status.current_step_index):
            refused = (f"approve of step {present[intent]} is stale: {d.name} is at step "
                       f"{d.status.current_step_index}")
        if refused is not None:
            d.event("IntentRejected", refused, warning=True)
        elif intent == "undo":
            _enter_rollback(d, UNDO_REQUESTED, f"undo requested: rolling back lane {d.lane}")
            return True
        elif intent in ("pause", "resume"):
            d.move(paused=intent == "pause")
            d.event("Paused" if intent == "pause" else "Resumed", f"{d.name} {intent}d")
        elif not _member_trouble(d):
            d.event("Approved", f"{d.name} step {d.status.current_step_index} approved")
            _advance(d)
            return True
        else:
            return True
    return False


def _drop_intents(d: _Draft) -> None:
    for intent in requested(d.release):  # type: ignore[arg-type]
        d.clear.append(ANNOTATIONS[intent])


def driven_rollouts(release: LaneRelease) -> set[str]:
    """The rollouts a release drives now, whose own traffic steps therefore do not apply."""
    status = release.status
    if status is None or status.phase not in DRIVING:
        return set()
    return {m.name for m in status.rollouts}


def entry_weight(release: LaneRelease) -> int:
    """The share of untagged requests the release's lane should take at the gateway."""
    status = release.status
    return status.weight if status is not None and status.phase in DRIVING else 0


def entry_steps(
    group: SwimLaneGroup, lanes: Sequence[SwimLane], releases: Sequence[LaneRelease]
) -> dict[str, TrafficStep]:
    """The entry step of each release in force on one of the group's lanes, by entry service.

    The step is the group's entry service's (where the gateway sends requests), marked
    `enter`, so the gateway tags what it sends into the lane and every hop keeps it there.
    The release's `matches` hold while it progresses or promotes, not while it rolls back.
    """
    fallback = group.spec.fallback
    own = sorted((lane for lane in lanes if lane.group == group.name),
                 key=lambda lane: (lane.name != fallback, lane.name))
    names = {lane.name for lane in own}
    entry = entry_service(group, own)
    found: dict[str, TrafficStep] = {}
    if entry is None:
        return found
    for release in sorted(releases, key=lambda r: r.metadata.name):
        lane = release.spec.swim_lane_ref.name
        status = release.status
        if lane not in names or lane == group.spec.fallback or status is None:
            continue
        matches = release.spec.matches if status.phase in ENTERING else []
        weight = entry_weight(release)
        if weight or matches:
            found[entry] = TrafficStep(
                lane=lane, weight=weight, matches=[m.to_request_match() for m in matches],
                enter=True,
            )
    return found
