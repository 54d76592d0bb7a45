"""What a plan asks the operator to do, and the plan itself.

Actions name objects in the rollout's namespace. The operator carries out `Plan.changes` in
order and stops at the first failure without writing the status, so the next reconcile plans
the same step again; after the status is written it carries out `Plan.followups`. Clearing an
intent only after the status records its effect means a crash in between leaves an intent
that the next plan recognises as already done, rather than a lost approve or undo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lanes.api.analysis import Analysis, Webhook
from lanes.api.workloadrollout import WorkloadRolloutStatus

from .hooks import CallsOut, HookCall


HELD_ANNOTATION = "lanes.dev/held-by"
LANE_RELEASE_ANNOTATION = "lanes.dev/lane-release"
"""Set by a LaneRelease on the rollouts it promotes: once its base runs the new revision the
rollout keeps its canary (and stays Promoting) until the release removes the mark, after it
has taken its lane's untagged traffic off the canaries."""


@dataclass(frozen=True)
class PauseBase:
    """Hold the base Deployment on its running version.

    Set `spec.paused: true` and annotate `lanes.dev/held-by: <rollout name>` in the same
    write (as the admission webhook does when it pauses), so a later plan can tell its own
    hold from a pause the Deployment's owner made.
    """

    name: str


@dataclass(frozen=True)
class UnpauseBase:
    """Release the base Deployment: `spec.paused: false`, `lanes.dev/held-by` removed."""

    name: str


@dataclass(frozen=True)
class ApplyCanary:
    """Create or update the canary Deployment (server-side apply of the whole object)."""

    deployment: dict[str, Any] = field(hash=False)

    @property
    def name(self) -> str:
        """The canary Deployment's name."""
        return self.deployment["metadata"]["name"]


@dataclass(frozen=True)
class ScaleCanary:
    """Set the canary Deployment's `spec.replicas`."""

    name: str
    replicas: int


@dataclass(frozen=True)
class DeleteCanary:
    """Delete the canary Deployment; a missing one counts as deleted."""

    name: str


@dataclass(frozen=True)
class ApplyAutoscaler:
    """Create or update the canary's HorizontalPodAutoscaler (server-side apply, whole object)."""

    autoscaler: dict[str, Any] = field(hash=False)

    @property
    def name(self) -> str:
        """The canary autoscaler's name (the canary Deployment's)."""
        return self.autoscaler["metadata"]["name"]


@dataclass(frozen=True)
class DeleteAutoscaler:
    """Delete the canary's HorizontalPodAutoscaler; a missing one counts as deleted."""

    name: str


@dataclass(frozen=True)
class RestoreBaseTemplate:
    """Write the stable ReplicaSet's template back into the base Deployment.

    The template equals that ReplicaSet's minus its `pod-template-hash` label, so the
    Deployment controller adopts the ReplicaSet as current and starts no new pod.
    """

    name: str
    template: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class ClearIntent:
    """Remove one intent annotation from the WorkloadRollout."""

    annotation: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the WorkloadRollout."""

    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


Change = (
    PauseBase | UnpauseBase | ApplyCanary | ScaleCanary | DeleteCanary | RestoreBaseTemplate
    | ApplyAutoscaler | DeleteAutoscaler
)
Followup = ClearIntent | Event
Action = Change | Followup


@dataclass(frozen=True)
class Plan(CallsOut):
    """One reconcile's outcome: the status to write and the actions that lead to it.

    `requeue_after` is when to plan again without a new observation: 0 when the state moved
    (the next step may already be possible), the seconds until a pause or deadline expires, or
    None when only a change in the cluster or an intent can move the rollout; while a step is
    under analysis, also the seconds until its next check is due.

    `check` is the analysis whose check is due, asked for only by a plan made without readings
    (`Observed.readings` None). The operator then queries its metrics and calls its `rollout`
    webhooks, and plans again with the same `now` and `Observed.with_check(...)`; it carries
    out that second plan, never the one that asked. That one moves nothing; its requeue is
    the analysis interval, so an operator that cannot check retries then instead of at once.

    `hooks_due` are the webhooks of the other types (`lanes.rollout.hooks`) to call now, each
    with the phase its payload carries, asked for the same way: alone (a gate, post-rollout)
    or with `check` (pre-rollout, rollback). The operator calls them before the check's
    metrics are read and passes every answer back in `Observed.hooks`. `event_hooks` are
    called by the operator with each Event it posts; their answers are not planned from.
    """

    status: WorkloadRolloutStatus
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None
    check: Analysis | None = None
    hooks_due: tuple[HookCall, ...] = ()
    event_hooks: tuple[Webhook, ...] = ()

    @property
    def hook_types(self) -> tuple[str, ...]:
        """The types of the hooks due, in the order asked."""
        return tuple(dict.fromkeys(c.type for c in self.hooks_due))

    @property
    def check_due(self) -> bool:
        """Whether the operator must make an analysis check and plan again with it."""
        return self.check is not None

    @property
    def changes(self) -> tuple[Change, ...]:
        """The workload changes, in the order they must be made."""
        return tuple(a for a in self.actions if not isinstance(a, ClearIntent | Event))

    @property
    def followups(self) -> tuple[Followup, ...]:
        """Intent clean-up and events, for after the status is written."""
        return tuple(a for a in self.actions if isinstance(a, ClearIntent | Event))
