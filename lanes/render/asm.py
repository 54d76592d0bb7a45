"""The ASM-compatible flavour: the objects Alibaba Cloud Service Mesh generates for swimlanes.

Everything lives in istio-system under ASM's names and labels, so a cluster moving from ASM
sees the same objects. The mesh VirtualServices route to `subset: $asm-label` (the subset
named by the request's lane) with a `fallback` target; both are ASM extensions that only
ASM's data plane understands.

In strict mode each lane's callers are routed to its own subset by `sourceLabels` first, then
by `$asm-label` with no fallback, as strict mode has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from lanes.api.topology import weighted_shares

from .base import Flavour
from .facts import Facts, matches_wire, online_rules, union
from .names import DNS_SUBDOMAIN_MAX, fqdn, shorten
from .steps import step_routes, untagged_condition

API_VERSION = "networking.istio.io/v1alpha3"
NAMESPACE = "istio-system"
SYSTEM_LABEL = "asm-system"
PROVIDER_LABEL = "provider"
GROUP_LABEL = "swimlane-group"
LANE_SUBSET = "$asm-label"
MESH_ROUTE = "default"
WEIGHTED_ROUTE = "weighted"


class AsmFlavour(Flavour):
    """ASM-compatible output."""

    name: ClassVar[str] = "asm"
    api_version: ClassVar[str] = API_VERSION
    managed: ClassVar[dict[str, str]] = {SYSTEM_LABEL: "true", PROVIDER_LABEL: "asm"}
    group_label: ClassVar[str] = GROUP_LABEL

    def ingress(self, facts: Facts) -> list[dict]:
        """`rule_based`: one VirtualService per lane with online rules; `weighted`: one in all."""
        routing = facts.topology.group.spec.ingress.ingress_routing
        if routing.ingress_routing_strategy == "weighted":
            rule = routing.weighted_routing_rule
            route: dict = {"name": WEIGHTED_ROUTE}
            matches = matches_wire(rule.request_matches) if rule else []
            if matches:
                route["match"] = matches
            route["route"] = [
                {
                    **_lane_route(facts, share.service, share.lane),
                    "weight": share.weight,
                }
                for share in weighted_shares(facts.topology)
            ]
            hosts = list(rule.hosts) if rule else ["*"]
            name = _name("swimlane-ingress-vs", facts.group)
            return [self.gateway_route(facts, name, NAMESPACE, hosts, [route])]
        objects = []
        for lane in facts.topology.lanes:
            rules = online_rules(lane)
            if not rules:
                continue
            http = []
            for rule in rules:
                route = {"name": rule.name}
                if rule.match:
                    route["match"] = [rule.match]
                route["route"] = [_lane_route(facts, rule.service, lane.name, rule.port)]
                http.append(route)
            objects.append(
                self.gateway_route(
                    facts,
                    _name("swimlane-ingress-vs", facts.group, lane.name),
                    NAMESPACE,
                    union([r.hosts for r in rules]),
                    http,
                )
            )
        return objects

    def mesh(self, facts: Facts) -> Callable[[str], tuple[dict, dict]]:
        """A `$asm-label` route with the fallback target, and a subset per serving lane."""
        labels = self.owner_labels(facts.group)
        fallback = facts.fallback
        selectors = facts.selectors
        members = facts.members
        untagged = untagged_condition(facts)
        vs_prefix = f"trafficlabel-vs-{facts.group}-"
        dr_prefix = f"trafficlabel-dr-{facts.group}-"

        def pair(service: str) -> tuple[dict, dict]:
            namespace, _, short = service.partition("/")
            host = f"{short}.{namespace}.svc.cluster.local"
            suffix = f"{namespace}-{short}"
            by_label: dict = {"destination": {"host": host, "subset": LANE_SUBSET}}
            http = []
            if facts.strict:
                http = [
                    {
                        "name": lane,
                        "match": [{"sourceLabels": dict(selectors[lane])}],
                        "route": [{"destination": {"host": host, "subset": lane}}],
                    }
                    for lane in members[service]
                ]
            else:
                by_label["fallback"] = {"target": {"host": host, "subset": fallback}}
                step = facts.topology.traffic_step(service)
                if step is not None and not step.enter:
                    http.extend(step_routes(host, step, fallback, untagged))
            http.append({"name": MESH_ROUTE, "route": [by_label]})
            vs = self.networking_object(
                "VirtualService", shorten(vs_prefix + suffix, DNS_SUBDOMAIN_MAX), NAMESPACE,
                labels, {"hosts": [host], "http": http},
            )
            subsets = facts.subsets(service)
            dr = self.networking_object(
                "DestinationRule", shorten(dr_prefix + suffix, DNS_SUBDOMAIN_MAX), NAMESPACE,
                labels, {"host": host, "subsets": subsets},
            )
            return vs, dr

        return pair


def _name(*parts: str) -> str:
    return shorten("-".join(parts), DNS_SUBDOMAIN_MAX)


def _lane_route(facts: Facts, service: str, lane: str, port: int | None = None) -> dict:
    """A destination in `lane`'s subset, falling back to the fallback's, tagged with the lane.

    ASM routes to the lane's subset even where the lane has no pods and relies on `fallback`;
    strict mode has no fallback.
    """
    destination: dict = {"host": fqdn(service), "subset": lane}
    if port is not None:
        destination["port"] = {"number": port}
    route: dict = {"destination": destination}
    if facts.fallback is not None:
        target: dict = {"host": fqdn(service), "subset": facts.fallback}
        if port is not None:
            target["port"] = {"number": port}
        route["fallback"] = {"target": target}
    route["headers"] = {"request": {"set": {facts.route_header: lane}}}
    return route
