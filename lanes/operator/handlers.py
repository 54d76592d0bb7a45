"""kopf handlers, thin: each turns a watch event into triggers of the groups it concerns.

Each handler is bound to the runtime it is registered with (`register`), never found through
kopf's memo. Only watch-level handlers (`on.event`) are used, never kopf's change-tracking ones: those
store handling progress in annotations, a write per change that an operator promising zero
idle writes cannot afford. Nor are kopf's indices (see `runtime` for why): the runtime keeps
what the events bring. Deletion cleanup uses lanes' own finalizer, handled in the
same per-group queue as every reconcile, so cleanup and reconcile can never interleave.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from lanes.api.common import GROUP, VERSION
from lanes.kube.kinds import ISTIO_GROUP
from lanes.kube.ownership import is_generated

from .runtime import Runtime

ISTIO_CRDS = frozenset({"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"})


def generated_by_lanes(labels: kopf.Labels, **_: Any) -> bool:
    """Watch only objects carrying some flavour's managed labels."""
    return is_generated(labels)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> kopf.OperatorRegistry:
    """Register the group controller's handlers on `registry`, each bound to `runtime`."""

    async def lanerelease_traffic_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        """A lane release changed; its entry weight may put untagged requests into its lane."""
        runtime.on_release(type, body)

    async def workloadrollout_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        """A rollout changed; its traffic step may split a group service's requests."""
        runtime.on_rollout(type, body)

    async def swimlanegroup_event(type: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        """A group was listed, changed or deleted."""
        runtime.on_group(type, name, body)

    async def swimlane_event(type: str | None, name: str, body: kopf.Body, spec: kopf.Spec, **_: Any) -> None:
        """A lane was listed, changed or deleted; new label keys widen the pod filter."""
        if type != "DELETED":
            await runtime.learn_lane_keys((spec.get("labelSelector") or {}).keys())
        runtime.on_lane(type, name, body)

    async def pod_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        """A pod changed; cheap for pods in no lane, which return at once."""
        runtime.on_pod(type, body)

    async def service_event(type: str | None, namespace: str, name: str, spec: kopf.Spec, **_: Any) -> None:
        """A Service's selector may have changed which pods are its own."""
        runtime.on_service(type, namespace, name, spec.get("selector"))

    async def generated_event(labels: kopf.Labels, **_: Any) -> None:
        """A generated VirtualService or DestinationRule was edited or deleted: restore it if
        it differs."""
        runtime.on_generated(labels)

    async def customresourcedefinition_event(name: str, **_: Any) -> None:
        """An Istio CRD changed: what the server prunes may differ now, so check every group."""
        if name in ISTIO_CRDS:
            runtime.objects.forget_schemas()
            runtime.reconciler.invalidate()
            runtime.trigger_all(force=True)

    async def operator_startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        """Tune kopf for low latency and no writes of its own; fill the stores and start the
        resync (the wiring starts the workers)."""
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        settings.peering.standalone = True
        await asyncio.to_thread(runtime.prime)
        memo.resync_task = asyncio.create_task(runtime.resync(), name="lanes-resync")

    async def operator_cleanup(memo: Any, **_: Any) -> None:
        """Stop the resync."""
        memo.resync_task.cancel()

    lanes = dict(group=GROUP, version=VERSION, registry=registry)
    kopf.on.startup(registry=registry, id="operator_startup")(operator_startup)
    kopf.on.cleanup(registry=registry, id="operator_cleanup")(operator_cleanup)
    kopf.on.event(plural="swimlanegroups", id="swimlanegroup_event", **lanes)(swimlanegroup_event)
    kopf.on.event(plural="swimlanes", id="swimlane_event", **lanes)(swimlane_event)
    kopf.on.event("pods", registry=registry, id="pod_event")(pod_event)
    kopf.on.event("services", registry=registry, id="service_event")(service_event)
    kopf.on.event(plural="workloadrollouts", id="workloadrollout_traffic", **lanes)(
        workloadrollout_event
    )
    kopf.on.event(plural="lanereleases", id="lanerelease_traffic", **lanes)(
        lanerelease_traffic_event
    )
    for plural in ("virtualservices", "destinationrules"):
        kopf.on.event(ISTIO_GROUP, plural, when=generated_by_lanes, registry=registry,
                      id=f"{plural[:-1]}_event")(generated_event)
    kopf.on.event("apiextensions.k8s.io", "customresourcedefinitions", registry=registry,
                  id="customresourcedefinition_event")(customresourcedefinition_event)
    return registry
