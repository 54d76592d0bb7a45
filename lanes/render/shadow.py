"""A lane release's shadow step in the routes: the gateway's mirror, and the lane's own hops.

At the gateway the untagged route copies a share of its requests to the lane's subset of the
entry service (Envoy discards a mirrored request's answer). The copy carries no lane header:
the route's header operations would tag the original too, and Istio has no header operations
of a mirror's own. So the lane is kept by the calling pod instead: while the shadow is in
force, each service's VirtualService routes the lane's pods' *untagged* calls (`sourceLabels`,
the lane's selector) to the lane's subset, and where the lane has no pod of the service
answers them 503 at the caller's proxy, or with `fallbackToBase` lets them reach the
fallback's pods. A lane's pods make untagged calls only on a copy's behalf: every request
that enters the lane otherwise is tagged at the gateway and keeps its tag.
"""

from __future__ import annotations

from lanes.api.observations import TrafficStep
from lanes.api.topology import Topology

from .facts import Facts
from .steps import and_match

SHADOW_SUFFIX = "shadow"
SHADOW_ABORT_STATUS = 503


def shadow_step(topology: Topology) -> TrafficStep | None:
    """The entry step mirroring into a lane that has pods of the entry service, else None.

    Without such pods a copy would reach the entry's fallback pods, whose calls reach base:
    nothing is mirrored then. Strict mode and weighted ingress have no untagged route at the
    gateway to copy from (a weighted route would copy every lane's share).
    """
    entry = topology.entry
    step = topology.traffic_step(entry) if entry is not None else None
    if step is None or not step.enter or not step.mirror or topology.strict:
        return None
    if topology.group.spec.ingress.ingress_routing.ingress_routing_strategy == "weighted":
        return None
    return step if step.lane in topology.members.get(entry, ()) else None


def mirror_fields(step: TrafficStep, destination: dict) -> dict:
    """The fields that make a gateway route copy `step.mirror` percent of its requests."""
    return {"mirror": destination, "mirrorPercentage": {"value": float(step.mirror)}}


def shadow_route(facts: Facts, service: str, host: str, untagged: list[dict]) -> dict | None:
    """The route keeping the shadow lane's untagged calls to `service` in the lane, or None.

    Placed after the lane-header routes (a tagged call keeps its tag) and before any release
    step's split, which would otherwise send a copy's call to base.
    """
    step = shadow_step(facts.topology)
    if step is None:
        return None
    lane = step.lane
    selector = facts.selectors[lane]
    route: dict = {
        "name": f"{lane}/{SHADOW_SUFFIX}",
        "match": [and_match({"sourceLabels": dict(selector)}, u) for u in untagged],
    }
    if lane in facts.members[service]:
        route["route"] = [{"destination": {"host": host, "subset": lane}}]
        return route
    if step.fallback_to_base:
        route["route"] = [{"destination": {"host": host, "subset": facts.fallback}}]
        return route
    route["fault"] = {"abort": {"httpStatus": SHADOW_ABORT_STATUS, "percentage": {"value": 100.0}}}
    route["route"] = [{"destination": {"host": host, "subset": facts.fallback}}]
    return route
