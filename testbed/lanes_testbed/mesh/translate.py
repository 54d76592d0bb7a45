"""Istio objects + pod endpoints -> the listeners, routes and clusters of one Envoy.

One Envoy plays both parts Istio splits between the ingress gateway and the sidecars: a
gateway listener serves the VirtualServices bound to a Gateway, and a mesh listener, used by
every pod as its HTTP proxy, routes by the Host a pod calls (`http://mockb:8000/`) through
that service's mesh VirtualService. Pure: the runner in `envoy.py` does the file and process
work.

Istio's `sourceLabels` make a route apply only on the proxies of matching workloads. The one
mesh listener tells callers apart by source address, as every pod has its own loopback IP:
pods are grouped by which of the mesh's distinct selectors their labels satisfy, and each
non-empty group gets a filter chain for its pods' addresses with its own route table. Callers
in no group (and anything not a pod) use the default chain and the `mesh` route table.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.render.trace_affinity import (
    TraceAffinityModule,
    group_in_trace_id_mode,
    plugin_config_of,
)

from .inputs import (
    Endpoint,
    MeshConfigError,
    Service,
    resolve_host,
    services_of,
    subset_matches,
)
from .routes import (
    Fallback,
    RouteContext,
    Selector,
    Target,
    default_routes,
    http_routes,
    selects,
    source_selectors,
)

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_CONFIG = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
GATEWAY, MESH = "gateway", "mesh"
LDS_FILE, CDS_FILE = "lds.json", "cds.json"
MAX = 2**32 - 1


@dataclass(frozen=True)
class MeshOptions:
    """Where the listeners bind, the lane header `$asm-label` reads, and the config folder.

    `config_dir` is only written into the listeners (their routes are read from files there,
    so a route change never replaces a listener and never drains its connections).
    """

    config_dir: str = "."
    gateway_address: str = "127.0.0.1"
    gateway_port: int = 8080
    mesh_address: str = "127.0.0.1"
    mesh_port: int = 15001
    route_header: str = "x-asm-prefer-tag"
    access_log: bool = False
    # The built trace-affinity module (lanes_testbed.wasm), loaded for lanes' WasmPlugins whose
    # module is not fetched (see `module_fetch`) and for asm-flavoured groups.
    trace_affinity_module: str | None = None
    # Modules fetched from WasmPlugins' urls and checked: (sha256, file) pairs.
    fetched_modules: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EnvoyConfig:
    """Envoy resources, each carrying its `@type` as xDS files need."""

    listeners: tuple[dict[str, Any], ...]
    routes: tuple[dict[str, Any], ...]
    clusters: tuple[dict[str, Any], ...]


def rds_file(route_name: str) -> str:
    return f"rds-{route_name}.json"


def rds_stat(route_name: str) -> str:
    """The admin stats prefix of a route table's RDS subscription (`...version_text`).

    Envoy names it by the stat prefix of the HCM reading it; every mesh chain shares `mesh`.
    """
    prefix = GATEWAY if route_name == GATEWAY else MESH
    return f"http.{prefix}.rds.{route_name}"


def source_route_name(sources: Iterable[Selector]) -> str:
    """The route table of callers satisfying exactly `sources`: `mesh-` and a digest of them.

    Derived from the selectors alone, so pods joining or leaving the group change only the
    listener's address list, never the name the chain reads its routes by.
    """
    text = json.dumps(sorted(sources), separators=(",", ":"))
    return f"{MESH}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def translate(
    objects: Iterable[Mapping[str, Any]],
    endpoints: Iterable[Endpoint],
    options: MeshOptions = MeshOptions(),
) -> EnvoyConfig:
    """Envoy config serving `objects` (Gateways, VirtualServices, DestinationRules, Services).

    `endpoints` are the pods: the ready ones are served, and every one, ready or not, is a
    caller that `sourceLabels` matches may select by its labels.

    Raises:
        MeshConfigError: an object uses a field the local mesh does not translate.
    """
    objects = list(objects)
    endpoints = list(endpoints)
    services = services_of(objects)
    subsets = _subsets(objects, services)
    gateways = {_key(o) for o in objects if o.get("kind") == "Gateway"}
    gateway_vs: list[Mapping[str, Any]] = []
    mesh_vs: dict[str, list[Mapping[str, Any]]] = {}
    for vs in (o for o in objects if o.get("kind") == "VirtualService"):
        namespace = _namespace(vs)
        spec = vs.get("spec") or {}
        for key in ("tcp", "tls"):
            if spec.get(key):
                raise MeshConfigError(f"VirtualService {_key(vs)}.spec.{key}: only http is served")
        bound = [_gateway_ref(g, namespace) for g in spec.get("gateways") or ["mesh"]]
        if any(g in gateways for g in bound):
            gateway_vs.append(vs)
        if "mesh" in bound:
            for host in spec.get("hosts") or []:
                mesh_vs.setdefault(resolve_host(host, namespace, services), []).append(vs)

    def context(
        vs: Mapping[str, Any],
        host: str | None,
        port: int | None,
        sources: frozenset[Selector] = frozenset(),
    ) -> RouteContext:
        return RouteContext(
            services=services,
            subsets=subsets,
            route_header=options.route_header.lower(),
            namespace=_namespace(vs),
            where=f"VirtualService {_key(vs)}",
            port=port,
            host=host,
            sources=sources,
        )

    contexts: list[RouteContext] = []
    gateway_routes: dict[str, list[dict[str, Any]]] = {}
    for vs in gateway_vs:
        for host in (vs.get("spec") or {}).get("hosts") or []:
            contexts.append(context(vs, None, None))
            gateway_routes.setdefault(host, []).extend(_routes_of(vs, contexts[-1]))
    defaults: set[Target] = set()

    def mesh_vhosts(sources: frozenset[Selector]) -> list[dict[str, Any]]:
        """The mesh route table as seen by callers satisfying the selectors `sources`."""
        vhosts = []
        for vhost, host, port in _mesh_vhosts(services, mesh_vs):
            routes: list[dict[str, Any]] = []
            for vs in mesh_vs.get(host, []):
                contexts.append(context(vs, host, port, sources))
                routes.extend(_routes_of(vs, contexts[-1]))
            if host not in mesh_vs:
                defaults.add(Target(host, port))
                routes = default_routes(Target(host, port))
            vhosts.append({**vhost, "routes": routes})
        return vhosts

    mesh_routes = [_route_config(MESH, mesh_vhosts(frozenset()))]
    source_chains: list[tuple[str, list[str]]] = []
    for sources, ips in _caller_classes(_mesh_selectors(mesh_vs), endpoints):
        name = source_route_name(sources)
        mesh_routes.append(_route_config(name, mesh_vhosts(sources)))
        source_chains.append((name, ips))
    gateway_vhosts = [
        {"name": host, "domains": ["*"] if host == "*" else [host, f"{host}:*"], "routes": routes}
        for host, routes in gateway_routes.items()
    ]
    targets = defaults.union(*(c.targets for c in contexts))
    fallbacks: set[Fallback] = set().union(*(c.fallbacks for c in contexts))
    ready = [e for e in endpoints if e.ready]
    clusters = [_cluster(t, services, subsets, ready) for t in targets]
    clusters += [_aggregate(f) for f in fallbacks]
    filters = _trace_affinity_filters(objects, options)
    return EnvoyConfig(
        listeners=(
            _listener(GATEWAY, options.gateway_address, options.gateway_port, options, (), filters),
            _listener(MESH, options.mesh_address, options.mesh_port, options, source_chains,
                      filters),
        ),
        routes=(_route_config(GATEWAY, gateway_vhosts), *mesh_routes),
        clusters=tuple(sorted(clusters, key=lambda c: c["name"])),
    )


# Istio's cluster tag: `cluster_name` keeps the whole cluster name
# (`outbound|8000|canary|mockb.default.svc.cluster.local`), where Envoy's default
# `envoy_cluster_name` stops at the first dot and leaves the host, mangled, in the metric name.
# Custom tags are extracted before the defaults, so names lose the host and both labels remain
# (the default one truncated). The `envoy` metric source reads `cluster_name`.
STATS_TAGS = [
    {"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"},
]


def bootstrap(options: MeshOptions, admin_port: int, node_id: str = "lanes-mesh") -> dict[str, Any]:
    """The static part of Envoy's config: admin on loopback, LDS and CDS read from files."""

    def source(name: str) -> dict[str, Any]:
        path = f"{options.config_dir}/{name}"
        return {"path_config_source": {"path": path}, "resource_api_version": "V3"}

    return {
        "node": {"id": node_id, "cluster": node_id},
        "admin": {"address": _address("127.0.0.1", admin_port)},
        "dynamic_resources": {"lds_config": source(LDS_FILE), "cds_config": source(CDS_FILE)},
        "stats_config": {"stats_tags": STATS_TAGS, "use_all_default_tags": True},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors"
                        ".downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 50000,
                    },
                }
            ]
        },
    }


