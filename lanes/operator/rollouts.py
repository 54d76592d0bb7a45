"""The WorkloadRollout controller, on the controller shape: read -> finalizer -> parse ->
workloads observed -> `plan_step` -> check and webhooks -> plan again -> changes -> status.

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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import kopf
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lanes.alerts import Notice, notices_of
from lanes.api.common import GROUP, VERSION
from lanes.api.errors import from_validation_error
from lanes.api.lanerelease import LaneRelease
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.alertproviders import AlertProvidersApi
from lanes.kube.kinds import parse_all
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
from lanes.rollout.conditions import invalid_status, newly_missing
from lanes.rollout.lanerelease import canary_holder

from . import webhook
from .alerts import Alerter
from .checks import call_hooks, checksum_of, make_check, notify_rollout
from .controller import Done
from .releases import Release, ReleaseController, post_events

log = logging.getLogger("lanes.operator.rollouts")
HOLD_POLL = 1.0
"""Seconds between looks at the LaneRelease whose lane still needs a deleted rollout's canary."""

Key = str


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


def rollout_notices(rollout: WorkloadRollout, plan: Plan, events: list[Event]) -> list[Notice]:
    """What a reconcile tells people: its events worth a notice, and a step that now waits
    for approval (the move into it, not every reconcile that finds it waiting)."""
    before = rollout.status.canary_status if rollout.status else None
    after = plan.status.canary_status
    waiting = (plan.status.phase == "Paused" and not plan.status.paused and after is not None
               and after.current_step_state == "StepPaused"
               and (before is None or (before.current_step_index, before.current_step_state)
                    != (after.current_step_index, after.current_step_state)))
    return notices_of("workloadrollout", rollout.metadata.name,
                      rollout.metadata.namespace or "default", events, waiting)


@dataclass(frozen=True)
class Seen:
    """A rollout's workloads as read, and the planner's view of them (with any answers)."""

    workloads: Workloads
    observed: Observed


class RolloutController(ReleaseController[WorkloadRollout, Seen, Plan]):
    """Reconciles WorkloadRollouts, and knows which Deployments map to which rollouts.

    When the plan asks for an analysis check or webhooks (`Plan.asks`), the hooks are called,
    then the check made, and the rollout planned again from the same observations with their
    answers, at the same `now`. Each event posted also goes to the release's `event` hooks.
    """

    api: RolloutsApi

    def __init__(self, api: RolloutsApi, **kwargs: Any):
        super().__init__(api, **kwargs)
        self._alerter: Alerter | None = None
        self.targets: dict[tuple[str, str], set[str]] = {}
        self.target_of: dict[Key, tuple[str, str]] = {}
        self.seen: dict[Key, tuple] = {}

    @property
    def alerter(self) -> Alerter:
        """The sender of chat notices, made when a rollout first names `alerts`."""
        if self._alerter is None:
            self._alerter = Alerter(AlertProvidersApi(self.api.api), self.api.post_event)
        return self._alerter

    def release(self, read: Release) -> float | None:
        """Leave the base a plain Deployment, then let the rollout be deleted; returns when to
        look again while a LaneRelease still needs the rollout's canary."""
        api, body, now = self.api, read.body, read.now
        namespace, name = read.namespace, read.name
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

    def validate(self, read: Release) -> Release[WorkloadRollout] | Done:
        """The rollout parsed; one that does not gets Ready=False naming each field."""
        try:
            return replace(read, model=WorkloadRollout.model_validate(read.body))
        except ValidationError as error:
            namespace, name = read.namespace, read.name
            errors = from_validation_error(error, "WorkloadRollout", name)
            log.warning("workloadrollout %s/%s is invalid: %s", namespace, name, "; ".join(map(str, errors)))
            self.write_status(read, invalid_status(read.body.get("status"), errors,
                                                   read.body["metadata"].get("generation"), read.now))
            return Done()

    def observe(self, valid: Release[WorkloadRollout]) -> Seen:
        """The target's workloads; the target claimed (by its mark) unless another rollout
        drives it, and any Deployment this rollout no longer targets left unmarked."""
        api, namespace, name = self.api, valid.namespace, valid.name
        workload = valid.model.spec.workload_ref.name
        if valid.status.get("observedGeneration") != valid.body["metadata"].get("generation"):
            release_targets(api, namespace, name, keep=workload)
        seen = api.workloads(namespace, workload, autoscaler_of(valid.model))
        driven_by = other_driver(api, namespace, name, seen.base)
        if seen.base is not None and driven_by is None:
            metadata = seen.base["metadata"]
            if (metadata.get("labels") or {}).get(ROLLOUT_LABEL) != name:
                api.label_base(namespace, workload, name, at_version=metadata["resourceVersion"])
        return Seen(seen, observed_of(seen, driven_by))

    def plan(self, valid: Release[WorkloadRollout], seen: Seen) -> Plan:
        return plan_step(valid.model, seen.observed, valid.now)

    def answer(self, valid: Release[WorkloadRollout], seen: Seen, plan: Plan) -> Seen:
        """Call the hooks due, then make the check with its `rollout` hooks."""
        rollout, checksum = valid.model, checksum_of(valid.status)
        called = call_hooks(plan.hooks_due, valid.name, rollout.metadata.namespace or "default", checksum)
        if plan.check is None:
            return replace(seen, observed=seen.observed.with_hooks(called))
        readings, hooks = make_check(self.api, rollout, seen.workloads, plan.check, self.settings,
                                     valid.status)
        return replace(seen, observed=seen.observed.with_check(readings, [*called, *hooks]))

    def carry_out(self, valid: Release[WorkloadRollout], plan: Plan) -> None:
        for change in plan.changes:
            self.api.carry_out(valid.namespace, valid.name, change)

    def status(self, valid: Release[WorkloadRollout], plan: Plan) -> float | None:
        """The status, then the intents it answered cleared and its events posted."""
        self.write_status(valid, plan.status.to_wire())
        old = valid.model.status.conditions if valid.model.status else []
        missing = [Event(reason, message, "Warning")
                   for reason, message in newly_missing(old, plan.status.conditions)]
        if missing:
            post_events(self.api, valid.body, missing, lambda event: None)
        for followup in plan.followups:
            if isinstance(followup, ClearIntent):
                self.api.annotate(valid.namespace, valid.name, {followup.annotation: None})
        events = [f for f in plan.followups if isinstance(f, Event)]
        post_events(self.api, valid.body, events, lambda event: notify_rollout(valid.model, plan, event))
        if valid.model.spec.alerts:
            self.alerter.send(valid.body, valid.model.spec.alerts,
                              rollout_notices(valid.model, plan, events))
        return plan.requeue_after

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


