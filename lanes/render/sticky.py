"""Sticky lane entry on plain Istio: the gateway's module puts users, not requests, into a lane.

A LaneRelease with `sessionAffinity` enters users: the trace-affinity module
(lanes/traceaffinity, `entry.rs`), loaded into the ingress gateway by one more WasmPlugin,
hashes each untagged request's user key with the lane's name into one of 10,000 buckets and
sets the lane header when the bucket is below the entry weight (the plugin's `entryWeight`,
rewritten at each step). A VirtualService cannot do this: its weights draw per request, and
its regex matches on the key select a fixed set of keys rather than a share that grows with the
weight. The gateway's VirtualService then only has to route what the module tagged (the lane's
own header rule, or else a `<lane>/sticky` route on the entry paths) and stops splitting
untagged requests itself.

The weight in force is read back from the WasmPlugin (`plugin_weight`), as a per-request entry's
is read from the VirtualService. Pure.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from lanes.api.observations import TrafficStep
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import Topology

from .names import object_name
from .trace_affinity import API_VERSION, EXTENSION_LABEL, GATEWAY_SELECTOR, TraceAffinityModule

EXTENSION = "sticky-entry"
ROUTE_SUFFIX = "sticky"
WITHOUT_KEY = {"PerRequest": "split", "Base": "base"}


def sticky_step(topology: Topology) -> TrafficStep | None:
    """The entry step of the group's entry service when it is decided per user, else None."""
    entry = topology.entry
    step = topology.traffic_step(entry) if entry is not None else None
    if step is None or not step.enter or step.session_affinity is None:
        return None
    return step


def supported(topology: Topology) -> bool:
    """Whether the gateway's routes can take a sticky entry: rule-based ingress routing.

    A weighted ingress splits every request among the lanes by weight already; there the entry
    stays per request.
    """
    routing = topology.group.spec.ingress.ingress_routing
    return routing.ingress_routing_strategy != "weighted"


def without_sticky_entry(topology: Topology) -> Topology:
    """The topology with every entry step per request: for a gateway that has no module."""
    if not any(step.session_affinity is not None for step in topology.traffic.values()):
        return topology
    traffic = {service: step.model_copy(update={"session_affinity": None})
               for service, step in topology.traffic.items()}
    return replace(topology, traffic=traffic)


def route_name(lane: str) -> str:
    """The name of the gateway route for what the module tagged: `<lane>/sticky`."""
    return f"{lane}/{ROUTE_SUFFIX}"


def sticky_route(untagged: dict, header: str, lane: str, destination: dict,
                 set_headers: dict[str, str]) -> dict:
    """The gateway route for requests the module put into `lane`, on the untagged route's paths.

    `untagged` is the gateway's untagged route, whose matches require the lane header absent;
    here each requires it to be `lane` instead.
    """
    matches = []
    for match in untagged.get("match") or [{}]:
        match = copy.deepcopy(match)
        without = match.pop("withoutHeaders", {})
        without.pop(header, None)
        if without:
            match["withoutHeaders"] = without
        match["headers"] = {**match.get("headers", {}), header: {"exact": lane}}
        matches.append(match)
    return {
        "name": route_name(lane),
        "match": matches,
        "route": [{"destination": destination, "headers": {"request": {"set": set_headers}}}],
    }


def plugin_location(group: SwimLaneGroup) -> tuple[str, str]:
    """The namespace and name of the group's sticky-entry WasmPlugin (the gateway's)."""
    return group.spec.ingress.gateway.namespace, object_name("lanes", group.name, "entry")


def plugin_config(group: SwimLaneGroup, step: TrafficStep) -> dict:
    """The module's entry configuration: the lane, its weight and where the user key is."""
    affinity = step.session_affinity
    assert affinity is not None
    config: dict = {
        "routeHeader": group.spec.route_header,
        "entryLane": step.lane,
        "entryWeight": step.weight,
    }
    if affinity.header_name:
        config["userHeader"] = affinity.header_name
    if affinity.cookie_name:
        config["userCookie"] = affinity.cookie_name
    config["withoutUser"] = WITHOUT_KEY[affinity.without_key]
    return config


def entry_plugins(topology: Topology, module: TraceAffinityModule,
                  labels: dict[str, str]) -> list[dict]:
    """The gateway's sticky-entry WasmPlugin while an entry is decided per user (else none)."""
    step = sticky_step(topology)
    if step is None:
        return []
    namespace, name = plugin_location(topology.group)
    spec: dict = {
        "selector": {"matchLabels": dict(GATEWAY_SELECTOR)},
        "url": module.url,
        "pluginName": EXTENSION,
        "failStrategy": "FAIL_OPEN",
        "pluginConfig": plugin_config(topology.group, step),
    }
    if module.sha256:
        spec["sha256"] = module.sha256
    return [{
        "apiVersion": API_VERSION,
        "kind": "WasmPlugin",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**labels, EXTENSION_LABEL: EXTENSION}},
        "spec": spec,
    }]


def enters(plugin: dict, lane: str) -> bool:
    """Whether a sticky-entry WasmPlugin is the one putting users into `lane`."""
    config = (plugin.get("spec") or {}).get("pluginConfig") or {}
    return config.get("entryLane") == lane


def plugin_weight(plugin: dict, lane: str) -> int:
    """The share (percent) of users a sticky-entry WasmPlugin puts into `lane`."""
    config = (plugin.get("spec") or {}).get("pluginConfig") or {}
    if not enters(plugin, lane):
        return 0
    weight = config.get("entryWeight")
    return weight if isinstance(weight, int) else 0