def _routes_of(vs: Mapping[str, Any], ctx: RouteContext) -> list[dict[str, Any]]:
    routes = []
    for i, route in enumerate((vs.get("spec") or {}).get("http") or []):
        ctx.where = f"VirtualService {_key(vs)}.spec.http[{i}]"
        routes.extend(http_routes(route, ctx))
    return routes


def _mesh_selectors(mesh_vs: Mapping[str, list[Mapping[str, Any]]]) -> set[Selector]:
    """The distinct non-empty `sourceLabels` selectors of the mesh VirtualServices."""
    found: set[Selector] = set()
    for services_vs in mesh_vs.values():
        for vs in services_vs:
            for i, route in enumerate((vs.get("spec") or {}).get("http") or []):
                found.update(source_selectors(route, f"VirtualService {_key(vs)}.spec.http[{i}]"))
    return found


def _caller_classes(
    selectors: set[Selector], endpoints: list[Endpoint]
) -> list[tuple[frozenset[Selector], list[str]]]:
    """Pod addresses grouped by the selectors their labels satisfy; groups with none left out.

    Ready or not, a pod makes calls, so every endpoint counts. An address reported by two
    endpoints takes the selectors of both, so no address is in two groups.
    """
    by_ip: dict[str, set[Selector]] = {}
    for endpoint in endpoints:
        matched = {s for s in selectors if selects(s, endpoint.labels)}
        by_ip.setdefault(endpoint.ip, set()).update(matched)
    classes: dict[frozenset[Selector], list[str]] = {}
    for ip, matched in by_ip.items():
        if matched:
            classes.setdefault(frozenset(matched), []).append(ip)
    return sorted(
        ((sources, sorted(ips, key=ipaddress.ip_address)) for sources, ips in classes.items()),
        key=lambda entry: source_route_name(entry[0]),
    )


