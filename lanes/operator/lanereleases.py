"""The LaneRelease controller, on the controller shape: read -> finalizer -> parse -> lane and
members observed -> `plan_release` -> checks and webhooks -> plan again -> intents -> status.

A release is reconciled in its own coalescing queue, from fresh reads: the release, its lane,
the rollouts of its namespace, and the gateway VirtualService its lane's group generated (for
the entry weight in force). Order within a reconcile: the member intents the plan asks for
(approve or undo, written as `kubectl lane` writes them), then the status at the
resourceVersion planned from, then the release's own intents cleared and the events posted.
Any WorkloadRollout change in a namespace requeues the releases there; their entry weight is
rendered by the lane operator (`lanes.operator.plan`), not here.

Deleting a LaneRelease (lanes' finalizer) releases the canaries it held mid-promotion; its
entry weight leaves the routes with it, and the rollouts it drove are back to their own steps,
waiting for approval at their last one or finishing the promotion it approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from lanes.alerts import Notice, notices_of
from lanes.analysis.verdict import Reading
from lanes.api.analysis import Analysis
from lanes.api.common import GROUP, VERSION
from lanes.api.errors import from_validation_error
from lanes.api.lanerelease import LaneRelease, LaneReleaseStatus
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.alertproviders import AlertProvidersApi
from lanes.kube.kinds import ISTIO_GROUP, parse_all
from lanes.kube.lanereleases import PLURAL, LaneReleasesApi
from lanes.kube.ownership import is_generated
from lanes.render import flavour_for, sticky
from lanes.rollout import DeploymentView, conditions
from lanes.rollout.actions import LANE_RELEASE_ANNOTATION
from lanes.rollout.conditions import READY
from lanes.rollout.lanerelease import (
    ReleaseObserved,
    ReleasePlan,
    flagger_phase,
    member_rollouts,
    plan_release,
    release_checksum,
    under_analysis,
)

from .alerts import Alerter
from .analysis import check_context
from .checks import AnalysisSettings, call_hooks, load_secrets, load_templates, notify
from .controller import Done
from .releases import Release, ReleaseController, post_events


def lane_group(api: LaneReleasesApi, lane: SwimLane | None) -> SwimLaneGroup | None:
    """The group of `lane`, or None when it is not found or does not parse."""
    if lane is None or lane.group is None:
        return None
    body = api.group(lane.group)
    try:
        return SwimLaneGroup.model_validate(body) if body is not None else None
    except ValidationError:
        return None


def routed_weight(api: LaneReleasesApi, lane: SwimLane | None,
                  group: SwimLaneGroup | None) -> int | None:
    """The share of untagged requests the group's live gateway route puts into `lane`, as
    the group's flavour reads it back from its own object (None where it has none)."""
    if lane is None or group is None:
        return None
    try:
        flavour = flavour_for(group.spec.flavour)
    except ValueError:
        return None
    plugin = api.wasm_plugin(*sticky.plugin_location(group))
    if plugin is not None and sticky.enters(plugin, lane.name):
        # Under sticky entry the gateway's module puts users into the lane, not its route.
        return sticky.plugin_weight(plugin, lane.name)
    where = flavour.entry_route(group)
    route = api.virtual_service(*where) if where is not None else None
    return flavour.entered_weight(route, group, lane.name) if route is not None else None


def read_lane(
    api: LaneReleasesApi, analysis: Analysis | None, namespace: str, members: list[WorkloadRollout],
    settings: AnalysisSettings,
) -> tuple[dict[str, str], dict[str, dict[str, Reading]] | None, frozenset[str]]:
    """Each member's service, (with `analysis`) its readings on its own lane subset, and the
    members whose base runs their canary's revision on every replica."""
    services = api.rollouts.services(namespace)
    lanes = api.rollouts.swimlanes()
    templates = load_templates(api.rollouts, analysis, namespace)
    secrets = load_secrets(api.rollouts, analysis, templates, namespace)
    names, readings, rolled = {}, {}, set()
    for rollout in members:
        base = api.rollouts.deployment(namespace, rollout.spec.workload_ref.name)
        canary = rollout.status.canary_status if rollout.status else None
        if base is not None and canary is not None:
            view = DeploymentView.from_object(base)
            if view.rolled_out and view.revision == canary.canary_revision:
                rolled.add(rollout.metadata.name)
        context = check_context(rollout, base, services, lanes)
        names[rollout.metadata.name] = context.service
        if analysis is not None:
            readings[rollout.metadata.name] = settings.read(analysis, context, templates, secrets)
    return names, (readings if analysis is not None else None), frozenset(rolled)


