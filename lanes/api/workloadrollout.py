"""WorkloadRollout: a Kruise-style batch canary of one Deployment, laid out as OpenKruise
Rollout v1beta1's canary strategy so existing Rollouts convert field for field."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from .alertprovider import Alert
from .analysis import Analysis, AnalysisStatus
from .common import Condition, DnsName, HeaderName, Model, RequestMatch, Resource, StringMatch

KIND = "WorkloadRollout"
_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")

Phase = Literal["Initial", "Healthy", "Progressing", "Paused", "Promoting", "RollingBack", "Failed"]
StepState = Literal["StepUpgrade", "StepPaused", "StepReady", "Completed"]


def _replicas(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError("replicas must not be negative")
        return value
    if not _PERCENT.match(value):
        raise ValueError(f"{value!r} is neither a replica count nor a percentage like '20%'")
    return value


IntOrPercent = Annotated[int | str, AfterValidator(_replicas)]


class WorkloadRef(Model):
    """The Deployment this rollout watches."""

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(min_length=1)


class AutoscalerRef(Model):
    """The base's HorizontalPodAutoscaler, as Flagger's `autoscalerRef` names it.

    While a release runs the canary Deployment gets a copy of it (scale target the canary,
    `minReplicas` the step's replica count), removed after promotion or roll back.
    """

    api_version: Literal["autoscaling/v2"] = "autoscaling/v2"
    kind: Literal["HorizontalPodAutoscaler"] = "HorizontalPodAutoscaler"
    name: DnsName


class Pause(Model):
    """A pause after a step: until approved (`{}`), or for `duration` seconds.

    Whether a step gives `pause` at all matters once analysis is in force: a step without one
    continues on its own when a check passes, while `pause: {}` still waits for approval.
    Without analysis an absent pause waits for approval, as Kruise's does.
    """

    duration: int | None = Field(default=None, ge=0)


def _traffic(value: str) -> str:
    if not _PERCENT.match(value):
        raise ValueError(f"{value!r} is not a percentage like '20%'")
    return value


Percent = Annotated[str, AfterValidator(_traffic)]


class PathMatch(Model):
    """Kruise's (Gateway API's) path match."""

    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = Field(min_length=1)


class HeaderMatch(Model):
    """Kruise's (Gateway API's) header match."""

    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str


class HttpRouteMatch(Model):
    """Kruise's request match: every header and the path must match."""

    path: PathMatch | None = None
    headers: list[HeaderMatch] = Field(default_factory=list)

    def to_request_match(self) -> RequestMatch:
        """The same match in Istio's terms."""
        uri = None
        if self.path is not None:
            kind = {"Exact": "exact", "PathPrefix": "prefix", "RegularExpression": "regex"}
            uri = StringMatch(**{kind[self.path.type]: self.path.value})
        headers = {
            h.name: StringMatch(**{"exact" if h.type == "Exact" else "regex": h.value})
            for h in self.headers
        }
        return RequestMatch(uri=uri, headers=headers)


class CanaryStep(Model):
    """One batch: how many canary pods run, the traffic they get, then how long to pause.

    `traffic` is the share of the service's untagged requests (those carrying no lane) sent to
    the canary while the step's pods are ready; `matches` send every untagged request they
    select there, whatever the share (Kruise's rule: matches win over the weight). Requests
    that carry a lane keep it.

    `analysis` replaces the release's analysis for this step (Flagger's layout); `pause` is
    None when the step gives none (see `Pause`).
    """

    replicas: IntOrPercent
    traffic: Percent | None = None
    matches: list[HttpRouteMatch] = Field(default_factory=list)
    pause: Pause | None = None
    analysis: Analysis | None = None

    @property
    def pause_duration(self) -> int | None:
        """The timed pause in seconds, None when the step pauses until approved or not at all."""
        return self.pause.duration if self.pause is not None else None

    @property
    def weight(self) -> int:
        """`traffic` as a number, 0 when unset."""
        return int(self.traffic.rstrip("%")) if self.traffic else 0


class PodTemplateMetadata(Model):
    """Labels and annotations merged into the canary pods, e.g. the canary lane's label."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Canary(Model):
    """The canary strategy; `analysis` checks metrics while each step's canary pods are ready."""

    enable_extra_workload_for_canary: bool = True
    steps: list[CanaryStep] = Field(min_length=1)
    patch_pod_template_metadata: PodTemplateMetadata | None = None
    failure_threshold: IntOrPercent | None = None
    analysis: Analysis | None = None


class Strategy(Model):
    """How the rollout proceeds; `paused` stops it where it is."""

    paused: bool = False
    canary: Canary


class WorkloadRolloutSpec(Model):
    """What a WorkloadRollout declares; `autoscalerRef` gives the canary the base's autoscaler,
    `alerts` say where the release's notices go.

    `progressDeadlineSeconds` rolls a release back when a step's canary pods are not available
    within that many seconds of the step's start (Flagger's deadline, Argo's with
    `progressDeadlineAbort`). Unset, the base Deployment's own deadline applies and a release
    past it is left Failed where it stands, canary and held base kept for a fix or an undo.
    """

    workload_ref: WorkloadRef
    strategy: Strategy
    autoscaler_ref: AutoscalerRef | None = None
    progress_deadline_seconds: int | None = Field(default=None, ge=1)
    alerts: list[Alert] = Field(default_factory=list)


class CanaryStatus(Model):
    """Where the canary is: revisions, step and replica counts."""

    stable_revision: str | None = None
    canary_revision: str | None = None
    current_step_index: int = 0
    current_step_state: StepState | None = None
    canary_replicas: int = 0
    canary_ready_replicas: int = 0
    last_update_time: str | None = None


class FailedRevision(Model):
    """A revision whose release failed: rolled back by its analysis, a webhook, or its lane
    release's failed checks (a person's undo is a decision, not a failure).

    Kept so that the same template applied again (a GitOps tool's self-heal re-applies what git
    holds once the roll back wrote the stable template back) starts no new release: the base
    stays held on the stable revision until `kubectl lane retry` or a new revision.
    """

    revision: str
    reason: str
    message: str | None = None
    time: str | None = None


class WorkloadRolloutStatus(Model):
    """The rollout's state machine, stored so a restarted operator resumes from it.

    `paused` is set by a pause request (`kubectl lane pause`) and cleared by resume; it lives
    here rather than in the spec so pausing never changes what the user declared. `analysis`
    is where the current (or last) release's metric analysis stands; a new release starts it
    afresh. `failedRevision` is the last release that was rolled back, until a retry or a
    release of another revision.
    """

    phase: Phase = "Initial"
    paused: bool = False
    canary_status: CanaryStatus | None = None
    analysis: AnalysisStatus | None = None
    failed_revision: FailedRevision | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    message: str | None = None


class WorkloadRollout(Resource[WorkloadRolloutSpec, WorkloadRolloutStatus]):
    """A rollout (namespaced, beside its Deployment)."""

    kind: Literal["WorkloadRollout"] = KIND
