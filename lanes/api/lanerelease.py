"""LaneRelease: one change spanning several services, released as one unit through its lane.

A LaneRelease names a SwimLane and the WorkloadRollouts whose canary pods join it (`rollouts`,
or, left empty, every rollout in the namespace whose `patchPodTemplateMetadata` labels put its
canary pods in the lane). Its steps are the lane's *entry weight*: the share of untagged
requests that the gateway puts into the lane, and that then stay in it on every hop. Its
`analysis` has a WorkloadRollout's layout and is evaluated for every service of the lane, each
on its own lane subset; promotion and roll back take every rollout of the lane together. Its
webhooks are Flagger's, called for the lane as a whole (`lanes.rollout.lanerelease`):
`pre-rollout`, `rollout`, `confirm-promotion`, `post-rollout`, `rollback` and `event`.
Its `mirror` adds a shadow step before the first entry weight: the lane is judged on copies of
real requests while every user is still served by base.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .alertprovider import Alert
from .analysis import Analysis, Duration, MetricStatus, WebhookType, seconds
from .bluegreen import BlueGreen
from .common import Condition, DnsLabel, Model, Resource
from .sessionaffinity import SessionAffinity
from .workloadrollout import HttpRouteMatch, Pause

KIND = "LaneRelease"

Phase = Literal[
    "Initial", "Waiting", "Progressing", "Paused", "Promoting", "RollingBack", "Succeeded",
    "Failed",
]


class LaneReleaseStep(Model):
    """One entry weight (percent of untagged requests entering the lane), then a pause.

    Under analysis a step without `pause` continues once a check passes, `pause: {}` waits
    for approval too, `pause: {duration}` for the duration and a passing check; without
    analysis a step without `pause` waits for approval, as a WorkloadRollout's step does.
    """

    weight: int = Field(ge=1, le=100)
    pause: Pause | None = None


class Mirror(Model):
    """Shadow traffic: a step, before the first entry weight, judged on copies of real requests.

    At that step no request enters the lane; the gateway copies `percent` of the untagged
    requests into the lane's pods of the entry service and discards the copies' answers. Every
    later hop of a copy stays in the lane: where the lane has no pod of a service the copy is
    answered 503 by the calling proxy, unless `fallbackToBase` lets it reach base's pods (whose
    own downstream calls then reach base too, with the copy's writes). `pause` is the shadow
    step's, as a step's. Flagger's `mirror`/`mirrorWeight` and Argo's `setMirrorRoute`, but
    for the whole chain rather than one hop.
    """

    percent: int = Field(default=100, ge=1, le=100)
    fallback_to_base: bool = False
    pause: Pause | None = None


class SwimLaneRef(Model):
    """The lane released (a SwimLane is cluster-scoped)."""

    name: DnsLabel


class LaneReleaseSpec(Model):
    """What a LaneRelease declares.

    Either `steps`, or Flagger's `stepWeight` (and `maxWeight`, default 50): the weights
    stepWeight, 2 x stepWeight, ... up to maxWeight. `matches` put every untagged request
    they select into the lane whatever the weight (a tester's header, say). `routeSettle` is
    how long a changed entry weight, once the gateway's route holds it, is given to reach every
    proxy before the release acts on it (Istio pushes configuration asynchronously).
    `sessionAffinity` makes entry sticky per user (`lanes.api.sessionaffinity`); `blueGreen`,
    instead of steps, previews the lane then switches every request at once (`lanes.api.bluegreen`).
    `alerts` say where the release's notices go, as a WorkloadRollout's do.
    """

    swim_lane_ref: SwimLaneRef
    rollouts: list[DnsLabel] = Field(default_factory=list)
    steps: list[LaneReleaseStep] = Field(default_factory=list)
    step_weight: int | None = Field(default=None, ge=1, le=100)
    max_weight: int | None = Field(default=None, ge=1, le=100)
    analysis: Analysis | None = None
    matches: list[HttpRouteMatch] = Field(default_factory=list)
    paused: bool = False
    route_settle: Duration = "2s"
    mirror: Mirror | None = None
    session_affinity: SessionAffinity | None = None
    blue_green: BlueGreen | None = None
    alerts: list[Alert] = Field(default_factory=list)

    @field_validator("steps")
    @classmethod
    def _rising(cls, steps: list[LaneReleaseStep]) -> list[LaneReleaseStep]:
        weights = [s.weight for s in steps]
        if weights != sorted(set(weights)):
            raise ValueError(f"step weights must rise from step to step; got {weights}")
        return steps

    @field_validator("rollouts")
    @classmethod
    def _once(cls, names: list[str]) -> list[str]:
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rollout {twice[0]!r} is listed twice")
        return names

    @field_validator("analysis")
    @classmethod
    def _no_confirm_rollout(cls, analysis: Analysis | None) -> Analysis | None:
        gates = [h.name for h in analysis.webhooks if h.type == "confirm-rollout"] \
            if analysis is not None else []
        if gates:
            raise ValueError(
                f"analysis.webhooks {gates[0]!r}: type confirm-rollout is not supported in a "
                "LaneRelease (its member rollouts keep their own); use pre-rollout to gate the "
                "lane before any traffic enters it"
            )
        return analysis

    @model_validator(mode="after")
    def _one_way_of_stepping(self) -> LaneReleaseSpec:
        if self.blue_green is not None:
            if self.steps or self.step_weight is not None or self.max_weight is not None:
                raise ValueError("give blueGreen or steps (or stepWeight), not both: a blue-green "
                                 "release switches at once")
            return self
        if self.steps and self.step_weight is not None:
            raise ValueError("give either steps or stepWeight, not both")
        if not self.steps and self.step_weight is None:
            raise ValueError("give steps (entry weights) or stepWeight")
        if self.max_weight is not None and self.step_weight is None:
            raise ValueError("maxWeight needs stepWeight")
        if self.step_weight is not None and self.step_weight > (self.max_weight or 50):
            raise ValueError(
                f"stepWeight {self.step_weight} is above maxWeight {self.max_weight or 50}"
            )
        return self

    @property
    def route_settle_seconds(self) -> float:
        return seconds(self.route_settle)

    @property
    def all_steps(self) -> list[LaneReleaseStep]:
        """The steps, Flagger's stepWeight/maxWeight expanded into explicit ones, or
        blue-green's preview (entry 0) and switch; after the shadow step (entry weight 0) when
        `mirror` is set."""
        shadow = self.shadow_steps()
        if self.blue_green is not None:
            return shadow + [LaneReleaseStep.model_construct(weight=weight, pause=pause)
                             for weight, pause in self.blue_green.stages()]
        if self.steps:
            return shadow + list(self.steps)
        top = self.max_weight or 50
        step = self.step_weight or top
        weights = list(range(step, top + 1, step))
        if weights[-1] != top:
            weights.append(top)
        return shadow + [LaneReleaseStep(weight=w) for w in weights]

    def shadow_steps(self) -> list[LaneReleaseStep]:
        """The shadow step of `mirror`, or none. Built unvalidated: its entry weight is 0,
        which a step a user writes may not have."""
        if self.mirror is None:
            return []
        return [LaneReleaseStep.model_construct(weight=0, pause=self.mirror.pause)]


class ServiceCheck(Model):
    """A service of the lane as the last check read it: its rollout and its metrics."""

    service: str
    rollout: str
    ok: bool = False
    metrics: list[MetricStatus] = Field(default_factory=list)


class MemberStatus(Model):
    """A rollout of the release, and what the release has done to it (`deleted`: deleted
    mid-release, kept so the release can name it once the rollout is gone)."""

    name: str
    revision: str | None = None
    promoted: bool = False
    undone: bool = False
    deleted: bool = False


class LaneReleaseStatus(Model):
    """The release's state machine, stored so a restarted operator resumes from it.

    `weight` is the entry weight in force (what the gateway routes); `failedChecks` counts the
    lane's failed checks since the release started (a check fails if any service's does);
    `services` the last metric values per service; `rollouts` which were approved for
    promotion or undone, so a restart neither promotes nor undoes twice; `checkStep` the step
    the last check was made at; `routesSince` when the gateway was first seen routing the
    weight the current move needs, so the change has time to reach every proxy first;
    `hooksDone` the webhook types that have done their part for the release; `lastGateTime`
    when a waiting `confirm-promotion` gate was last asked; `unavailableSince`, `noData` and
    `noTrafficSince` as in a rollout's analysis status.
    """

    phase: Phase = "Initial"
    paused: bool = False
    current_step_index: int = 0
    weight: int = 0
    step_start_time: str | None = None
    checks: int = 0
    failed_checks: int = 0
    last_check_time: str | None = None
    unavailable_since: str | None = None
    no_data: bool = False
    no_traffic_since: str | None = None
    analysis_phase: str | None = None
    step_passed: bool = False
    check_step: int | None = None
    routes_since: str | None = None
    hooks_done: list[WebhookType] = Field(default_factory=list)
    last_gate_time: str | None = None
    services: list[ServiceCheck] = Field(default_factory=list)
    rollouts: list[MemberStatus] = Field(default_factory=list)
    reason: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    message: str | None = None


class LaneRelease(Resource[LaneReleaseSpec, LaneReleaseStatus]):
    """A release of every service of one lane as one unit (namespaced, beside its rollouts)."""

    kind: Literal["LaneRelease"] = KIND