def invalid_status(body: Mapping[str, Any], error: ValidationError, now: datetime) -> dict:
    """The status of a release whose spec does not parse: Ready=False naming each field."""
    metadata = body["metadata"]
    errors = from_validation_error(error, "LaneRelease", metadata["name"])
    try:
        old = LaneReleaseStatus.model_validate(body.get("status") or {}).to_wire()
    except ValidationError:
        old = LaneReleaseStatus().to_wire()
    return conditions.invalid_status(old, errors, metadata.get("generation"), now, READY,
                                     with_message=True)


def awaits_approval(release: LaneRelease, status: LaneReleaseStatus) -> bool:
    """Whether a release in `status` waits at its step for a person's approve."""
    index = status.current_step_index
    if status.phase != "Progressing" or status.paused or release.spec.paused \
            or not 1 <= index <= len(release.spec.all_steps):
        return False
    pause = release.spec.all_steps[index - 1].pause
    if pause is None:
        return not under_analysis(release.spec.analysis)
    return pause.duration is None


def release_notices(release: LaneRelease, plan: ReleasePlan) -> list[Notice]:
    """What a reconcile tells people: its events worth a notice, and a step that now waits
    for approval (the move into it, not every reconcile that finds it waiting)."""
    before = release.status or LaneReleaseStatus()
    after = plan.status
    moved = (before.phase, before.current_step_index, before.paused) != (
        after.phase, after.current_step_index, after.paused)
    return notices_of("lanerelease", release.metadata.name,
                      release.metadata.namespace or "default", list(plan.events),
                      moved and awaits_approval(release, after))


@dataclass(frozen=True)
class LaneSeen:
    """What a release plans from, and its member rollouts (whose metrics a check reads)."""

    observed: ReleaseObserved
    members: list[WorkloadRollout]


