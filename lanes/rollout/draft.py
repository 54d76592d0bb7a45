"""The working copy of a rollout's status while one step is planned."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lanes.api.analysis import Analysis, AnalysisStatus
from lanes.api.workloadrollout import (
    CanaryStatus,
    FailedRevision,
    CanaryStep,
    Phase,
    StepState,
    WorkloadRollout,
    WorkloadRolloutStatus,
)

from .actions import HELD_ANNOTATION, Action, ApplyCanary, ClearIntent, Event, Plan
from .autoscaler import owns_autoscaler
from .batches import step_replicas
from .canary import canary_deployment, canary_name, owns
from .checks import PROGRESS_DEADLINE_EXCEEDED, failure_reason, waits_for_approval
from .conditions import (
    METRICS_AVAILABLE,
    PROGRESSING,
    SUCCEEDED,
    WORKLOAD_NOT_FOUND,
    find_condition,
    set_condition,
)
from .engine import Drafting
from .hooks import HookCall, release_hooks
from .intents import ANNOTATIONS, Intent
from .observed import DeploymentView, Observed
from .status import current_step, parse_time, step_count, timestamp

_PROGRESSING_REASON: dict[str, tuple[str, str]] = {
    "Progressing": ("True", "InRolling"),
    "Paused": ("True", "Paused"),
    "Promoting": ("True", "Promoting"),
    "RollingBack": ("True", "RollingBack"),
}
_CANARY_FIELDS = {
    "stable": "stable_revision",
    "canary_revision": "canary_revision",
    "index": "current_step_index",
    "state": "current_step_state",
    "replicas": "canary_replicas",
    "ready": "canary_ready_replicas",
    "last_update": "last_update_time",
}
"""The draft's fields that are the stored `canaryStatus`'s, by the name each has there."""
Outcome = tuple[tuple[str, str], tuple[str, str]]
PROMOTED: Outcome = (("False", "Completed"), ("True", "Promoted"))
ROLLED_BACK: Outcome = (("False", "Cancelled"), ("False", "RolledBack"))


@dataclass
class Draft(Drafting):
    """The status being planned, the observations it is planned from, and the actions so far.

    `move` records the one state transition a plan may make; everything else a handler does
    is bookkeeping (replica counts, message) or a correction of what is observed. `fresh`
    drops the stored conditions: a rollout that failed before it ever ran (a Conflict) starts
    with no history once it can run. `analysis` is the analysis status to store, `check` the
    analysis whose check this plan asks the operator for; `failed` the revision whose release
    was rolled back, held until a retry; `missing` that `spec.workloadRef.name` names no
    Deployment (condition `Progressing=False`, `WorkloadNotFound`).
    """

    rollout: WorkloadRollout
    observed: Observed
    now: datetime
    phase: Phase
    paused: bool
    stable: str | None
    canary_revision: str | None
    index: int
    state: StepState | None
    replicas: int
    ready: int
    last_update: str | None
    message: str | None
    actions: list[Action] = field(default_factory=list)
    moved: bool = False
    requeue: float | None = None
    failure: str = PROGRESS_DEADLINE_EXCEEDED
    outcome: Outcome | None = None
    fresh: bool = False
    analysis: AnalysisStatus | None = None
    failed: FailedRevision | None = None
    missing: bool = False
    check: Analysis | None = None
    calls: list[HookCall] = field(default_factory=list)

    @classmethod
    def of(cls, rollout: WorkloadRollout, observed: Observed, now: datetime) -> Draft:
        """A draft starting from the rollout's stored status."""
        status = rollout.status or WorkloadRolloutStatus()
        canary = status.canary_status or CanaryStatus()
        return cls(
            rollout=rollout,
            observed=observed,
            now=now,
            phase=status.phase,
            paused=status.paused,
            message=status.message,
            **{mine: getattr(canary, theirs) for mine, theirs in _CANARY_FIELDS.items()},
            failure=_failure_reason(status),
            analysis=status.analysis,
            failed=status.failed_revision,
        )

    @property
    def base(self) -> DeploymentView:
        """The base Deployment; handlers run only once it is known to exist."""
        assert self.observed.base is not None
        return self.observed.base

    @property
    def name(self) -> str:
        """How messages name the rollout."""
        return f"workloadrollout/{self.rollout.metadata.name}"

    @property
    def canary_name(self) -> str:
        """The canary Deployment's name."""
        return canary_name(self.rollout.spec.workload_ref.name)

    @property
    def canary(self) -> DeploymentView | None:
        """The canary Deployment when it is this rollout's own."""
        found = self.observed.canary
        return found if found is not None and owns(self.rollout, found) else None

    @property
    def foreign_canary(self) -> bool:
        """Whether something else already holds the canary Deployment's name."""
        return self.observed.canary is not None and self.canary is None

    @property
    def autoscaled(self) -> bool:
        """Whether the canary runs under its own copy of the base's autoscaler."""
        found = self.observed.canary_autoscaler
        return (self.rollout.spec.autoscaler_ref is not None and found is not None
                and owns_autoscaler(self.rollout, found))

    @property
    def held(self) -> bool:
        """Whether the base's pause is this rollout's hold (`lanes.dev/held-by`)."""
        return self.base.annotations.get(HELD_ANNOTATION) == self.rollout.metadata.name

    @property
    def is_paused(self) -> bool:
        """Paused by the spec or by a pause request (as planned so far)."""
        return self.rollout.spec.strategy.paused or self.paused

    @property
    def step(self) -> CanaryStep:
        """The current step."""
        return current_step(self.rollout, self.index)

    @property
    def steps(self) -> int:
        """How many steps there are."""
        return step_count(self.rollout)

    @property
    def where(self) -> str:
        """`step i/N`, for messages."""
        return f"step {self.index}/{self.steps}"

    @property
    def awaiting_approval(self) -> bool:
        """Whether the step is paused until someone approves it."""
        return self.state == "StepPaused" and waits_for_approval(self.rollout, self.index)

    @property
    def last_update_time(self) -> datetime:
        """When the step state last changed; now, if never recorded."""
        return parse_time(self.last_update) or self.now

    def desired_canary(self, index: int | None = None) -> dict[str, Any]:
        """The canary Deployment a step wants."""
        step = current_step(self.rollout, index or self.index)
        replicas = step_replicas(step, self.base.replicas)
        return canary_deployment(self.rollout, self.base, replicas)

    def act(self, action: Action) -> None:
        """Add an action, once."""
        applies = isinstance(action, ApplyCanary)
        if applies and any(isinstance(a, ApplyCanary) for a in self.actions):
            return
        if action not in self.actions:
            self.actions.append(action)

    def post(self, event: Event) -> None:
        """Events are actions, carried out after the status is written."""
        self.act(event)

    def reject(self, intent: Intent, error: str) -> None:
        """An intent that cannot apply: its annotation goes, and an event says why."""
        self.act(ClearIntent(ANNOTATIONS[intent]))
        super().reject(intent, error)

    def move(self, **changes: Any) -> None:
        """Make this plan's state transition; touching the step stamps `lastUpdateTime`."""
        for key, value in changes.items():
            setattr(self, key, value)
        if {"phase", "index", "state"} & changes.keys() and "last_update" not in changes:
            self.last_update = timestamp(self.now)
        self.moved = True

    def fail(self, reason: str, message: str) -> None:
        """Enter (or stay in) Failed; entering it is a move and gets a Warning event."""
        self.failure = reason
        self.message = message
        if self.phase != "Failed":
            self.move(phase="Failed", last_update=self.last_update)
            self.event(reason, message, warning=True)

    def plan(self) -> Plan:
        """The plan this draft describes."""
        old = self.rollout.status or WorkloadRolloutStatus()
        generation = self.rollout.metadata.generation
        conditions = [] if self.fresh else list(old.conditions)
        if not self.missing:
            conditions = [c for c in conditions if c.reason != WORKLOAD_NOT_FOUND]
        message = self.message or ""

        def put(kind: str, pair: tuple[str, str]) -> None:
            nonlocal conditions
            conditions = set_condition(
                conditions, kind, pair[0], pair[1], message, self.now, generation
            )

        if self.missing:
            put(PROGRESSING, ("False", WORKLOAD_NOT_FOUND))
        elif self.phase in _PROGRESSING_REASON:
            put(PROGRESSING, _PROGRESSING_REASON[self.phase])
            put(SUCCEEDED, ("Unknown", "InProgress"))
        elif self.phase == "Failed":
            put(PROGRESSING, ("False", self.failure))
            put(SUCCEEDED, ("False", self.failure))
        elif self.outcome is not None:
            put(PROGRESSING, self.outcome[0])
            put(SUCCEEDED, self.outcome[1])
        conditions = _metrics_condition(conditions, self.analysis, self.now, generation)
        canary = None
        if self.stable is not None or self.canary_revision is not None:
            canary = CanaryStatus(
                **{theirs: getattr(self, mine) for mine, theirs in _CANARY_FIELDS.items()}
            )
        status = WorkloadRolloutStatus(
            phase=self.phase,
            paused=self.paused,
            canary_status=canary,
            analysis=self.analysis,
            failed_revision=self.failed,
            conditions=conditions,
            observed_generation=generation,
            message=self.message,
        )
        requeue = 0.0 if self.moved else self.requeue
        plan = Plan(status=status, actions=tuple(self.actions), requeue_after=requeue)
        return Plan(
            status, plan.changes + plan.followups, requeue, self.check, tuple(self.calls),
            release_hooks(self.rollout, "event"),
        )


