"""The lane as a unit of the step engine: what is observed of it, its draft, its plan.

A lane release's canary is the lane (the canary pods of its member WorkloadRollouts), its
traffic the lane's entry weight at the gateway. Its draft (`ReleaseDraft`) is the status
being planned, on the engine's `Drafting`, plus the member intents and the release's own
intent annotations to clear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from lanes.analysis.verdict import HookResult, Reading
from lanes.api.analysis import Analysis, Webhook, WebhookType
from lanes.api.lanerelease import LaneRelease, LaneReleaseStatus, LaneReleaseStep
from lanes.api.swimlane import SwimLane
from lanes.api.workloadrollout import WorkloadRollout

from ..actions import LANE_RELEASE_ANNOTATION, Event
from ..conditions import PROGRESSING, READY, SUCCEEDED, set_condition
from ..engine import Drafting
from ..hooks import CallsOut, HookCall, answered, answers, hooks_of
from ..intents import ANNOTATIONS, Intent
from ..status import utc

IN_RELEASE = ("Waiting", "Progressing", "Paused", "Promoting", "RollingBack")
DRIVING = ("Progressing", "Paused", "Promoting", "RollingBack")
ENDED = ("Succeeded", "Failed")
ENTERING = ("Progressing", "Paused", "Promoting")

ANALYSIS_FAILED = "AnalysisFailed"
ANALYSIS_UNAVAILABLE = "AnalysisUnavailable"
ROLLOUT_DELETED = "RolloutDeleted"
ROLLOUT_FAILED = "RolloutFailed"
LANE_DELETED = "LaneDeleted"
UNDO_REQUESTED = "UndoRequested"
UNSUPPORTED_FLAVOUR = "UnsupportedFlavour"
SWIM_LANE_NOT_FOUND = "SwimLaneNotFound"
PROMOTED = "Promoted"


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
class ReleasePlan(CallsOut):
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


class ReleaseDraft(Drafting):
    """The release's status being planned, and what the plan collects on the way.

    `members` are the release's rollouts present now, `missing` the names of those it names
    that are not (`members.member_rollouts`).
    """

    def __init__(self, release: LaneRelease, observed: ReleaseObserved, now: datetime,
                 members: Sequence[WorkloadRollout], missing: Sequence[str]):
        self.release = release
        self.observed = observed
        self.now = utc(now)
        self.status = release.status or LaneReleaseStatus()
        self.intents: list[RolloutIntent] = []
        self.events: list[Event] = []
        self.clear: list[str] = []
        self.check: Analysis | None = None
        self.calls: list[HookCall] = []
        self.requeue: float | None = None
        self.steps = release.spec.all_steps
        self.members, self.missing = list(members), list(missing)

    @property
    def name(self) -> str:
        return f"lanerelease/{self.release.metadata.name}"

    @property
    def lane(self) -> str:
        return self.release.spec.swim_lane_ref.name

    def move(self, **changes: object) -> None:
        self.status = self.status.model_copy(update=changes)

    def post(self, event: Event) -> None:
        self.events.append(event)

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
            hooks_due=tuple(self.calls), event_hooks=self.hooks("event"),
        )

    def _conditions(self) -> None:
        phase, generation = self.status.phase, self.release.metadata.generation
        conditions = self.status.conditions
        message = self.status.message or phase
        refused = self.status.reason if phase in ("Initial", "Waiting") else None
        invalid = refused in ("InvalidSpec", UNSUPPORTED_FLAVOUR, SWIM_LANE_NOT_FOUND)
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


def enter_rollback(d: ReleaseDraft, reason: str, message: str) -> None:
    """Roll the lane back: its entry weight to 0 at once, its members undone only once the
    gateway has routed 0 for `routeSettle` (`members.roll_back`)."""
    d.move(phase="RollingBack", weight=0, reason=reason, routes_since=None)
    d.say(message)
    d.event("RollingBack", message, warning=True)
    d.requeue = 0.0