class LaneReleaseController(ReleaseController[LaneRelease, LaneSeen, ReleasePlan]):
    """Reconciles LaneReleaseController, each from fresh reads; knows the releases of each namespace."""

    api: LaneReleasesApi

    def __init__(self, api: LaneReleasesApi, **kwargs: Any):
        super().__init__(api, **kwargs)
        self.by_namespace: dict[str, set[str]] = {}
        self._alerter: Alerter | None = None

    @property
    def alerter(self) -> Alerter:
        """The sender of chat notices, made when a release first names `alerts`."""
        if self._alerter is None:
            self._alerter = Alerter(AlertProvidersApi(self.api.api), self.api.post_event)
        return self._alerter

    def release(self, read: Release) -> None:
        """Release the canaries a deleted release held, then let it go.

        Its entry weight leaves the routes with it; a rollout it held mid-promotion then
        finishes its own promotion.
        """
        for rollout in self.api.rollouts.list(read.namespace):
            annotations = rollout["metadata"].get("annotations") or {}
            if annotations.get(LANE_RELEASE_ANNOTATION) == read.name:
                self.api.rollouts.annotate(read.namespace, rollout["metadata"]["name"],
                                           {LANE_RELEASE_ANNOTATION: None})
        self.api.remove_finalizer(read.body)

    def validate(self, read: Release) -> Release[LaneRelease] | Done:
        """The release parsed; one that does not gets Ready=False naming each field."""
        try:
            return replace(read, model=LaneRelease.model_validate(read.body))
        except ValidationError as error:
            self.write_status(read, invalid_status(read.body, error, read.now))
            return Done()

    def observe(self, valid: Release[LaneRelease]) -> LaneSeen:
        """The lane, the namespace's rollouts (the members among them), the other releases
        of the namespace, and the entry weight in force."""
        api, namespace = self.api, valid.namespace
        lane_body = api.swimlane(valid.model.spec.swim_lane_ref.name)
        lanes = parse_all([lane_body], SwimLane) if lane_body is not None else []
        lane = lanes[0] if lanes else None
        rollouts = parse_all(api.rollouts.list(namespace), WorkloadRollout)
        members, _ = member_rollouts(valid.model, lane, rollouts)
        services, _, rolled = read_lane(api, None, namespace, members, self.settings)
        others = [r for r in parse_all(api.list(namespace), LaneRelease)
                  if r.metadata.name != valid.name]
        group = lane_group(api, lane)
        observed = ReleaseObserved(lane, rollouts, services, None, routed_weight(api, lane, group),
                                   rolled, others,
                                   flavour=group.spec.flavour if group is not None else None)
        return LaneSeen(observed, members)

    def plan(self, valid: Release[LaneRelease], seen: LaneSeen) -> ReleasePlan:
        return plan_release(valid.model, seen.observed, valid.now)

    def answer(self, valid: Release[LaneRelease], seen: LaneSeen, plan: ReleasePlan) -> LaneSeen:
        """Read every member's metrics for a check, then call the webhooks named. The checksum
        is the planned status's: the plan calling `pre-rollout` is the one that records the
        members' revisions, which the stored status has not got yet."""
        observed = seen.observed
        if plan.check is not None:
            _, readings, _ = read_lane(self.api, plan.check, valid.namespace, seen.members,
                                       self.settings)
            observed = observed.with_readings(readings or {})
        called = call_hooks(plan.hooks_due, valid.name, valid.model.metadata.namespace or "default",
                            release_checksum(plan.status))
        return replace(seen, observed=observed.with_hooks(called))

    def carry_out(self, valid: Release[LaneRelease], plan: ReleasePlan) -> None:
        """The member intents the plan asks for, written as `kubectl lane` writes them."""
        for intent in plan.intents:
            self.api.rollouts.annotate(valid.namespace, intent.rollout, intent.annotations)

    def status(self, valid: Release[LaneRelease], plan: ReleasePlan) -> float | None:
        """The status, then the release's own intents cleared and its events posted."""
        self.write_status(valid, plan.status.to_wire())
        namespace, name = valid.namespace, valid.name
        if plan.clear:
            self.api.annotate(namespace, name, {key: None for key in plan.clear})
        where = valid.model.metadata.namespace or "default"
        post_events(self.api, valid.body, plan.events, lambda event: notify(
            plan.event_hooks, name, where, flagger_phase(plan.status),
            release_checksum(plan.status), event))
        if valid.model.spec.alerts:
            self.alerter.send(valid.body, valid.model.spec.alerts,
                              release_notices(valid.model, plan))
        return plan.requeue_after

    def on_release(self, event_type: str | None, namespace: str, name: str) -> None:
        """A release was listed, changed or deleted."""
        names = self.by_namespace.setdefault(namespace, set())
        if event_type == "DELETED":
            names.discard(name)
            return
        names.add(name)
        self.scheduler.trigger(f"{namespace}/{name}")

    def on_namespace_change(self, namespace: str) -> None:
        """Something a release plans from changed in `namespace` (a rollout, a route)."""
        for name in self.by_namespace.get(namespace, ()):
            self.scheduler.trigger(f"{namespace}/{name}")

    def on_anything(self) -> None:
        """A cluster-scoped input changed (a lane, a gateway route): replan every release."""
        for namespace in list(self.by_namespace):
            self.on_namespace_change(namespace)


def register(registry: kopf.OperatorRegistry, releases: LaneReleaseController) -> kopf.OperatorRegistry:
    """Add the LaneRelease handlers to `registry`, each bound to `releases`."""

    async def lanerelease_event(type: str | None, namespace: str, name: str, **_: Any) -> None:
        """A LaneRelease was listed, changed or deleted; its own status writes count too, as
        they are how one phase leads to the next."""
        releases.on_release(type, namespace, name)

    async def rollout_moved(namespace: str, **_: Any) -> None:
        """A WorkloadRollout changed: the releases of its namespace may move."""
        releases.on_namespace_change(namespace)

    async def route_moved(**_: Any) -> None:
        """A lane or a generated VirtualService changed: an entry weight may now be in force."""
        releases.on_anything()

    def generated(labels: kopf.Labels, **_: Any) -> bool:
        return is_generated(labels)

    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="lanerelease_reconcile")(
        lanerelease_event
    )
    kopf.on.event(GROUP, VERSION, "workloadrollouts", registry=registry,
                  id="lanerelease_members")(rollout_moved)
    kopf.on.event(GROUP, VERSION, "swimlanes", registry=registry, id="lanerelease_lane")(
        route_moved
    )
    kopf.on.event(ISTIO_GROUP, "virtualservices", registry=registry, when=generated,
                  id="lanerelease_routes")(route_moved)
    return registry
