"""kopf handlers for WorkloadRollouts, thin: read -> `plan_step` -> carry out -> write status.

Watches of WorkloadRollouts, Deployments and ReplicaSets only trigger a rollout's reconcile;
the reconcile reads the rollout and its workloads fresh, so it never plans from a stale
cache, and one rollout is never reconciled twice at once (the same coalescing queue the lane
operator uses). Order within a reconcile follows the planner's contract: the planned changes
in order, stopping at the first failure without writing status; then the status, written at
the resourceVersion that was planned from; then intent clean-up and events.

Deletion runs through lanes' finalizer: `plan_finalize` releases the base Deployment before
the rollout goes, once no LaneRelease still sends untagged requests into the rollout's canary
(`canary_holder`); until then the finalizer waits, looking again every `HOLD_POLL` seconds. Like the lane operator, no kopf change-tracking handler is used, so kopf
writes nothing of its own onto rollouts.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lanes.api.common import GROUP, VERSION
from lanes.api.errors import from_validation_error
from lanes.api.lanerelease import LaneRelease
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.connect import connect
from lanes.kube.rollouts import PLURAL, RolloutsApi, Workloads
from lanes.rollout import (
    CANARY_LABEL,
    ROLLOUT_LABEL,
    ClearIntent,
    Event,
    Observed,
    Plan,
    plan_finalize,
    plan_step,
)
from lanes.rollout.conditions import invalid_status
from lanes.rollout.lanerelease import canary_holder

from . import webhook
from .checks import (
    AnalysisSettings,
    call_hooks,
    checksum_of,
    make_check,
    notify_rollout,
)
from .releases import (
    ReleaseQueue,
    conflicted,
    parse_all,
    plan_and_call_out,
    post_events,
)

log = logging.getLogger("lanes.operator.rollouts")
HOLD_POLL = 1.0
"""Seconds between looks at the LaneRelease whose lane still needs a deleted rollout's canary."""

Key = str
_REGISTERED: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()


def key_of(namespace: str, name: str) -> Key:
    """A rollout's key in the work queue: `namespace/name`."""
    return f"{namespace}/{name}"


def observed_of(seen: Workloads, driven_by: str | None = None) -> Observed:
    """The planner's view of what was read."""
    return Observed.from_objects(seen.base, seen.replica_sets, seen.canary, driven_by,
                                 autoscaler=seen.autoscaler,
                                 canary_autoscaler=seen.canary_autoscaler)


def autoscaler_of(rollout: WorkloadRollout | None) -> str | None:
    """The HorizontalPodAutoscaler a rollout names, if any."""
    ref = rollout.spec.autoscaler_ref if rollout is not None else None
    return ref.name if ref is not None else None


def other_driver(api: RolloutsApi, namespace: str, name: str, base: Mapping | None) -> str | None:
    """Another rollout that drives the base, by the base's target mark, if one does.

    A mark naming a rollout that is gone or now targets another Deployment is stale and
    does not count.
    """
    if base is None:
        return None
    holder = (base["metadata"].get("labels") or {}).get(ROLLOUT_LABEL)
    if not holder or holder == name:
        return None
    other = api.get(namespace, holder)
    target = ((other or {}).get("spec") or {}).get("workloadRef") or {}
    return holder if target.get("name") == base["metadata"]["name"] else None


