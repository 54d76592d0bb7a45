"""kopf handlers for LaneReleases, thin: read -> `plan_release` -> carry out -> write status.

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
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from lanes.analysis.verdict import Reading
from lanes.api.analysis import Analysis
from lanes.api.common import GROUP, VERSION
from lanes.api.errors import from_validation_error
from lanes.api.lanerelease import LaneRelease, LaneReleaseStatus
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.connect import connect
from lanes.kube.kinds import ISTIO_GROUP
from lanes.kube.lanereleases import PLURAL, LaneReleasesApi
from lanes.render import flavour_for
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
)

from .analysis import check_context
from .checks import AnalysisSettings, call_hooks, load_templates, notify
from .handlers import generated_by_lanes
from .releases import (
    ReleaseQueue,
    conflicted,
    parse_all,
    plan_and_call_out,
    post_events,
)


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
            readings[rollout.metadata.name] = settings.read(analysis, context, templates)
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


def reconcile(api: LaneReleasesApi, namespace: str, name: str, now: datetime,
              settings: AnalysisSettings = AnalysisSettings()) -> float | None:
    """One reconcile of one release; returns when to plan again (None: on a change only)."""
    body = api.get(namespace, name)
    if body is None:
        return None
    if body["metadata"].get("deletionTimestamp"):
        finalize(api, body)
        return None
    body = api.add_finalizer(body)
    status = body.get("status") or {}
    try:
        release = LaneRelease.model_validate(body)
    except ValidationError as error:
        invalid = invalid_status(body, error, now)
        if invalid != status and conflicted(lambda: api.write_status(body, invalid)):
            return 0.0
        return None
    lane_name = release.spec.swim_lane_ref.name
    lane_body = api.swimlane(lane_name)
    lanes = parse_all([lane_body], SwimLane) if lane_body is not None else []
    lane = lanes[0] if lanes else None
    rollouts = parse_all(api.rollouts.list(namespace), WorkloadRollout)
    members, _ = member_rollouts(release, lane, rollouts)
    services, _, rolled = read_lane(api, None, namespace, members, settings)
    others = [r for r in parse_all(api.list(namespace), LaneRelease)
              if r.metadata.name != name]
    group = lane_group(api, lane)
    observed = ReleaseObserved(lane, rollouts, services, None, routed_weight(api, lane, group),
                               rolled, others,
                               flavour=group.spec.flavour if group is not None else None)
    where = release.metadata.namespace or "default"

    def call_out(plan: ReleasePlan, observed: ReleaseObserved) -> ReleaseObserved:
        """Read every member's metrics for a check, then call the webhooks named. The checksum
        is the planned status's: the plan calling `pre-rollout` is the one that records the
        members' revisions, which the stored status has not got yet."""
        if plan.check is not None:
            _, readings, _ = read_lane(api, plan.check, namespace, members, settings)
            observed = observed.with_readings(readings or {})
        called = call_hooks(plan.hooks_due, name, where, release_checksum(plan.status))
        return observed.with_hooks(called)

    plan = plan_and_call_out(lambda o: plan_release(release, o, now), observed, call_out)
    for intent in plan.intents:
        api.rollouts.annotate(namespace, intent.rollout, intent.annotations)
    wanted = plan.status.to_wire()
    if wanted != status and conflicted(lambda: api.write_status(body, wanted)):
        return 0.0
    if plan.clear:
        api.annotate(namespace, name, {key: None for key in plan.clear})
    post_events(api, body, plan.events, lambda event: notify(
        plan.event_hooks, name, where, flagger_phase(plan.status), release_checksum(plan.status),
        event))
    return plan.requeue_after


def finalize(api: LaneReleasesApi, body: Mapping[str, Any]) -> None:
    """Release the canaries a deleted release held, then let it go.

    Its entry weight leaves the routes with it; a rollout it held mid-promotion then finishes
    its own promotion.
    """
    metadata = body["metadata"]
    for rollout in api.rollouts.list(metadata["namespace"]):
        annotations = rollout["metadata"].get("annotations") or {}
        if annotations.get(LANE_RELEASE_ANNOTATION) == metadata["name"]:
            api.rollouts.annotate(metadata["namespace"], rollout["metadata"]["name"],
                                  {LANE_RELEASE_ANNOTATION: None})
    api.remove_finalizer(body)


class LaneReleases(ReleaseQueue):
    """The lane-release side of the operator: one queue of releases, by namespace."""

    def __init__(self, api: LaneReleasesApi, workers: int = 2,
                 settings: AnalysisSettings | None = None):
        super().__init__(api, reconcile, workers, settings)
        self.by_namespace: dict[str, set[str]] = {}

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


def _releases(memo: Any) -> LaneReleases:
    return memo.lanereleases


async def lanerelease_event(type: str | None, namespace: str, name: str, body: kopf.Body,
                            memo: Any, **_: Any) -> None:
    """A LaneRelease was listed, changed or deleted; its own status writes count too, as
    they are how one phase leads to the next."""
    _releases(memo).on_release(type, namespace, name)


async def rollout_moved(namespace: str, memo: Any, **_: Any) -> None:
    """A WorkloadRollout changed: the releases of its namespace may move."""
    _releases(memo).on_namespace_change(namespace)


async def route_moved(memo: Any, **_: Any) -> None:
    """A lane or a generated VirtualService changed: an entry weight may now be in force."""
    _releases(memo).on_anything()


def register(registry: kopf.OperatorRegistry, *, workers: int = 2,
             releases: LaneReleases | None = None, elected: bool = False) -> kopf.OperatorRegistry:
    """Add the LaneRelease handlers to `registry`: for `releases`, the queue the operator's
    wiring made, else one made from the environment; with `elected`, its workers start once
    this replica leads."""

    async def lanereleases_startup(memo: Any, **_: Any) -> None:
        memo.lanereleases = releases or LaneReleases(LaneReleasesApi(connect()), workers=workers)
        if not elected:
            memo.lanereleases.start()  # else once this replica leads

    async def lanereleases_cleanup(memo: Any, **_: Any) -> None:
        await _releases(memo).stop()

    kopf.on.startup(registry=registry, id="lanereleases-startup")(lanereleases_startup)
    kopf.on.cleanup(registry=registry, id="lanereleases-cleanup")(lanereleases_cleanup)
    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="lanerelease_reconcile")(
        lanerelease_event
    )
    kopf.on.event(GROUP, VERSION, "workloadrollouts", registry=registry,
                  id="lanerelease_members")(rollout_moved)
    kopf.on.event(GROUP, VERSION, "swimlanes", registry=registry, id="lanerelease_lane")(
        route_moved
    )
    kopf.on.event(ISTIO_GROUP, "virtualservices", registry=registry, when=generated_by_lanes,
                  id="lanerelease_routes")(route_moved)
    return registry