def _mesh_vhosts(
    services: Mapping[str, Service], mesh_hosts: Mapping[str, Any]
) -> list[tuple[dict[str, Any], str, int]]:
    """One virtual host per service port, with every name variant a pod may call it by.

    A bare name (`mockb`) is ambiguous across namespaces on a shared proxy; it goes to the
    service in `default`, else to the first namespace in order, and later ones keep only their
    qualified names. A name without a port means port 80, or the service's first port.
    """
    taken: set[str] = set()
    out = []
    ordered = sorted(services.values(), key=lambda s: (s.namespace != "default", s.host))
    for service in ordered:
        portless = 80 if 80 in service.ports else (service.ports[0] if service.ports else None)
        for port in service.ports:
            names = service.names()
            domains = [f"{n}:{port}" for n in names] + (names if port == portless else [])
            domains = [d for d in domains if d not in taken]
            taken.update(domains)
            out.append(({"name": f"{service.host}:{port}", "domains": domains}, service.host, port))
    for host in sorted(set(mesh_hosts) - set(services)):
        domains = [d for d in (host, f"{host}:*") if d not in taken]
        taken.update(domains)
        out.append(({"name": host, "domains": domains}, host, 80))
    return [entry for entry in out if entry[0]["domains"]]


def _subsets(
    objects: list[Mapping[str, Any]], services: Mapping[str, Service]
) -> dict[str, dict[str, Mapping[str, str]]]:
    """DestinationRule subsets per host; as in Istio, the first definition of a name wins."""
    found: dict[str, dict[str, Mapping[str, str]]] = {}
    for dr in (o for o in objects if o.get("kind") == "DestinationRule"):
        namespace = _namespace(dr)
        spec = dr.get("spec") or {}
        host = resolve_host(spec["host"], namespace, services)
        for subset in spec.get("subsets") or []:
            found.setdefault(host, {}).setdefault(subset["name"], dict(subset.get("labels") or {}))
    return found


