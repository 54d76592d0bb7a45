"""What every renderer needs of a Topology, read out of the models once per render.

Rendering thousands of services reads the same few lane fields for each one; reading them once
into plain tuples and dicts keeps pydantic off the per-service path.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanes.api.common import RequestMatch, service_key
from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.swimlane import SwimLane
from lanes.api.topology import Topology

from .names import is_dns_label


@dataclass(frozen=True, slots=True)
class Rule:
    """An online ingress rule of a lane, as plain data."""

    name: str
    hosts: tuple[str, ...]
    match: dict | None
    service: str
    port: int | None


@dataclass(frozen=True, slots=True)
class Facts:
    """The group-wide values the renderers use, read out of a Topology."""

    topology: Topology
    group: str
    fallback: str | None
    strict: bool
    route_header: str
    propagation: str
    lanes: tuple[str, ...]
    selectors: dict[str, dict[str, str]]
    fallback_subsets: bool = False

    @property
    def members(self) -> dict[str, tuple[str, ...]]:
        """The lanes serving each service, fallback first."""
        return self.topology.members

    def subsets(self, service: str) -> list[dict]:
        """The DestinationRule subsets of `service`: one per lane serving it, fallback first.

        With `fallbackSubsets`, one per lane: a lane without pods of the service gets a subset
        selecting the fallback's pods, so a route lanes did not write that names the lane's
        subset (ASM's custom gateway route, whose `fallback` plain Istio drops) reaches the
        fallback instead of a cluster with no endpoints. lanes' own routes never use those.
        """
        if not self.fallback_subsets or self.fallback is None:
            return [{"name": lane, "labels": dict(self.selectors[lane])}
                    for lane in self.members[service]]
        serving = self.topology.serving
        return [{"name": lane, "labels": dict(self.selectors[serving(service, lane)])}
                for lane in self.lanes]


def facts_of(topology: Topology) -> Facts:
    """Read a Topology once and check what rendering needs beyond `resolve()`.

    Raises:
        InvalidSpec: when a lane's name cannot be a DestinationRule subset name.
    """
    group = topology.group
    errors = [
        FieldError(
            "SwimLane",
            lane.name,
            "metadata.name",
            "a lane's name is its subset name and must be a DNS label "
            "(at most 63 characters: lower-case a-z, 0-9 and '-')",
        )
        for lane in topology.lanes
        if not is_dns_label(lane.name)
    ]
    if errors:
        raise InvalidSpec(errors)
    spec = group.spec
    return Facts(
        topology=topology,
        group=group.name,
        fallback=spec.fallback,
        strict=spec.strict,
        route_header=spec.route_header,
        propagation=spec.propagation,
        lanes=tuple(lane.name for lane in topology.lanes),
        selectors={lane.name: dict(lane.spec.label_selector) for lane in topology.lanes},
        fallback_subsets=spec.fallback_subsets,
    )


def online_rules(lane: SwimLane) -> list[Rule]:
    """A lane's online ingress rules, matches in wire form."""
    rules = []
    for rule in lane.spec.ingress_rules:
        if not rule.online:
            continue
        match = match_wire(rule.match)
        destination = rule.route.destination
        rules.append(
            Rule(
                name=rule.name,
                hosts=tuple(rule.hosts),
                match=match or None,
                service=service_key(destination.host),
                port=destination.port,
            )
        )
    return rules


def match_wire(match: RequestMatch) -> dict:
    """A request match as Istio's HTTPMatchRequest, without empty fields."""
    wire = match.to_wire()
    if not wire.get("headers"):
        wire.pop("headers", None)
    return wire


def matches_wire(matches: list[RequestMatch]) -> list[dict]:
    """Request matches for a route; empty when any of them matches every request."""
    wires = [match_wire(m) for m in matches]
    return [] if any(not w for w in wires) else wires


def union(lists: list[tuple[str, ...]] | list[list[str]]) -> list[str]:
    """The items of several lists, each once, in order of first appearance."""
    return list(dict.fromkeys(item for items in lists for item in items))