def reconcile(
    api: RolloutsApi, namespace: str, name: str, now: datetime,
    settings: AnalysisSettings = AnalysisSettings(),
) -> float | None:
    """One reconcile of one rollout; returns when to plan again (see `Plan.requeue_after`).

    When the plan asks for an analysis check or webhooks (`Plan.asks`), the hooks are called,
    then the check made, and the rollout planned again from the same observations with their
    answers, at the same `now` (`plan_and_call_out`). Each event posted also goes to the
    release's `event` hooks.
    """
    body = api.get(namespace, name)
    if body is None:
        return None
    if body["metadata"].get("deletionTimestamp"):
        return finalize(api, body, now)
    body = api.add_finalizer(body)
    try:
        rollout = WorkloadRollout.model_validate(body)
    except ValidationError as error:
        errors = from_validation_error(error, "WorkloadRollout", name)
        log.warning("workloadrollout %s/%s is invalid: %s", namespace, name, "; ".join(map(str, errors)))
        invalid = invalid_status(body.get("status"), errors, body["metadata"].get("generation"), now)
        if invalid != body.get("status") and conflicted(lambda: api.write_status(body, invalid)):
            return 0.0
        return None
    workload = rollout.spec.workload_ref.name
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        release_targets(api, namespace, name, keep=workload)
    seen = api.workloads(namespace, workload, autoscaler_of(rollout))
    driven_by = other_driver(api, namespace, name, seen.base)
    if seen.base is not None and driven_by is None:
        metadata = seen.base["metadata"]
        if (metadata.get("labels") or {}).get(ROLLOUT_LABEL) != name and conflicted(
            lambda: api.label_base(namespace, workload, name, at_version=metadata["resourceVersion"])
        ):
            return 0.0
    checksum = checksum_of(status)

    def call_out(plan: Plan, observed: Observed) -> Observed:
        called = call_hooks(plan.hooks_due, name, rollout.metadata.namespace or "default", checksum)
        if plan.check is None:
            return observed.with_hooks(called)
        readings, hooks = make_check(api, rollout, seen, plan.check, settings, status)
        return observed.with_check(readings, [*called, *hooks])

    plan = plan_and_call_out(lambda o: plan_step(rollout, o, now), observed_of(seen, driven_by),
                             call_out)
    for change in plan.changes:
        api.carry_out(namespace, name, change)
    wanted = plan.status.to_wire()
    if wanted != status and conflicted(lambda: api.write_status(body, wanted)):
        return 0.0
    for followup in plan.followups:
        if isinstance(followup, ClearIntent):
            api.annotate(namespace, name, {followup.annotation: None})
    post_events(api, body, [f for f in plan.followups if isinstance(f, Event)],
                lambda event: notify_rollout(rollout, plan, event))
    return plan.requeue_after


def release_targets(api: RolloutsApi, namespace: str, name: str, keep: str | None) -> None:
    """Drop the target label from Deployments this rollout no longer targets."""
    for base in api.labelled_bases(namespace, name):
        if base != keep:
            api.label_base(namespace, base, None)


def finalize(api: RolloutsApi, body: Mapping[str, Any], now: datetime) -> float | None:
    """Leave the base a plain Deployment, then let the rollout be deleted; returns when to
    look again while a LaneRelease still needs the rollout's canary."""
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    holder = canary_holder(parse_all(api.lane_releases(namespace), LaneRelease), name, now)
    if holder is not None:
        message = (f"deletion waits: lanerelease/{holder} may still send untagged requests "
                   "into this rollout's canary")
        status = body.get("status") or {}
        if status.get("message") != message:
            try:
                api.write_status(body, {**status, "message": message})
            except ApiException as error:
                if error.status not in (404, 409):
                    raise
        return HOLD_POLL
    try:
        rollout = WorkloadRollout.model_validate(body)
    except ValidationError:
        rollout = None
    if rollout is not None:
        seen = api.workloads(namespace, rollout.spec.workload_ref.name, autoscaler_of(rollout))
        driven_by = other_driver(api, namespace, name, seen.base)
        for change in plan_finalize(rollout, observed_of(seen, driven_by)):
            api.carry_out(namespace, name, change)
    release_targets(api, namespace, name, keep=None)
    api.remove_finalizer(body)
    return None