def release_targets(api: RolloutsApi, namespace: str, name: str, keep: str | None) -> None:
    """Drop the target label from Deployments this rollout no longer targets."""
    for base in api.labelled_bases(namespace, name):
        if base != keep:
            api.label_base(namespace, base, None)


def register(registry: kopf.OperatorRegistry, rollouts: RolloutController) -> kopf.OperatorRegistry:
    """Add the rollout handlers, each bound to `rollouts`, and the admission webhook.

    Webhook options come from `memo.webhook_options` when the program running the operator
    sets it, else from `LANES_WEBHOOK_*` (`WebhookOptions.from_env`); `LANES_WEBHOOK=off`
    leaves the webhook out, and the planner then holds bases itself.
    """
    serve_webhook = webhook.WebhookOptions.from_env().enabled

    async def workloadrollout_event(type: str | None, namespace: str, name: str, body: kopf.Body,
                                    **_: Any) -> None:
        """A WorkloadRollout was listed, changed or deleted."""
        rollouts.on_rollout(type, namespace, name, body)

    async def deployment_event(namespace: str, name: str, labels: kopf.Labels, **_: Any) -> None:
        """A Deployment changed: a rollout's base or canary moves its rollout."""
        rollouts.on_deployment(namespace, name, labels)

    async def replicaset_event(namespace: str, meta: kopf.Meta, **_: Any) -> None:
        """A ReplicaSet changed: its Deployment's rollout may be able to move."""
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Deployment":
                rollouts.on_deployment(namespace, ref["name"], {})

    async def webhook_startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        """Serve the admission webhook; every replica, leading or not, reads (or makes) the
        shared certificate."""
        options = getattr(memo, "webhook_options", None) or webhook.WebhookOptions.from_env()
        certificate = None
        if options.secret is not None:
            with ApiClient(rollouts.api.api.configuration) as plain:
                certificate = await asyncio.to_thread(webhook.shared_certificate, plain, options)
        webhook.configure(settings, options, certificate)

    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="workloadrollout_event")(
        workloadrollout_event)
    kopf.on.event("apps", "v1", "deployments", registry=registry, id="deployment_event")(
        deployment_event)
    kopf.on.event("apps", "v1", "replicasets", registry=registry, id="replicaset_event")(
        replicaset_event)
    if serve_webhook:
        kopf.on.startup(registry=registry, id="rollouts-startup")(webhook_startup)
        webhook.register(registry)
    return registry
