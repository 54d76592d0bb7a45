"""kopf handlers, thin: each turns a watch event into triggers of the groups it concerns.

Only watch-level handlers (`on.event`) are used, never kopf's change-tracking ones: those
store handling progress in annotations, a write per change that an operator promising zero
idle writes cannot afford. Nor are kopf's indices (see `runtime` for why): the runtime keeps
what the events bring. Deletion cleanup uses lanes' own finalizer, handled in the
same per-group queue as every reconcile, so cleanup and reconcile can never interleave.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from lanes.api.common import GROUP, VERSION
from lanes.kube.kinds import ISTIO_GROUP
from lanes.kube.ownership import is_generated

from .metrics import MetricsServer
from .modules import ModuleServer
from .runtime import Runtime

log = logging.getLogger("lanes.operator")

ISTIO_CRDS = frozenset({"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"})


def _runtime(memo: Any) -> Runtime:
    return memo.runtime


async def lanerelease_traffic_event(type: str | None, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    """A lane release changed; its entry weight may put untagged requests into its lane."""
    runtime = _runtime(memo)
    runtime.on_release(type, body)


async def workloadrollout_event(type: str | None, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    """A rollout changed; its traffic step may split a group service's requests."""
    runtime = _runtime(memo)
    runtime.on_rollout(type, body)


async def swimlanegroup_event(type: str | None, name: str, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    """A group was listed, changed or deleted."""
    runtime = _runtime(memo)
    runtime.on_group(type, name, body)


async def swimlane_event(type: str | None, name: str, body: kopf.Body, spec: kopf.Spec, memo: Any, **kwargs: Any) -> None:
    """A lane was listed, changed or deleted; new label keys widen the pod filter."""
    runtime = _runtime(memo)
    if type != "DELETED":
        await runtime.learn_lane_keys((spec.get("labelSelector") or {}).keys())
    runtime.on_lane(type, name, body)


async def pod_event(type: str | None, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    """A pod changed; cheap for pods in no lane, which return at once."""
    runtime = _runtime(memo)
    runtime.on_pod(type, body)


async def service_event(
    type: str | None, namespace: str, name: str, spec: kopf.Spec, memo: Any, **kwargs: Any
) -> None:
    """A Service's selector may have changed which pods are its own."""
    _runtime(memo).on_service(type, namespace, name, spec.get("selector"))


async def virtualservice_event(labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    """A generated VirtualService was edited or deleted: restore it if it differs."""
    _runtime(memo).on_generated(labels)


async def destinationrule_event(labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    """A generated DestinationRule was edited or deleted: restore it if it differs."""
    _runtime(memo).on_generated(labels)


async def customresourcedefinition_event(name: str, memo: Any, **kwargs: Any) -> None:
    """An Istio CRD changed: what the server prunes may differ now, so check every group."""
    if name in ISTIO_CRDS:
        runtime = _runtime(memo)
        runtime.objects.forget_schemas()
        runtime.reconciler.invalidate()
        runtime.trigger_all(force=True)


def generated_by_lanes(labels: kopf.Labels, **_: Any) -> bool:
    """Watch only objects carrying some flavour's managed labels."""
    return is_generated(labels)


async def operator_startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    """Tune kopf for low latency and no writes of its own; start workers, metrics and the
    served module (on every replica: any of them may answer a proxy's fetch)."""
    runtime = _runtime(memo)
    served = runtime.options.served_module
    if served is not None:
        runtime.module_server = ModuleServer(served).start()
        log.info("trace-affinity module (sha256 %s) served on port %d", served.sha256,
                 runtime.module_server.port)
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.peering.standalone = True
    await asyncio.to_thread(runtime.prime)
    if runtime.options.election is None:
        runtime.scheduler.start()
        runtime.metrics.leader.set(1)
    memo.resync_task = asyncio.create_task(runtime.resync(), name="lanes-resync")
    if runtime.options.metrics_port is not None:
        runtime.metrics_server = MetricsServer(
            runtime.metrics, runtime.options.metrics_port, runtime.options.metrics_host
        ).start()
        log.info("metrics on port %d", runtime.metrics_server.port)


async def operator_cleanup(memo: Any, **_: Any) -> None:
    """Stop workers, the metrics endpoint and the served module."""
    runtime = _runtime(memo)
    memo.resync_task.cancel()
    await runtime.scheduler.stop()
    if runtime.metrics_server is not None:
        runtime.metrics_server.stop()
        runtime.metrics_server = None
    if runtime.module_server is not None:
        runtime.module_server.stop()
        runtime.module_server = None


def register(registry: kopf.OperatorRegistry) -> kopf.OperatorRegistry:
    """Register every handler on `registry`; one registry per operator instance."""
    lanes = dict(group=GROUP, version=VERSION, registry=registry)
    kopf.on.startup(registry=registry)(operator_startup)
    kopf.on.cleanup(registry=registry)(operator_cleanup)
    kopf.on.event(plural="swimlanegroups", **lanes)(swimlanegroup_event)
    kopf.on.event(plural="swimlanes", **lanes)(swimlane_event)
    kopf.on.event("pods", registry=registry)(pod_event)
    kopf.on.event("services", registry=registry)(service_event)
    kopf.on.event(plural="workloadrollouts", id="workloadrollout_traffic", **lanes)(
        workloadrollout_event
    )
    kopf.on.event(plural="lanereleases", id="lanerelease_traffic", **lanes)(
        lanerelease_traffic_event
    )
    for plural, handler in (
        ("virtualservices", virtualservice_event),
        ("destinationrules", destinationrule_event),
    ):
        kopf.on.event(ISTIO_GROUP, plural, when=generated_by_lanes, registry=registry)(handler)
    kopf.on.event("apiextensions.k8s.io", "customresourcedefinitions", registry=registry)(
        customresourcedefinition_event
    )
    return registry