def _cluster(
    target: Target,
    services: Mapping[str, Service],
    subsets: Mapping[str, Mapping[str, Mapping[str, str]]],
    endpoints: list[Endpoint],
) -> dict[str, Any]:
    """A static cluster of the ready endpoints of a service port (and subset).

    An unknown service or an undefined subset gets an empty cluster: Envoy answers 503, as
    Istio does, and an aggregate cluster passes over it to its fallback.
    """
    service = services.get(target.host)
    members: list[Endpoint] = []
    if service is not None and target.port in service.ports:
        labels = subsets.get(target.host, {}).get(target.subset) if target.subset else {}
        if labels is not None:
            members = [
                e for e in endpoints if service.selects(e) and subset_matches(labels, e.labels)
            ]
    lb_endpoints = sorted(
        (
            {"endpoint": {"address": _address(e.ip, service.target_port(target.port, e))}}
            for e in members
            if service is not None
        ),
        key=lambda e: (e["endpoint"]["address"]["socket_address"]["address"],
                       e["endpoint"]["address"]["socket_address"]["port_value"]),
    )
    return {
        "@type": CLUSTER,
        "name": target.cluster,
        "type": "STATIC",
        "connect_timeout": "2s",
        "lb_policy": "ROUND_ROBIN",
        "circuit_breakers": {"thresholds": [_unlimited()]},
        "load_assignment": {
            "cluster_name": target.cluster,
            "endpoints": [{"lb_endpoints": lb_endpoints}] if lb_endpoints else [],
        },
    }


def _aggregate(fallback: Fallback) -> dict[str, Any]:
    """ASM's fallback as an aggregate cluster: the first of its clusters that has endpoints."""
    return {
        "@type": CLUSTER,
        "name": fallback.cluster,
        "connect_timeout": "2s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
                "clusters": [fallback.primary.cluster, fallback.secondary.cluster],
            },
        },
    }


TRACE_AFFINITY_LABEL = ("lanes.dev/extension", "trace-affinity")
VM_ID = "lanes-trace-affinity"


@dataclass(frozen=True)
class ModuleFetch:
    """A WasmPlugin's module, fetched from its url and loaded only if it has its sha256."""

    url: str
    sha256: str


@dataclass(frozen=True)
class HttpFilters:
    """Wasm filters before routing (`downstream`) and after it, on the upstream request."""

    downstream: tuple[dict[str, Any], ...] = ()
    upstream: tuple[dict[str, Any], ...] = ()


