"""What the planner reads from the cluster: the base Deployment, its ReplicaSets, the canary.

The views are built from objects as the API server returns them (camelCase JSON, as in a
kopf body or `ApiClient.sanitize_for_serialization`), keeping only what the state machine
needs, so tests can write them by hand and the planner never sees a client object.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lanes.analysis.verdict import HookResult, Reading

from .revisions import POD_TEMPLATE_HASH, pod_template, template_hash

REVISION_NUMBER = "deployment.kubernetes.io/revision"
DEFAULT_PROGRESS_DEADLINE = 600


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _controller_uid(metadata: Mapping[str, Any]) -> str | None:
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


@dataclass(frozen=True)
class DeploymentView:
    """The parts of a Deployment the rollout reads: spec, rollout progress, identity."""

    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    selector: Mapping[str, str] = field(default_factory=dict)
    template: Mapping[str, Any] = field(default_factory=dict)
    paused: bool = False
    strategy: Mapping[str, Any] | None = None
    min_ready_seconds: int = 0
    revision_history_limit: int | None = None
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE
    observed_generation: int = 0
    status_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> DeploymentView:
        """The view of a Deployment object."""
        metadata, spec, status = _parts(obj)
        return cls(
            name=metadata["name"],
            namespace=metadata.get("namespace") or "default",
            uid=metadata.get("uid"),
            generation=_int(metadata.get("generation"), 1),
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            replicas=_int(spec.get("replicas"), 1),
            selector=dict((spec.get("selector") or {}).get("matchLabels") or {}),
            template=spec.get("template") or {},
            paused=bool(spec.get("paused")),
            strategy=spec.get("strategy"),
            min_ready_seconds=_int(spec.get("minReadySeconds")),
            revision_history_limit=spec.get("revisionHistoryLimit"),
            progress_deadline_seconds=_int(
                spec.get("progressDeadlineSeconds"), DEFAULT_PROGRESS_DEADLINE
            ),
            observed_generation=_int(status.get("observedGeneration")),
            status_replicas=_int(status.get("replicas")),
            updated_replicas=_int(status.get("updatedReplicas")),
            available_replicas=_int(status.get("availableReplicas")),
        )

    @property
    def revision(self) -> str:
        """The revision of the pod template the Deployment declares."""
        return template_hash(self.template)

    @property
    def rolled_out(self) -> bool:
        """Whether every pod runs the declared template and is available.

        The same test as `kubectl rollout status`: the controller has seen the latest spec,
        and updated, total and available replicas all equal the desired count.
        """
        return (
            not self.paused
            and self.observed_generation >= self.generation
            and self.updated_replicas == self.replicas
            and self.status_replicas == self.replicas
            and self.available_replicas == self.replicas
        )


@dataclass(frozen=True)
class ReplicaSetView:
    """One ReplicaSet of the base Deployment: which template it runs and how many pods."""

    name: str
    template: Mapping[str, Any] = field(default_factory=dict)
    pod_template_hash: str = ""
    revision_number: int = 0
    replicas: int = 0
    available_replicas: int = 0
    owner_uid: str | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ReplicaSetView:
        """The view of a ReplicaSet object."""
        metadata, spec, status = _parts(obj)
        return cls(
            name=metadata["name"],
            template=spec.get("template") or {},
            pod_template_hash=(metadata.get("labels") or {}).get(POD_TEMPLATE_HASH, ""),
            revision_number=_int((metadata.get("annotations") or {}).get(REVISION_NUMBER)),
            replicas=_int(spec.get("replicas")),
            available_replicas=_int(status.get("availableReplicas")),
            owner_uid=_controller_uid(metadata),
        )

    @property
    def revision(self) -> str:
        """The revision of the template this ReplicaSet runs."""
        return template_hash(self.template)

    @property
    def deployment_template(self) -> dict[str, Any]:
        """The template to write into the Deployment to make it adopt this ReplicaSet again."""
        return pod_template(self.template)


@dataclass(frozen=True)
class AutoscalerView:
    """The parts of a HorizontalPodAutoscaler the planner reads."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> AutoscalerView:
        """The view of an autoscaling/v2 HorizontalPodAutoscaler as the API server returns it."""
        metadata = obj.get("metadata") or {}
        return cls(
            name=metadata["name"],
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            spec=copy.deepcopy(dict(obj.get("spec") or {})),
        )


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile of a WorkloadRollout looks at.

    `base` is None when the target Deployment does not exist; `canary` is whatever Deployment
    carries the canary's name, which the planner checks is its own before touching it;
    `driven_by` names another WorkloadRollout that already drives the base, since one
    Deployment takes one rollout at a time.

    `readings` (one per metric) and `hooks` (the webhooks' outcomes, each with its type) are what
    the operator asked for this reconcile, at the `now` it plans with: `readings` is None when it
    made no check, which it does only when a plan asks for one (`Plan.check`), and `hooks` holds
    the `rollout` hooks of that check and whatever `Plan.hooks_due` named.

    `autoscaler` is the HorizontalPodAutoscaler `spec.autoscalerRef` names (None when the
    rollout names none or it does not exist), `canary_autoscaler` whatever autoscaler carries
    the canary's name.
    """

    base: DeploymentView | None
    replica_sets: tuple[ReplicaSetView, ...] = ()
    canary: DeploymentView | None = None
    driven_by: str | None = None
    readings: Mapping[str, Reading] | None = field(default=None, hash=False)
    hooks: Sequence[HookResult] = field(default=(), hash=False)
    autoscaler: AutoscalerView | None = field(default=None, hash=False)
    canary_autoscaler: AutoscalerView | None = field(default=None, hash=False)

    @classmethod
    def from_objects(
        cls,
        base: Mapping[str, Any] | None,
        replica_sets: Iterable[Mapping[str, Any]] = (),
        canary: Mapping[str, Any] | None = None,
        driven_by: str | None = None,
        readings: Mapping[str, Reading] | None = None,
        hooks: Sequence[HookResult] = (),
        autoscaler: Mapping[str, Any] | None = None,
        canary_autoscaler: Mapping[str, Any] | None = None,
    ) -> Observed:
        """Views of raw objects; ReplicaSets another controller owns are left out."""
        base_view = DeploymentView.from_object(base) if base else None
        owner = base_view.uid if base_view else None
        sets = tuple(
            rs
            for rs in (ReplicaSetView.from_object(obj) for obj in replica_sets)
            if owner is None or rs.owner_uid in (None, owner)
        )
        return cls(
            base=base_view,
            replica_sets=sets,
            canary=DeploymentView.from_object(canary) if canary else None,
            driven_by=driven_by,
            readings=readings,
            hooks=tuple(hooks),
            autoscaler=AutoscalerView.from_object(autoscaler) if autoscaler else None,
            canary_autoscaler=(
                AutoscalerView.from_object(canary_autoscaler) if canary_autoscaler else None
            ),
        )

    def with_check(
        self, readings: Mapping[str, Reading], hooks: Sequence[HookResult] = ()
    ) -> Observed:
        """The same observations plus the analysis check the operator just made."""
        return replace(self, readings=dict(readings), hooks=tuple(hooks))

    def with_hooks(self, hooks: Sequence[HookResult]) -> Observed:
        """The same observations plus the answers of webhooks called without a check."""
        return replace(self, hooks=tuple(hooks))

    def replica_set_of(self, revision: str) -> ReplicaSetView | None:
        """The newest ReplicaSet running a revision, if one still exists."""
        matching = [rs for rs in self.replica_sets if rs.revision == revision]
        return max(matching, key=lambda rs: rs.revision_number, default=None)

    def running_revision(self) -> str | None:
        """The revision the base runs now, for a rollout that has recorded none yet.

        The base's own template when a ReplicaSet already runs it (or none exists: a new
        Deployment has nothing older to protect); otherwise the template is held back, paused
        before its ReplicaSet was created, and the newest ReplicaSet with pods is what runs.
        """
        if self.base is None:
            return None
        revision = self.base.revision
        if not self.replica_sets or self.replica_set_of(revision):
            return revision
        with_pods = [rs for rs in self.replica_sets if rs.replicas > 0] or list(self.replica_sets)
        return max(with_pods, key=lambda rs: rs.revision_number).revision


def _parts(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    """An object's metadata, spec and status, each empty when absent."""
    return obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