def _metrics_condition(
    conditions: list, analysis: AnalysisStatus | None, now: datetime, generation: int | None
) -> list:
    """`MetricsAvailable=False` (reason `PrometheusUnavailable`, or `NoData` for a scrape gap)
    while the analysis holds, or ended, on Prometheus not answering; back to True (`PrometheusAnswered`) with the first check
    judged on values after that. A rollout whose Prometheus never failed has no such condition."""
    if analysis is None:
        return conditions
    if analysis.unavailable_since is not None:
        message = analysis.message or "Prometheus unavailable"
        reason = "NoData" if analysis.no_data else "PrometheusUnavailable"
        return set_condition(conditions, METRICS_AVAILABLE, "False", reason,
                             f"since {analysis.unavailable_since}: {message}", now, generation)
    old = find_condition(conditions, METRICS_AVAILABLE)
    if old is None or old.status == "True" or analysis.last_check_time is None:
        return conditions
    return set_condition(conditions, METRICS_AVAILABLE, "True", "PrometheusAnswered",
                         f"Prometheus answered the check at {analysis.last_check_time}", now,
                         generation)


def rolled_back(
    analysis: AnalysisStatus | None, failed: FailedRevision | None = None,
    revision: str | None = None,
) -> Outcome:
    """How a finished roll back ends: `RolledBack`, the analysis failure that caused it, or
    `ProgressDeadlineExceeded` when the rollout's own deadline rolled `revision` back."""
    reason = failure_reason(analysis)
    if reason is None and failed is not None and failed.revision == revision \
            and failed.reason == PROGRESS_DEADLINE_EXCEEDED:
        reason = failed.reason
    return ROLLED_BACK if reason is None else (ROLLED_BACK[0], ("False", reason))


def succeeded_reason(rollout: WorkloadRollout) -> str | None:
    """The reason on the stored `Succeeded` condition: how the last release ended."""
    status = rollout.status or WorkloadRolloutStatus()
    found = find_condition(status.conditions, SUCCEEDED)
    return found.reason if found else None


def _failure_reason(status: WorkloadRolloutStatus) -> str:
    found = find_condition(status.conditions, PROGRESSING)
    if status.phase == "Failed" and found is not None and found.reason:
        return found.reason
    return PROGRESS_DEADLINE_EXCEEDED
