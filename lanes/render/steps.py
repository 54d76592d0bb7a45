"""A release's traffic step in a service's mesh routes, shared by every flavour.

Only requests that carry no lane are split: the step's matches send what they select to the
step's lane, then `weight` percent of the rest go there; a request that carries a lane (any
lane, the fallback's included) keeps its lane routing.
"""

from __future__ import annotations

import copy

from lanes.api.observations import TrafficStep

from . import baggage
from .facts import Facts, match_wire

UNTAGGED_ROUTE = "untagged"
MATCHES_ROUTE = "matches"


def untagged_condition(facts: Facts) -> list[dict]:
    """Match conditions, any of which selects a request that carries no lane.

    An empty StringMatch tests presence, so under `withoutHeaders` it means "absent"; a value
    match never holds for a missing header, inverted or not (Envoy's header matching), so a
    baggage header without the lane's member needs a condition of its own.
    """
    if facts.propagation == "baggage":
        return [
            {"withoutHeaders": {baggage.HEADER: {}}},
            {
                "headers": {baggage.HEADER: {"regex": ".*"}},
                "withoutHeaders": {baggage.HEADER: {"regex": baggage.key_regex(facts.route_header)}},
            },
        ]
    return [{"withoutHeaders": {facts.route_header: {}}}]


def and_match(match: dict, condition: dict) -> dict:
    """A new request match that also requires `condition` (header maps merged, nothing shared)."""
    out = copy.deepcopy({**match, **condition})
    for key in ("headers", "withoutHeaders"):
        if key in match and key in condition:
            out[key] = copy.deepcopy({**match[key], **condition[key]})
    return out


def step_routes(host: str, step: TrafficStep, fallback: str, untagged: list[dict]) -> list[dict]:
    """A release's traffic step for a service's untagged requests; tagged ones keep their lane.

    Requests matching one of the step's matches go to the step's lane; of the rest, `weight`
    percent do and the others stay on the fallback.
    """
    routes = []
    if step.matches:
        routes.append(
            {
                "name": f"{step.lane}/{MATCHES_ROUTE}",
                "match": [and_match(match_wire(m), u) for m in step.matches for u in untagged],
                "route": [{"destination": {"host": host, "subset": step.lane}}],
            }
        )
    if step.weight:
        routes.append(
            {
                "name": UNTAGGED_ROUTE,
                "match": [and_match({}, u) for u in untagged],
                "route": [
                    {"destination": {"host": host, "subset": fallback}, "weight": 100 - step.weight},
                    {"destination": {"host": host, "subset": step.lane}, "weight": step.weight},
                ],
            }
        )
    return routes


def entered_weight(virtual_service: dict, header: str, lane: str) -> int:
    """The share (percent) of untagged requests a gateway VirtualService puts into `lane`.

    Read from the routes that split untagged or weighted requests: the weights of the
    destinations that set the lane header to `lane` (a lone destination counts 100). The
    operator reads it from the live object, so a lane release acts only on routes in force.
    """
    total = 0
    for route in (virtual_service.get("spec") or {}).get("http") or []:
        if route.get("name") not in (UNTAGGED_ROUTE, "weighted"):
            continue
        destinations = route.get("route") or []
        for destination in destinations:
            sets = ((destination.get("headers") or {}).get("request") or {}).get("set") or {}
            if sets.get(header) == lane:
                total += destination.get("weight", 100 if len(destinations) == 1 else 0)
    return min(total, 100)
