"""The portable flavour: plain Istio `networking.istio.io/v1` objects any Istio can apply.

Each service gets a VirtualService in its own namespace with one route per lane that has pods
of it, matched on the lane header (or the lane's member of the `baggage` header), then a
default route to the fallback lane; a request whose lane lacks the service therefore reaches the
fallback's pods, with no mesh extension needed. The gateway's VirtualService puts requests
into lanes and sets the lane header for the hops that follow.

In strict mode each lane's route matches the calling pod's labels (`sourceLabels`, the lane's
selector), so a hop stays in its caller's lane whatever headers the application passes on;
callers outside every lane are routed by the lane header, and there is no default route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.observations import TrafficStep
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import weighted_shares

from . import baggage, sticky
from .base import Flavour
from .facts import Facts, match_wire, matches_wire, online_rules, union
from .steps import (
    MATCHES_ROUTE,
    UNTAGGED_ROUTE,
    and_match,
    entered_weight,
    step_routes,
    untagged_condition,
)
from .names import DNS_LABEL_MAX, fqdn, object_name, shorten
from .shadow import mirror_fields, shadow_route, shadow_step

API_VERSION = "networking.istio.io/v1"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "lanes"
GROUP_LABEL = "lanes.dev/group"
INGRESS_SUFFIX = "ingress"
WEIGHTED_ROUTE = "weighted"
HEADER_ROUTE = "header"


class IstioFlavour(Flavour):
    """Plain Istio output (the default flavour)."""

    name: ClassVar[str] = "istio"
    api_version: ClassVar[str] = API_VERSION
    managed: ClassVar[dict[str, str]] = {MANAGED_BY: MANAGER}
    group_label: ClassVar[str] = GROUP_LABEL
    weighted_entry: ClassVar[bool] = True

    def entry_route(self, group: SwimLaneGroup) -> tuple[str, str]:
        """The group's gateway VirtualService, in the gateway's namespace."""
        gateway = group.spec.ingress.gateway
        return gateway.namespace, object_name("lanes", group.name, INGRESS_SUFFIX)

    def entered_weight(self, route: dict, group: SwimLaneGroup, lane: str) -> int:
        """Read from its untagged or weighted routes (`steps.entered_weight`)."""
        return entered_weight(route, group.spec.route_header, lane)

    def ingress(self, facts: Facts) -> list[dict]:
        """One VirtualService bound to the gateway, in the gateway's namespace."""
        spec = facts.topology.group.spec
        routing = spec.ingress.ingress_routing
        if routing.ingress_routing_strategy == "weighted":
            rule = routing.weighted_routing_rule
            hosts = list(rule.hosts) if rule else ["*"]
            http = [_weighted_route(facts, matches_wire(rule.request_matches) if rule else [])]
        else:
            hosts, http = _rule_routes(facts)
            if not http:
                return []
            http.extend(_untagged_routes(facts))
            _add_sticky_route(facts, http)
        gateway = spec.ingress.gateway
        name = object_name("lanes", facts.group, INGRESS_SUFFIX)
        _check_ingress_name(facts, gateway.namespace, name)
        return [self.gateway_route(facts, name, gateway.namespace, hosts, http)]

    def mesh(self, facts: Facts) -> Callable[[str], tuple[dict, dict]]:
        """Each service's lane routes then its default route, and its subsets."""
        labels = self.owner_labels(facts.group)
        prefix = _mesh_prefix(facts.group)
        fallback = facts.fallback
        selectors = facts.selectors
        members = facts.members
        header = facts.route_header
        untagged = untagged_condition(facts)
        if facts.propagation == "baggage":
            lane_match = {
                lane: (baggage.HEADER, "regex", baggage.member_regex(header, lane))
                for lane in facts.lanes
            }
        else:
            lane_match = {lane: (header, "exact", lane) for lane in facts.lanes}

        def pair(service: str) -> tuple[dict, dict]:
            namespace, _, short = service.partition("/")
            host = f"{short}.{namespace}.svc.cluster.local"
            name = _mesh_name(prefix, short)
            lanes = members[service]
            if facts.strict:
                http = _strict_routes(host, lanes, selectors, lane_match)
            else:
                http = []
                for lane in lanes:
                    if lane != fallback:
                        key, how, value = lane_match[lane]
                        http.append(
                            {
                                "name": lane,
                                "match": [{"headers": {key: {how: value}}}],
                                "route": [{"destination": {"host": host, "subset": lane}}],
                            }
                        )
                shadow = shadow_route(facts, service, host, untagged)
                if shadow is not None:
                    http.append(shadow)
                step = facts.topology.traffic_step(service)
                if step is not None and not step.enter:
                    http.extend(step_routes(host, step, fallback, untagged))
                http.append(
                    {"name": fallback,
                     "route": [{"destination": {"host": host, "subset": fallback}}]}
                )
            vs = self.networking_object(
                "VirtualService", name, namespace, labels, {"hosts": [host], "http": http}
            )
            subsets = facts.subsets(service)
            dr = self.networking_object(
                "DestinationRule", name, namespace, labels, {"host": host, "subsets": subsets}
            )
            return vs, dr

        return pair


