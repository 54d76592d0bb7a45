"""ASM's trace-ID mode on plain Istio: the WasmPlugins that load lanes' trace-affinity module.

A group is in trace-ID mode the way ASM decides it: permissive, lane passed on by header, and a
`traceHeader` other than the `routeHeader`. Its applications pass on only the trace header, so
each proxy must remember which lane a trace's inbound request was in and put that lane on the
outbound calls carrying the same trace: the module (lanes/traceaffinity) does that, and one
WasmPlugin per lane and namespace loads it into the group's workloads (selected by the lane's
labels, as the DestinationRule subsets select them), one more into the ingress gateway. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import Topology

from .names import object_name

API_VERSION = "extensions.istio.io/v1alpha1"
EXTENSION_LABEL = "lanes.dev/extension"
EXTENSION = "trace-affinity"
# Where the chart's operator serves the module, installed as `lanes` in `lanes-system`.
DEFAULT_URL = "http://lanes-trace-affinity.lanes-system.svc:9091/wasm/trace-affinity.wasm"
# The labels of Istio's default ingress gateway Deployment (istio-ingressgateway).
GATEWAY_SELECTOR = {"istio": "ingressgateway"}
DEFAULT_MAX_ENTRIES = 10000
DEFAULT_MAX_AGE_SECONDS = 60


@dataclass(frozen=True)
class TraceAffinityModule:
    """Where proxies fetch the module, its digest, and the memory bounds it is given."""

    url: str = DEFAULT_URL
    sha256: str | None = None
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS


def trace_id_mode(topology: Topology) -> bool:
    """ASM's rule: permissive, header propagation, and a trace header of its own."""
    return group_in_trace_id_mode(topology.group)


def group_in_trace_id_mode(group: SwimLaneGroup) -> bool:
    """`trace_id_mode` of a group alone, for those (the local mesh) that hold no Topology."""
    spec = group.spec
    config = spec.permissive_mode_configuration
    if spec.strict or spec.propagation != "header" or config is None or not config.trace_header:
        return False
    return config.trace_header.lower() != config.route_header.lower()


def plugin_config_of(group: SwimLaneGroup, module: TraceAffinityModule) -> dict:
    """The module's configuration for a group in trace-ID mode: its headers and the bounds."""
    config = group.spec.permissive_mode_configuration
    assert config is not None and config.trace_header
    return {
        "routeHeader": config.route_header,
        "traceHeader": config.trace_header,
        "maxEntries": module.max_entries,
        "maxAgeSeconds": module.max_age_seconds,
    }


def wasm_plugins(
    topology: Topology, module: TraceAffinityModule, labels: dict[str, str]
) -> list[dict]:
    """The WasmPlugins of a group in trace-ID mode (none otherwise), in a stable order."""
    if not trace_id_mode(topology):
        return []
    spec = topology.group.spec
    plugin_config = plugin_config_of(topology.group, module)
    group = topology.group.name
    namespaces = sorted({key.partition("/")[0] for key in topology.members})
    targets = [
        (spec.ingress.gateway.namespace, object_name("lanes", group, "trace", "gateway"),
         dict(GATEWAY_SELECTOR))
    ]
    for namespace in namespaces:
        for lane in topology.lanes:
            targets.append((namespace, object_name("lanes", group, "trace", lane.name),
                            dict(lane.spec.label_selector)))
    plugins = []
    for namespace, name, selector in targets:
        plugin_spec: dict = {
            "selector": {"matchLabels": selector},
            "url": module.url,
            "pluginName": EXTENSION,
            "failStrategy": "FAIL_OPEN",
            "pluginConfig": dict(plugin_config),
        }
        if module.sha256:
            plugin_spec["sha256"] = module.sha256
        plugins.append({
            "apiVersion": API_VERSION,
            "kind": "WasmPlugin",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {**labels, EXTENSION_LABEL: EXTENSION}},
            "spec": plugin_spec,
        })
    return plugins
