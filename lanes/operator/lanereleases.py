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

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lanes.analysis.verdict import HookResult, Reading
from lanes.api.analysis import Analysis, MetricTemplate
from lanes.api.common import GROUP, VERSION
from lanes.api.errors import from_validation_error
from lanes.api.lanerelease import LaneRelease, LaneReleaseStatus
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.connect import connect
from lanes.kube.kinds import ISTIO_GROUP
from lanes.kube.lanereleases import PLURAL, LaneReleasesApi
from lanes.kube.objects import error_message
from lanes.render.istio import INGRESS_SUFFIX
from lanes.render.names import object_name
from lanes.render.steps import entered_weight
from lanes.rollout import DeploymentView
from lanes.rollout.actions import LANE_RELEASE_ANNOTATION, Event
from lanes.rollout.hooks import HookCall
from lanes.rollout.lanerelease import (
    ReleaseObserved,
    ReleasePlan,
    flagger_phase,
    member_rollouts,
    plan_release,
    release_checksum,
)
from lanes.rollout.status import set_condition

from .analysis import check_context, read_metrics, template_keys
from .checks import AnalysisSettings
from .handlers import generated_by_lanes
from .scheduler import RequeuingQueue
from .webhooks import call_webhook, webhook_payload

log = logging.getLogger("lanes.operator.lanereleases")


def parse_all(bodies: list[dict], model: type) -> list[Any]:
    """The bodies that parse; one that does not is reported on its own object."""
    parsed = []
    for body in bodies:
        try:
            parsed.append(model.model_validate(body))
        except ValidationError:
            continue
    return parsed


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
    """The share of untagged requests the group's live gateway route puts into `lane`."""
    if lane is None or group is None:
        return None
    gateway = group.spec.ingress.gateway
    vs = api.virtual_service(gateway.namespace, object_name("lanes", group.name, INGRESS_SUFFIX))
    return entered_weight(vs, group.spec.route_header, lane.name) if vs is not None else None


def read_lane(
    api: LaneReleasesApi, analysis: Analysis | None, namespace: str, members: list[WorkloadRollout],
    settings: AnalysisSettings,
) -> tuple[dict[str, str], dict[str, dict[str, Reading]] | None, frozenset[str]]:
    """Each member's service, (with `analysis`) its readings on its own lane subset, and the
    members whose base runs their canary's revision on every replica."""
    services = api.rollouts.services(namespace)
    lanes = api.rollouts.swimlanes()
    templates = {}
    for key in template_keys(analysis, namespace) if analysis is not None else []:
        body = api.rollouts.metric_template(*key)
        if body is not None:
            try:
                templates[key] = MetricTemplate.model_validate(body)
            except ValidationError as error:
                log.warning("MetricTemplate %s/%s is invalid: %s", *key, error)
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
            readings[rollout.metadata.name] = read_metrics(
                analysis, context, templates, default_address=settings.prometheus_url,
                default_source=settings.metric_source,
            )
    return names, (readings if analysis is not None else None), frozenset(rolled)


def invalid_status(body: Mapping[str, Any], error: ValidationError, now: datetime) -> dict:
    """The status of a release whose spec does not parse: Ready=False naming each field."""
    metadata = body["metadata"]
    errors = from_validation_error(error, "LaneRelease", metadata["name"])
    message = "; ".join(f"{e.path}: {e.message}" for e in errors)
    try:
        old = LaneReleaseStatus.model_validate(body.get("status") or {})
    except ValidationError:
        old = LaneReleaseStatus()
    conditions = set_condition(old.conditions, "Ready", "False", "InvalidSpec", message, now,
                               metadata.get("generation"))
    return old.model_copy(update={"conditions": conditions, "message": message,
                                  "observed_generation": metadata.get("generation")}).to_wire()


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
        wanted = invalid_status(body, error, now)
        if wanted != status:
            api.write_status(body, wanted)
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
    plan = plan_release(release, observed, now)
    if plan.calls_out:
        if plan.check is not None:
            _, readings, _ = read_lane(api, plan.check, namespace, members, settings)
            observed = observed.with_readings(readings or {})
        observed = observed.with_hooks(call_hooks(release, plan.status, plan.hooks_due))
        plan = plan_release(release, observed, now)
    for intent in plan.intents:
        api.rollouts.annotate(namespace, intent.rollout, intent.annotations)
    wanted = plan.status.to_wire()
    if wanted != status:
        try:
            api.write_status(body, wanted)
        except ApiException as error:
            if error.status == 409:
                return 0.0
            raise
    if plan.clear:
        api.annotate(namespace, name, {key: None for key in plan.clear})
    for event in plan.events:
        try:
            api.post_event(body, event)
        except ApiException as error:
            log.warning("could not post event %s: %s", event.reason, error_message(error))
        notify(release, plan, event)
    return plan.requeue_after


def call_hooks(release: LaneRelease, planned: LaneReleaseStatus,
               calls: tuple[HookCall, ...]) -> list[HookResult]:
    """Call the webhooks a plan named, each with Flagger's payload for the release.

    The checksum is the planned status's: the plan calling `pre-rollout` is the one that
    records the members' revisions, which the stored status has not got yet.
    """
    namespace = release.metadata.namespace or "default"
    checksum = release_checksum(planned)
    return [
        call_webhook(c.hook, webhook_payload(c.hook, release.metadata.name, namespace, c.phase,
                                             checksum))
        for c in calls
    ]


def notify(release: LaneRelease, plan: ReleasePlan, event: Event) -> None:
    """Send one event to the release's `event` hooks; a failure is only logged."""
    namespace = release.metadata.namespace or "default"
    for hook in plan.event_hooks:
        payload = webhook_payload(hook, release.metadata.name, namespace,
                                  flagger_phase(plan.status), release_checksum(plan.status))
        payload["metadata"] = {**payload["metadata"], "eventMessage": event.message,
                               "eventType": event.type}
        result = call_webhook(hook, payload)
        if not result.ok:
            log.warning("event webhook %s: %s", hook.name, result.message)


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


class LaneReleases(RequeuingQueue):
    """The lane-release side of the operator: one queue of releases, by namespace."""

    def __init__(self, api: LaneReleasesApi, workers: int = 2,
                 settings: AnalysisSettings | None = None):
        super().__init__(self.reconcile_one, workers=workers, describe=error_message)
        self.api = api
        self.settings = settings or AnalysisSettings.from_env()
        self.by_namespace: dict[str, set[str]] = {}

    def reconcile_one(self, namespace: str, name: str) -> float | None:
        """One reconcile of one release, now."""
        return reconcile(self.api, namespace, name, datetime.now(UTC), self.settings)

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
