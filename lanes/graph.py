"""The service-call graph of a lane group: build it, check it, explain a request's path.

Lanes only hold along calls between group services: a call into a service outside the group
is served without lane routing, and a group service no call reaches never sees lane traffic.
The graph makes both visible before a rollout relies on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import networkx as nx

from lanes.api.common import RequestMatch, StringMatch, service_key
from lanes.api.observations import Observations
from lanes.api.errors import InvalidSpec
from lanes.api.topology import Topology, weighted_shares

EdgeSource = Literal["declared", "observed"]
FindingCode = Literal["no-entry", "entry-outside-group", "leaves-group", "unreachable"]


@dataclass(frozen=True)
class Finding:
    """One problem of the call graph, about one service."""

    code: FindingCode
    service: str
    message: str

    def __str__(self) -> str:
        return f"{self.service}: {self.message}"


@dataclass(frozen=True)
class Hop:
    """One service a request reaches, and the lane whose pods serve it there.

    `subset` is None for a service outside the group, which is served without lane routing;
    `via` names the first such service on the way here, through which the lane header must pass.
    """

    service: str
    caller: str | None
    depth: int
    subset: str | None
    fallback: bool
    in_group: bool
    via: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Route:
    """One way a request goes: the lane it gets at the gateway and the hops that follow."""

    lane: str
    hops: tuple[Hop, ...]
    rule: str | None = None
    weight: int | None = None


@dataclass(frozen=True)
class Trace:
    """What the mesh does with one request; no routes means the gateway has no route for it."""

    group: str
    path: str
    headers: dict[str, str]
    strategy: str
    routes: tuple[Route, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def routed(self) -> bool:
        """Whether the gateway routes the request into a lane at all."""
        return bool(self.routes)


def declared_edges(topology: Topology) -> list[tuple[str, str]]:
    """The calls the group declares, as (caller, callee) service keys."""
    return [
        (service.key, service_key(call, service.namespace))
        for service in topology.group.spec.services
        for call in service.calls
    ]


def build_graph(topology: Topology, observed: Observations | None = None) -> nx.DiGraph:
    """The services of a group and the calls between them, declared and observed.

    Each node carries `in_group` and `lanes` (the lanes serving it); each edge carries `source`
    (`declared` wins when a call is both) and `observed`. The graph attribute `entry` is the
    service the gateway sends requests to.
    """
    graph = nx.DiGraph(group=topology.group.name, entry=topology.entry)
    for key, lanes in topology.members.items():
        graph.add_node(key, in_group=True, lanes=lanes)

    def add_service(key: str) -> None:
        if key not in graph:
            graph.add_node(key, in_group=False, lanes=())

    for caller, callee in declared_edges(topology):
        add_service(caller)
        add_service(callee)
        graph.add_edge(caller, callee, source="declared", observed=False)
    for caller, callee in observed.edges if observed else ():
        add_service(caller)
        add_service(callee)
        if graph.has_edge(caller, callee):
            graph.edges[caller, callee]["observed"] = True
        else:
            graph.add_edge(caller, callee, source="observed", observed=True)
    if topology.entry:
        add_service(topology.entry)
    return graph


def check_graph(topology: Topology, graph: nx.DiGraph) -> list[Finding]:
    """Where lane traffic cannot go as the group intends, in a stable order."""
    findings: list[Finding] = []
    group = topology.group.name
    entry = topology.entry
    if entry is None:
        findings.append(
            Finding(
                "no-entry",
                group,
                "no lane has an ingress rule or weight destination, so no request enters a lane",
            )
        )
    elif not graph.nodes[entry]["in_group"]:
        findings.append(
            Finding(
                "entry-outside-group",
                entry,
                f"the gateway sends requests here but it is not a service of group {group!r}, "
                "so no lane routing applies from the first hop",
            )
        )
    for caller, callee in sorted(graph.edges):
        if graph.nodes[caller]["in_group"] and not graph.nodes[callee]["in_group"]:
            source = graph.edges[caller, callee]["source"]
            findings.append(
                Finding(
                    "leaves-group",
                    caller,
                    f"calls {callee} ({source}), which is not in group {group!r}: lane traffic "
                    "leaves the lane there",
                )
            )
    reachable = nx.descendants(graph, entry) | {entry} if entry else set()
    for key in topology.services:
        if key not in reachable:
            findings.append(
                Finding(
                    "unreachable",
                    key,
                    "no declared or observed call from the entry service reaches it, so it "
                    "never sees lane traffic (declare it in a caller's `calls`)",
                )
            )
    return findings


def match_string(match: StringMatch, value: str | None) -> bool:
    """Istio's StringMatch: exact, prefix, or a regex that must match the whole value."""
    if value is None:
        return False
    if match.exact is not None:
        return value == match.exact
    if match.prefix is not None:
        return value.startswith(match.prefix)
    return re.fullmatch(match.regex or "", value) is not None