class Rollouts(ReleaseQueue):
    """The rollout side of the operator: which Deployments map to which rollouts, the queue."""

    def __init__(self, api: RolloutsApi, workers: int = 4,
                 settings: AnalysisSettings | None = None):
        super().__init__(api, reconcile, workers, settings)
        self.targets: dict[tuple[str, str], set[str]] = {}
        self.target_of: dict[Key, tuple[str, str]] = {}
        self.seen: dict[Key, tuple] = {}

    def on_rollout(self, event_type: str | None, namespace: str, name: str, body: Mapping) -> None:
        """A rollout was listed, changed or deleted: remember its target, reconcile it.

        Its own status writes are not a reason to reconcile again (the plan already said
        when to), so only spec, intents, finalizers and deletion count.
        """
        key = key_of(namespace, name)
        previous = self.target_of.pop(key, None)
        if previous is not None:
            self.targets.get(previous, set()).discard(name)
        if event_type == "DELETED":
            self.seen.pop(key, None)
            return
        metadata = body.get("metadata") or {}
        workload = ((body.get("spec") or {}).get("workloadRef") or {}).get("name")
        if workload:
            target = (namespace, workload)
            self.target_of[key] = target
            self.targets.setdefault(target, set()).add(name)
        essence = (
            metadata.get("uid"),
            metadata.get("generation"),
            tuple(sorted((metadata.get("annotations") or {}).items())),
            tuple(metadata.get("finalizers") or ()),
            metadata.get("deletionTimestamp"),
        )
        if event_type is not None and self.seen.get(key) == essence:
            return
        self.seen[key] = essence
        self.scheduler.trigger(key)

    def on_deployment(self, namespace: str, name: str, labels: Mapping[str, str]) -> None:
        """A Deployment changed: reconcile the rollouts targeting it or owning it as canary."""
        names = set(self.targets.get((namespace, name), ()))
        if CANARY_LABEL in labels and labels.get(ROLLOUT_LABEL):
            names.add(labels[ROLLOUT_LABEL])
        for rollout in names:
            self.scheduler.trigger(key_of(namespace, rollout))


def _rollouts(memo: Any) -> Rollouts:
    return memo.rollouts


async def workloadrollout_event(
    type: str | None, namespace: str, name: str, body: kopf.Body, memo: Any, **_: Any
) -> None:
    """A WorkloadRollout was listed, changed or deleted."""
    _rollouts(memo).on_rollout(type, namespace, name, body)


async def deployment_event(
    namespace: str, name: str, labels: kopf.Labels, memo: Any, **_: Any
) -> None:
    """A Deployment changed: a rollout's base or canary moves its rollout."""
    _rollouts(memo).on_deployment(namespace, name, labels)


async def replicaset_event(namespace: str, meta: kopf.Meta, memo: Any, **_: Any) -> None:
    """A ReplicaSet changed: its Deployment's rollout may be able to move."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Deployment":
            _rollouts(memo).on_deployment(namespace, ref["name"], {})


def register(registry: kopf.OperatorRegistry, *, workers: int = 4, rollouts: Rollouts | None = None,
             elected: bool = False) -> kopf.OperatorRegistry:
    """Add the rollout handlers and the admission webhook to `registry` (once per registry).

    `rollouts` is the queue the operator's wiring made (`lanes.operator.wiring`), sharing the
    lane operator's API client so its writes are counted with the rest; without one, one is
    made from the environment. With `elected`, its workers start once this replica leads.
    Webhook options come from `memo.webhook_options` when the program running
    the operator sets it, else from `LANES_WEBHOOK_*` (`WebhookOptions.from_env`);
    `LANES_WEBHOOK=off` leaves the webhook out, and the planner then holds bases itself.
    """
    if registry in _REGISTERED:
        return registry
    _REGISTERED.add(registry)
    serve_webhook = webhook.WebhookOptions.from_env().enabled

    async def rollouts_startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        memo.rollouts = rollouts or Rollouts(RolloutsApi(connect()), workers=workers)
        api = memo.rollouts.api.api
        if not elected:
            memo.rollouts.start()  # else once this replica leads
        if serve_webhook:
            options = getattr(memo, "webhook_options", None) or webhook.WebhookOptions.from_env()
            certificate = None
            if options.secret is not None:
                # Every replica, leading or not, reads (or makes) the shared certificate.
                with ApiClient(api.configuration) as plain:
                    certificate = await asyncio.to_thread(webhook.shared_certificate, plain, options)
            webhook.configure(settings, options, certificate)

    async def rollouts_cleanup(memo: Any, **_: Any) -> None:
        await _rollouts(memo).stop()

    kopf.on.startup(registry=registry, id="rollouts-startup")(rollouts_startup)
    kopf.on.cleanup(registry=registry, id="rollouts-cleanup")(rollouts_cleanup)
    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)(workloadrollout_event)
    kopf.on.event("apps", "v1", "deployments", registry=registry)(deployment_event)
    kopf.on.event("apps", "v1", "replicasets", registry=registry)(replicaset_event)
    if serve_webhook:
        webhook.register(registry)
    return registry