def wasm_plugins_of(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The WasmPlugins among `objects`, each checked to be lanes' trace-affinity module.

    Raises:
        MeshConfigError: a WasmPlugin loads another module, which the local mesh cannot fetch.
    """
    found = []
    for obj in objects:
        if obj.get("kind") != "WasmPlugin":
            continue
        labels = (obj.get("metadata") or {}).get("labels") or {}
        key, value = TRACE_AFFINITY_LABEL
        if labels.get(key) != value:
            raise MeshConfigError(
                f"WasmPlugin {_key(obj)}: the local mesh loads only lanes' trace-affinity module "
                f"(label {key}: {value})"
            )
        found.append(obj)
    return found


def module_fetch(plugin: Mapping[str, Any]) -> ModuleFetch | None:
    """What the local mesh fetches for a WasmPlugin's module, or None to load the one built here.

    An http(s) url with a sha256 is fetched and checked, as Istio's agent does before a
    sidecar's Envoy loads the file it wrote: the operator's own module then runs only if
    the bytes it serves are those its WasmPlugins name. Other urls (oci://, file://, or
    http(s) without a sha256, which stand for a module the local mesh cannot reach) load
    the module built here.
    """
    spec = plugin.get("spec") or {}
    url, sha256 = str(spec.get("url") or ""), spec.get("sha256")
    if not sha256 or not url.startswith(("http://", "https://")):
        return None
    return ModuleFetch(url, str(sha256).lower())


def module_fetches(objects: Iterable[Mapping[str, Any]]) -> list[ModuleFetch]:
    """The distinct modules the WasmPlugins among `objects` have fetched."""
    return sorted({f for p in wasm_plugins_of(objects) if (f := module_fetch(p)) is not None},
                  key=lambda f: (f.sha256, f.url))


def needs_built_module(objects: Iterable[Mapping[str, Any]]) -> bool:
    """Whether some filter loads the module built here: a plugin whose module is not
    fetched, or an asm-flavoured group in trace-ID mode."""
    objects = list(objects)
    return (any(module_fetch(p) is None for p in wasm_plugins_of(objects))
            or bool(asm_trace_affinity(objects)))


def asm_trace_affinity(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Module configurations for the SwimLaneGroups of the asm flavour in ASM's trace-ID mode.

    ASM's own sidecars keep each trace's lane, so lanes generates nothing for it; the local
    mesh, standing in for ASM, runs lanes' module with the group's headers instead. A group
    that does not parse is left to the operator to report.
    """
    configs = []
    for obj in objects:
        if obj.get("kind") != "SwimLaneGroup" or (obj.get("spec") or {}).get("flavour") != "asm":
            continue
        try:
            group = SwimLaneGroup.model_validate(
                {"metadata": obj.get("metadata") or {}, "spec": obj.get("spec") or {}}
            )
        except ValueError:
            continue
        if group_in_trace_id_mode(group):
            configs.append(plugin_config_of(group, TraceAffinityModule()))
    return configs


def _trace_affinity_filters(objects: list[Mapping[str, Any]], options: MeshOptions) -> HttpFilters:
    """One filter per distinct module and plugin configuration, on every listener of the one
    Envoy.

    The local mesh's single Envoy is every pod's sidecar and the gateway at once, so the
    WasmPlugins' selectors all select it. Before routing, the filter restores a lane from
    memory; on the upstream request it remembers the lane the request leaves with, which
    includes a lane header set by the route itself (the gateway's), as a pod's inbound
    sidecar would see it in Istio.
    """
    fetched = dict(options.fetched_modules)
    found: set[tuple[str, str]] = set()
    for plugin in wasm_plugins_of(objects):
        fetch = module_fetch(plugin)
        if fetch is None:
            module = _built_module(options)
        elif fetch.sha256 in fetched:
            module = fetched[fetch.sha256]
        else:
            raise MeshConfigError(
                f"WasmPlugin {_key(plugin)}: its module ({fetch.url}, sha256 {fetch.sha256}) "
                "is not fetched (MeshOptions.fetched_modules)"
            )
        config = (plugin.get("spec") or {}).get("pluginConfig") or {}
        found.add((module, json.dumps(config, sort_keys=True)))
    found.update((_built_module(options), json.dumps(c, sort_keys=True))
                 for c in asm_trace_affinity(objects))
    downstream, upstream = [], []
    for module, text in sorted(found, key=lambda f: (f[1], f[0])):
        config = json.loads(text)
        downstream.append(wasm_filter(module, config, VM_ID))
        upstream.append(wasm_filter(module, {**config, "restore": False}, VM_ID))
    return HttpFilters(tuple(downstream), tuple(upstream))


def _built_module(options: MeshOptions) -> str:
    if options.trace_affinity_module is None:
        raise MeshConfigError(
            "a group in ASM's trace-ID mode needs the trace-affinity module, which is not "
            "built (MeshOptions.trace_affinity_module)"
        )
    return options.trace_affinity_module


def _listener(
    name: str,
    address: str,
    port: int,
    options: MeshOptions,
    source_chains: Iterable[tuple[str, list[str]]] = (),
    filters: HttpFilters = HttpFilters(),
) -> dict[str, Any]:
    """A listener whose default chain reads route table `name`.

    Each of `source_chains` (route table, caller addresses) adds a chain taken by connections
    from those addresses. Envoy replaces only the chains that differ, so a change to one
    group's addresses drains no other group's connections.
    """
    chains = [_filter_chain(_hcm(name, name, options, filters))]
    for route_name, ips in source_chains:
        chain = _filter_chain(_hcm(name, route_name, options, filters))
        ranges = [
            {"address_prefix": ip, "prefix_len": ipaddress.ip_address(ip).max_prefixlen}
            for ip in ips
        ]
        chains.append({"filter_chain_match": {"source_prefix_ranges": ranges}, **chain})
    return {
        "@type": LISTENER,
        "name": name,
        "address": _address(address, port),
        "filter_chains": chains,
    }


def _filter_chain(hcm: dict[str, Any]) -> dict[str, Any]:
    return {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }


def _hcm(
    stat_prefix: str, route_name: str, options: MeshOptions, filters: HttpFilters = HttpFilters()
) -> dict[str, Any]:
    """An HTTP connection manager reading route table `route_name` from its RDS file."""
    router: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    }
    if filters.upstream:
        router["upstream_http_filters"] = [
            *filters.upstream,
            {
                "name": "envoy.filters.http.upstream_codec",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http"
                    ".upstream_codec.v3.UpstreamCodec"
                },
            },
        ]
    hcm: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": stat_prefix,
        "rds": {
            "route_config_name": route_name,
            "config_source": {
                "path_config_source": {"path": f"{options.config_dir}/{rds_file(route_name)}"},
                "resource_api_version": "V3",
            },
        },
        "http_filters": [
            *filters.downstream,
            {"name": "envoy.filters.http.router", "typed_config": router},
        ],
    }
    if options.access_log:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3"
                    ".StdoutAccessLog"
                },
            }
        ]
    return hcm