def _strict_routes(
    host: str,
    lanes: tuple[str, ...],
    selectors: dict[str, dict[str, str]],
    lane_match: dict[str, tuple[str, str, str]],
) -> list[dict]:
    """Strict mode: each lane's callers to its own subset, then lane-header routes.

    The `sourceLabels` routes come first, so a pod's own lane decides and a header it passes
    on cannot move the request; the header routes serve callers outside every lane (a client
    or a service outside the group forwarding the header). Anything else matches no route.
    """
    http = [
        {
            "name": lane,
            "match": [{"sourceLabels": dict(selectors[lane])}],
            "route": [{"destination": {"host": host, "subset": lane}}],
        }
        for lane in lanes
    ]
    for lane in lanes:
        key, how, value = lane_match[lane]
        http.append(
            {
                "name": f"{lane}/{HEADER_ROUTE}",
                "match": [{"headers": {key: {how: value}}}],
                "route": [{"destination": {"host": host, "subset": lane}}],
            }
        )
    return http


def _untagged_routes(facts: Facts) -> list[dict]:
    """The gateway's route for requests no lane's rule claims and that carry no lane.

    They go to the fallback lane's subset of the entry service, split by its release's traffic
    step, on the paths the lanes' rules enter by (their matches without the lane header). No
    lane header is set, so each later service applies its own release's step.
    """
    entry = facts.topology.entry
    if entry is None or facts.fallback is None:
        return []
    matches: list[dict] = []
    port = None
    for lane in facts.topology.ingress_lanes:
        for rule in online_rules(lane):
            if rule.service != entry:
                continue
            port = port if port is not None else rule.port
            match = dict(rule.match or {})
            headers = {k: v for k, v in (match.get("headers") or {}).items()
                       if k != facts.route_header}
            match.pop("headers", None)
            if headers:
                match["headers"] = headers
            if match not in matches:
                matches.append(match)
    if not matches:
        return []
    if {} in matches:
        matches = [{}]
    without = {"withoutHeaders": {facts.route_header: {}}}
    step = _per_request_share(facts.topology.traffic_step(entry))
    fallback = _destination(facts, entry, facts.fallback, port)
    routes = []
    canary: dict = {}
    if step is not None:
        canary = {"destination": {**fallback, "subset": step.lane}}
        if step.enter:
            canary = {
                "destination": _destination(facts, entry, step.lane, port),
                "headers": {"request": {"set": _lane_headers(facts, step.lane)}},
            }
    if step is not None and step.matches:
        routes.append(
            {
                "name": f"{step.lane}/{MATCHES_ROUTE}",
                "match": [and_match(and_match(m, match_wire(sm)), without)
                          for m in matches for sm in step.matches],
                "route": [canary],
            }
        )
    destinations: list[dict] = [{"destination": fallback}]
    if step is not None and step.enter and step.weight == 100:
        destinations = [canary]
    elif step is not None and step.weight:
        destinations = [
            {"destination": fallback, "weight": 100 - step.weight},
            {**canary, "weight": step.weight},
        ]
    untagged_route = {
        "name": UNTAGGED_ROUTE,
        "match": [and_match(m, without) for m in matches],
        "route": destinations,
    }
    shadow = shadow_step(facts.topology)
    if shadow is not None:
        untagged_route.update(mirror_fields(shadow, _destination(facts, entry, shadow.lane, port)))
    routes.append(untagged_route)
    return routes


def _per_request_share(step: TrafficStep | None) -> TrafficStep | None:
    """The step whose weight the gateway's route splits: none of a sticky entry's, which the
    gateway's module decides per user (`sticky`)."""
    if step is None or step.session_affinity is None:
        return step
    return step.model_copy(update={"weight": 0})