def match_request(match: RequestMatch, headers: dict[str, str], path: str) -> bool:
    """Whether a request satisfies every condition of one match; header names are lower-case."""
    if match.uri is not None and not match_string(match.uri, path):
        return False
    return all(match_string(m, headers.get(name.lower())) for name, m in match.headers.items())


def choose_lanes(
    topology: Topology, headers: dict[str, str], path: str
) -> tuple[list[tuple[str, str | None, int | None]], list[str]]:
    """The lanes the gateway sends a request to, as (lane, rule, weight), with notes on why."""
    routing = topology.group.spec.ingress.ingress_routing
    header = topology.group.spec.route_header
    notes: list[str] = []
    if routing.ingress_routing_strategy != "weighted":
        for lane in topology.ingress_lanes:
            for rule in lane.spec.ingress_rules:
                if rule.online and match_request(rule.match, headers, path):
                    return [(lane.name, rule.name, None)], notes
        notes.append("no route at the gateway: no online ingress rule of any lane matches")
        return [], notes

    rule = routing.weighted_routing_rule
    matches = rule.request_matches if rule else []
    if matches and not any(match_request(m, headers, path) for m in matches):
        notes.append("no route at the gateway: the group's weighted routing rule does not match")
        return [], notes
    try:
        shares = weighted_shares(topology)
    except InvalidSpec as exc:
        notes.append(f"no route at the gateway: {exc.errors[0].message}")
        return [], notes
    split = [(share.lane, None, share.weight) for share in shares]
    declared = sum(
        lane.spec.ingress_weight.weight for lane in topology.lanes if lane.spec.ingress_weight
    )
    if declared != 100:
        share = next(weight for lane, _, weight in split if lane == topology.fallback)
        notes.append(
            f"lane weights add up to {declared}%, not 100%: the fallback lane "
            f"{topology.fallback} takes the rest ({share}%)"
        )
    if header in headers:
        notes.append(
            f"under weighted routing the gateway picks the lane by weight and sets {header} to "
            f"it; the request's own {header}: {headers[header]} does not choose the lane"
        )
    return split, notes


def walk_hops(topology: Topology, graph: nx.DiGraph, lane: str) -> tuple[Hop, ...]:
    """The services a request in `lane` reaches, depth first from the entry, callees sorted."""
    entry = topology.entry
    if entry is None:
        return ()
    header = topology.group.spec.route_header

    def hop(service: str, caller: str | None, depth: int, via: str | None) -> Hop:
        if not graph.nodes[service]["in_group"]:
            note = "outside the group: no lane routing"
            return Hop(service, caller, depth, None, False, False, via, note)
        subset = topology.serving(service, lane)
        notes = []
        if subset != lane:
            notes.append(f"lane {lane} has no {service}; falls back to {subset}")
        if via and topology.strict:
            notes.append(
                f"reached through {via}, outside the group: the lane holds only if {via}'s "
                f"pods carry lane {lane}'s labels or it forwards {header}"
            )
        elif via:
            notes.append(
                f"reached through {via}, outside the group: the lane holds only if it "
                f"forwards {header}"
            )
        return Hop(service, caller, depth, subset, subset != lane, True, via, "; ".join(notes))

    hops = [hop(entry, None, 0, None)]
    depths = {entry: 0}
    passed: dict[str, str | None] = {entry: None if graph.nodes[entry]["in_group"] else entry}
    for caller, callee in nx.dfs_edges(graph, source=entry, sort_neighbors=sorted):
        depths[callee] = depths[caller] + 1
        via = passed[caller]
        passed[callee] = via or (None if graph.nodes[callee]["in_group"] else callee)
        hops.append(hop(callee, caller, depths[callee], via))
    return tuple(hops)


def explain(topology: Topology, graph: nx.DiGraph, headers: dict[str, str], path: str) -> Trace:
    """Which lane a request gets at the gateway and which subset serves each hop after it."""
    lowered = {name.lower(): value for name, value in headers.items()}
    chosen, notes = choose_lanes(topology, lowered, path)
    routes = tuple(
        Route(lane=lane, hops=walk_hops(topology, graph, lane), rule=rule, weight=weight)
        for lane, rule, weight in chosen
    )
    header = topology.group.spec.route_header
    strategy = topology.group.spec.ingress.ingress_routing.ingress_routing_strategy
    if topology.strict and routes:
        notes.append(
            "strict mode: each hop is routed by the calling pod's lane labels, with no "
            "fallback; a lane without ready pods of a service answers 503 for it"
        )
    if strategy != "weighted" and routes:
        given = lowered.get(header)
        if given is not None and given != routes[0].lane:
            notes.append(f"the gateway sets {header}: {routes[0].lane} in place of {given}")
    return Trace(
        group=topology.group.name,
        path=path,
        headers=lowered,
        strategy=strategy,
        routes=routes,
        notes=tuple(notes),
    )