WASM = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def wasm_filter(module: str, plugin_config: Mapping[str, Any], vm_id: str) -> dict[str, Any]:
    """Envoy's Wasm HTTP filter running `module` (a file) with `plugin_config` as its JSON.

    Filters naming the same `vm_id` share one VM per worker and one shared-data space, which
    is what lets the trace-affinity module's upstream and downstream filters share memory.
    """
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": WASM,
            "config": {
                "name": vm_id,
                "root_id": vm_id,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(dict(plugin_config), sort_keys=True),
                },
                "vm_config": {
                    "vm_id": vm_id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": module}},
                },
            },
        },
    }


def _route_config(name: str, vhosts: list[dict[str, Any]]) -> dict[str, Any]:
    # Routes may name a subset whose cluster is not defined yet; that must answer 503 at
    # request time (as in Istio), not reject the whole route table.
    return {
        "@type": ROUTE_CONFIG, "name": name, "validate_clusters": False, "virtual_hosts": vhosts
    }


def _unlimited() -> dict[str, Any]:
    """Istio lifts Envoy's default 1,024 limits; so do we, or load tests would hit them."""
    return {
        "max_connections": MAX,
        "max_pending_requests": MAX,
        "max_requests": MAX,
        "max_retries": MAX,
    }


def _address(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def _gateway_ref(ref: str, namespace: str) -> str:
    return ref if ref == "mesh" or "/" in ref else f"{namespace}/{ref}"


def _namespace(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace") or "default"


def _key(obj: Mapping[str, Any]) -> str:
    return f"{_namespace(obj)}/{(obj.get('metadata') or {}).get('name')}"