def _add_sticky_route(facts: Facts, http: list[dict]) -> None:
    """Put the route for requests the module entered into a lane before the untagged route,
    unless the lane's own rules already route each of them (a lane entered by its header)."""
    step = sticky.sticky_step(facts.topology)
    untagged = next((i for i, r in enumerate(http) if r.get("name") == UNTAGGED_ROUTE), None)
    if step is None or untagged is None:
        return
    port = (http[untagged]["route"][0]["destination"].get("port") or {}).get("number")
    destination = _destination(facts, facts.topology.entry, step.lane, port)
    route = sticky.sticky_route(http[untagged], facts.route_header, step.lane, destination,
                                _lane_headers(facts, step.lane))
    routed = [match for earlier in http[:untagged] for match in earlier.get("match") or [{}]]
    if any(match not in routed for match in route["match"]):
        http.insert(untagged, route)


def _lane_headers(facts: Facts, lane: str) -> dict[str, str]:
    """The headers the gateway sets on a request it puts into `lane`."""
    headers = {facts.route_header: lane}
    if facts.propagation == "baggage":
        headers[baggage.HEADER] = baggage.member(facts.route_header, lane)
    return headers


def _destination(facts: Facts, service: str, lane: str, port: int | None = None) -> dict:
    """`lane`'s subset of `service` where the lane has pods of it, else the fallback's."""
    subset = facts.topology.serving(service, lane)
    destination: dict = {"host": fqdn(service), "subset": subset}
    if port is not None:
        destination["port"] = {"number": port}
    return destination


def _rule_routes(facts: Facts) -> tuple[list[str], list[dict]]:
    """One route per online rule, the fallback lane's last; and the rules' hosts."""
    http = []
    hosts = []
    for lane in facts.topology.ingress_lanes:
        for rule in online_rules(lane):
            hosts.append(rule.hosts)
            # A rule named after its lane (ASM's habit) keeps its name; others are prefixed
            # with the lane, which has no `/`, so route names stay unique across lanes.
            name = rule.name if rule.name == lane.name else f"{lane.name}/{rule.name}"
            route: dict = {"name": name}
            if rule.match:
                route["match"] = [rule.match]
            route["route"] = [
                {
                    "destination": _destination(facts, rule.service, lane.name, rule.port),
                    "headers": {"request": {"set": _lane_headers(facts, lane.name)}},
                }
            ]
            http.append(route)
    return union(hosts), http


def _weighted_route(facts: Facts, matches: list[dict]) -> dict:
    """One route splitting traffic by lane weight, each share tagged with its lane."""
    route: dict = {"name": WEIGHTED_ROUTE}
    if matches:
        route["match"] = matches
    destinations = []
    for share in weighted_shares(facts.topology):
        step = facts.topology.traffic_step(share.service)
        if share.lane == facts.fallback and step is not None and step.weight:
            canary = round(share.weight * step.weight / 100)
            entered = step.lane if step.enter else share.lane
            lane_subset = _destination(facts, share.service, step.lane)["subset"]
            parts = [(facts.fallback, share.weight - canary, share.lane),
                     (lane_subset if step.enter else step.lane, canary, entered)]
        else:
            subset = _destination(facts, share.service, share.lane)["subset"]
            parts = [(subset, share.weight, share.lane)]
        for subset, weight, lane in parts:
            if weight == 0 and len(parts) > 1:
                continue
            destinations.append(
                {
                    "destination": {"host": fqdn(share.service), "subset": subset},
                    "headers": {"request": {"set": _lane_headers(facts, lane)}},
                    "weight": weight,
                }
            )
    route["route"] = destinations
    return route


def _mesh_prefix(group: str) -> str:
    return object_name("lanes", group) + "-"


def _mesh_name(prefix: str, service_name: str) -> str:
    """`lanes-<group>-<service>`, shortened to a DNS label when longer."""
    name = prefix + service_name
    return name if len(name) <= DNS_LABEL_MAX else shorten(name, DNS_LABEL_MAX)


def _check_ingress_name(facts: Facts, namespace: str, name: str) -> None:
    """A group service named `ingress` in the gateway's namespace would share its name."""
    key = f"{namespace}/{INGRESS_SUFFIX}"
    if key in facts.members and _mesh_name(_mesh_prefix(facts.group), INGRESS_SUFFIX) == name:
        services = facts.topology.group.spec.services
        index = next(i for i, s in enumerate(services) if s.key == key)
        raise InvalidSpec(
            [
                FieldError(
                    "SwimLaneGroup",
                    facts.group,
                    f"spec.services[{index}]",
                    f"service {key} would share the name of the gateway's VirtualService "
                    f"{name}; the istio flavour "
                    "cannot render a service named 'ingress' in the gateway's namespace",
                )
            ]
        )
