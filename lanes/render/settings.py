"""A service's own traffic settings on the routes and subsets lanes writes for it. Pure.

lanes owns each group service's VirtualService and DestinationRule, so the settings a service
had in its own (retries, a timeout, CORS, header rewrites, fault injection, mirroring; the
DestinationRule's TLS mode, connection pool, outlier detection, load balancer) are declared on
the group's service entry and applied here, whatever the flavour: on every HTTP route whose
destinations are all that service (each lane's, the default, a release step's, the gateway's),
and as the trafficPolicy of the service's DestinationRule, so every lane's subset inherits it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lanes.api.swimlanegroup import GroupService


def route_settings(service: GroupService) -> dict[str, Any]:
    """The service's HTTPRoute settings as Istio writes them (empty when it has none)."""
    return service.http.to_wire() if service.http is not None else {}


def with_settings(objects: Iterable[dict], services: Iterable[GroupService]) -> list[dict]:
    """`objects` with each service's settings on its routes and its DestinationRule.

    A route keeps what lanes set on it (a lane header, a match); a route sending to several
    services (an ASM weighted entry across entry services) gets no service's settings.
    """
    by_host = {s.host: s for s in services if s.http is not None or s.traffic_policy is not None}
    if not by_host:
        return list(objects)
    return [_with_settings(obj, by_host) for obj in objects]


def _with_settings(obj: dict, by_host: Mapping[str, GroupService]) -> dict:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "DestinationRule":
        service = by_host.get(spec.get("host", ""))
        if service is None or service.traffic_policy is None:
            return obj
        return {**obj, "spec": {**spec, "trafficPolicy": dict(service.traffic_policy)}}
    if obj.get("kind") != "VirtualService" or not spec.get("http"):
        return obj
    http = [_route_with_settings(route, by_host) for route in spec["http"]]
    return {**obj, "spec": {**spec, "http": http}}


def _route_with_settings(route: dict, by_host: Mapping[str, GroupService]) -> dict:
    hosts = {(d.get("destination") or {}).get("host") for d in route.get("route") or []}
    if len(hosts) != 1:
        return route
    service = by_host.get(next(iter(hosts)))
    if service is None:
        return route
    settings = {k: v for k, v in route_settings(service).items() if k not in route}
    return {**route, **settings}
