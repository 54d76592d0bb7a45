"""Istio HTTP routes -> Envoy routes, including ASM's `$asm-label` subsets and `fallback`.

Only what lanes generates (and what a hand-written lane setup commonly adds) is translated;
anything else is refused with a `MeshConfigError` rather than silently routed differently
from Istio.

A match's `sourceLabels` names the calling workloads it applies to. Istio leaves such a match
out of the config of every other proxy; here one route table is translated per set of
selectors a caller satisfies (`RouteContext.sources`), keeping the matches whose selector is
in the set (without the selector, which Envoy cannot express) and dropping the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .inputs import MeshConfigError, Service, resolve_host

ASM_LABEL = "$asm-label"

HTTP_KEYS = {"name", "match", "route", "headers", "timeout", "retries"}
MATCH_KEYS = {
    "name", "uri", "headers", "withoutHeaders", "method", "authority", "queryParams",
    "ignoreUriCase", "sourceLabels",
}
DESTINATION_KEYS = {"destination", "weight", "headers", "fallback"}

# Istio's default retry policy for mesh routes (pilot's networking/core/retry), so a pod
# going away mid-update costs a retry on another endpoint instead of a failed request.
DEFAULT_RETRIES = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retriable_status_codes": [503],
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3"
                ".PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": "5",
}


Selector = tuple[tuple[str, str], ...]
"""A `sourceLabels` selector as sorted (label, value) pairs, so equal selectors compare equal."""


class Target(NamedTuple):
    """One Envoy cluster's worth of endpoints: a service port, optionally one subset of it."""

    host: str
    port: int
    subset: str | None = None

    @property
    def cluster(self) -> str:
        return f"outbound|{self.port}|{self.subset or ''}|{self.host}"


class Fallback(NamedTuple):
    """ASM's fallback: serve from `primary`, or from `secondary` while `primary` is empty."""

    primary: Target
    secondary: Target

    @property
    def cluster(self) -> str:
        return f"fallback({self.primary.cluster},{self.secondary.cluster})"


@dataclass
class RouteContext:
    """What translating one VirtualService needs, and the clusters its routes refer to."""

    services: Mapping[str, Service]
    subsets: Mapping[str, Mapping[str, Mapping[str, str]]]
    route_header: str
    namespace: str
    where: str
    port: int | None = None
    host: str | None = None
    sources: frozenset[Selector] = frozenset()
    targets: set[Target] = field(default_factory=set)
    fallbacks: set[Fallback] = field(default_factory=set)


def http_routes(route: Mapping[str, Any], ctx: RouteContext) -> list[dict[str, Any]]:
    """The Envoy routes for one Istio HTTPRoute, in match order.

    Matches whose `sourceLabels` selector is not among `ctx.sources` do not apply to this
    caller and are left out; a route all of whose matches are left out yields no routes.
    """
    _check_keys(route, HTTP_KEYS, ctx.where)
    destinations = route.get("route") or []
    if not destinations:
        raise MeshConfigError(f"{ctx.where}.route: a route needs at least one destination")
    matches = []
    for i, spec in enumerate(route.get("match") or [{}]):
        where = f"{ctx.where}.match[{i}]"
        match = _match(spec, where)
        selector = source_selector(spec, where)
        if not selector or selector in ctx.sources:
            matches.append(match)
    common = _route_common(route, ctx)
    if not matches:
        return []
    asm_label = [d for d in destinations if (d.get("destination") or {}).get("subset") == ASM_LABEL]
    if asm_label:
        if len(destinations) != 1:
            raise MeshConfigError(f"{ctx.where}.route: {ASM_LABEL} needs a single destination")
        return _lane_routes(destinations[0], matches, common, ctx)
    action, headers = _action(destinations, ctx)
    return [_route(match, action, headers, common, route.get("name")) for match in matches]


def source_selectors(route: Mapping[str, Any], where: str) -> list[Selector]:
    """The non-empty `sourceLabels` selectors of one HTTPRoute's matches, in match order."""
    found = []
    for i, spec in enumerate(route.get("match") or []):
        selector = source_selector(spec, f"{where}.match[{i}]")
        if selector:
            found.append(selector)
    return found


def source_selector(spec: Mapping[str, Any], where: str) -> Selector:
    """A match's `sourceLabels` as a `Selector`; empty when absent or `{}` (every caller).

    Raises:
        MeshConfigError: `sourceLabels` is not a map of label names to string values.
    """
    labels = spec.get("sourceLabels")
    if labels is None:
        return ()
    where = f"{where}.sourceLabels"
    if not isinstance(labels, Mapping):
        raise MeshConfigError(f"{where}: expected a map of label names to values, got {labels!r}")
    for key, value in labels.items():
        if not isinstance(key, str) or not key:
            raise MeshConfigError(f"{where}: label name {key!r} is not a non-empty string")
        if not isinstance(value, str):
            raise MeshConfigError(f"{where}.{key}: label value {value!r} is not a string")
    return tuple(sorted(labels.items()))


def selects(selector: Selector, labels: Mapping[str, str]) -> bool:
    """Whether a caller with `labels` is one a `sourceLabels` selector names."""
    return all(labels.get(key) == value for key, value in selector)


def default_routes(target: Target) -> list[dict[str, Any]]:
    """What a service without a VirtualService gets: every endpoint of it."""
    return [
        {
            "match": {"prefix": "/"},
            "route": {"cluster": target.cluster, "timeout": "0s", "retry_policy": DEFAULT_RETRIES},
        }
    ]


def _lane_routes(
    destination: Mapping[str, Any],
    matches: list[dict[str, Any]],
    common: dict[str, Any],
    ctx: RouteContext,
) -> list[dict[str, Any]]:
    """`subset: $asm-label`: one route per known subset keyed on the lane header, then fallback."""
    _check_keys(destination, DESTINATION_KEYS, f"{ctx.where}.route[0]")
    host = resolve_host(destination["destination"]["host"], ctx.namespace, ctx.services)
    port = _port(destination["destination"], host, ctx)
    fallback = _fallback_target(destination, ctx)
    headers = _header_ops(destination.get("headers"))
    routes = []
    for subset in sorted(ctx.subsets.get(host, {})):
        target = Target(host, port, subset)
        action = {"cluster": _cluster(target, fallback, ctx)}
        lane = {"name": ctx.route_header, "string_match": {"exact": subset}}
        for match in matches:
            keyed = {**match, "headers": [*match.get("headers", []), lane]}
            routes.append(_route(keyed, action, headers, common, subset))
    if fallback is not None:
        ctx.targets.add(fallback)
        action = {"cluster": fallback.cluster}
        routes.extend(_route(match, action, headers, common, "fallback") for match in matches)
    return routes


def _action(
    destinations: list[Mapping[str, Any]], ctx: RouteContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route action and route-level header mutations: one cluster, or weighted clusters.

    A single destination's header mutations go on the route; weighted destinations keep
    their own, so each lane's share of traffic is tagged with its lane.
    """
    weighted = []
    for i, dest in enumerate(destinations):
        where = f"{ctx.where}.route[{i}]"
        _check_keys(dest, DESTINATION_KEYS, where)
        spec = dest.get("destination") or {}
        if "host" not in spec:
            raise MeshConfigError(f"{where}.destination.host: required")
        host = resolve_host(spec["host"], ctx.namespace, ctx.services)
        target = Target(host, _port(spec, host, ctx), spec.get("subset"))
        cluster = _cluster(target, _fallback_target(dest, ctx), ctx)
        weight = int(dest.get("weight", 100 if len(destinations) == 1 else 0))
        weighted.append((cluster, weight, _header_ops(dest.get("headers"))))
    if len(weighted) == 1:
        cluster, _, headers = weighted[0]
        return {"cluster": cluster}, headers
    if sum(w for _, w, _ in weighted) <= 0:
        raise MeshConfigError(f"{ctx.where}.route: weights must not all be 0")
    clusters = [{"name": c, "weight": w, **h} for c, w, h in weighted]
    return {"weighted_clusters": {"clusters": clusters}}, {}


def _cluster(target: Target, fallback: Target | None, ctx: RouteContext) -> str:
    ctx.targets.add(target)
    if fallback is None or fallback == target:
        return target.cluster
    ctx.targets.add(fallback)
    pair = Fallback(target, fallback)
    ctx.fallbacks.add(pair)
    return pair.cluster


def _fallback_target(dest: Mapping[str, Any], ctx: RouteContext) -> Target | None:
    spec = ((dest.get("fallback") or {}).get("target")) or None
    if spec is None:
        return None
    host = resolve_host(spec["host"], ctx.namespace, ctx.services)
    return Target(host, _port(spec, host, ctx), spec.get("subset"))


def _port(spec: Mapping[str, Any], host: str, ctx: RouteContext) -> int:
    """Istio's port choice: explicit, else the service's only port, else the listener's."""
    explicit = (spec.get("port") or {}).get("number")
    if explicit:
        return int(explicit)
    service = ctx.services.get(host)
    if service is not None and len(service.ports) == 1:
        return service.ports[0]
    if host == ctx.host and ctx.port is not None:
        return ctx.port
    return service.ports[0] if service is not None and service.ports else 80


def _route_common(route: Mapping[str, Any], ctx: RouteContext) -> dict[str, Any]:
    """Route-level settings shared by every Envoy route an HTTPRoute expands to."""
    retries: dict[str, Any] | None = DEFAULT_RETRIES
    spec = route.get("retries")
    if spec is not None:
        attempts = int(spec.get("attempts", 0))
        retries = None if attempts <= 0 else {
            **DEFAULT_RETRIES,
            "num_retries": attempts,
            **({"retry_on": spec["retryOn"]} if spec.get("retryOn") else {}),
            **({"per_try_timeout": duration(spec["perTryTimeout"], ctx.where)}
               if spec.get("perTryTimeout") else {}),
        }
    timeout = route.get("timeout")
    common: dict[str, Any] = {
        "timeout": duration(timeout, f"{ctx.where}.timeout") if timeout else "0s"
    }
    if retries is not None:
        common["retry_policy"] = retries
    return {"action": common, "headers": _header_ops(route.get("headers"))}


def _route(
    match: dict[str, Any],
    action: dict[str, Any],
    headers: Mapping[str, Any],
    common: dict[str, Any],
    name: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"match": match, "route": {**action, **common["action"]}}
    out.update(_merge_header_ops(common["headers"], headers))
    if name:
        out["name"] = name
    return out


def _match(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Istio HTTPMatchRequest -> Envoy RouteMatch; the conditions of one match are ANDed."""
    _check_keys(spec, MATCH_KEYS, where)
    out: dict[str, Any] = {}
    uri = spec.get("uri")
    if uri:
        kind, value = _string_match(uri, f"{where}.uri")
        out.update({"exact": {"path": value}, "prefix": {"prefix": value},
                    "regex": {"safe_regex": {"regex": value}}}[kind])
    else:
        out["prefix"] = "/"
    if spec.get("ignoreUriCase"):
        out["case_sensitive"] = False
    headers = [
        _header(name, m, False, f"{where}.headers")
        for name, m in (spec.get("headers") or {}).items()
    ]
    headers += [
        _header(name, m, True, f"{where}.withoutHeaders")
        for name, m in (spec.get("withoutHeaders") or {}).items()
    ]
    for pseudo, key in ((":method", "method"), (":authority", "authority")):
        if spec.get(key):
            headers.append(_header(pseudo, spec[key], False, f"{where}.{key}"))
    if headers:
        out["headers"] = headers
    params = spec.get("queryParams") or {}
    if params:
        out["query_parameters"] = [
            {"name": name, "string_match": _envoy_string(m, f"{where}.queryParams.{name}")}
            for name, m in params.items()
        ]
    return out


def _header(name: str, spec: Mapping[str, Any], invert: bool, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name.lower()}
    if not spec:
        out["present_match"] = True
    else:
        out["string_match"] = _envoy_string(spec, f"{where}.{name}")
    if invert:
        out["invert_match"] = True
    return out


def _envoy_string(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind, value = _string_match(spec, where)
    return {"safe_regex": {"regex": value}} if kind == "regex" else {kind: value}


def _string_match(spec: Mapping[str, Any], where: str) -> tuple[str, str]:
    kinds = [k for k in ("exact", "prefix", "regex") if k in spec]
    if len(kinds) != 1 or set(spec) - {kinds[0]}:
        raise MeshConfigError(f"{where}: expected one of exact, prefix, regex; got {dict(spec)}")
    return kinds[0], str(spec[kinds[0]])


def _header_ops(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """Istio `headers.request/response` -> Envoy header mutations (set overwrites, add appends)."""
    out: dict[str, Any] = {}
    for side in ("request", "response"):
        ops = (spec or {}).get(side) or {}
        add = [
            _header_value(k, v, action)
            for key, action in _HEADER_ACTIONS
            for k, v in (ops.get(key) or {}).items()
        ]
        if add:
            out[f"{side}_headers_to_add"] = add
        if ops.get("remove"):
            out[f"{side}_headers_to_remove"] = [h.lower() for h in ops["remove"]]
    return out


def _merge_header_ops(*ops: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, list[Any]] = {}
    for op in ops:
        for key, values in op.items():
            merged.setdefault(key, []).extend(values)
    return merged


def _header_value(name: str, value: Any, action: str) -> dict[str, Any]:
    return {"header": {"key": name.lower(), "value": str(value)}, "append_action": action}


def _check_keys(spec: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise MeshConfigError(f"{where}: {', '.join(unknown)} not supported by the local mesh")


_HEADER_ACTIONS = (("set", "OVERWRITE_IF_EXISTS_OR_ADD"), ("add", "APPEND_IF_EXISTS_OR_ADD"))
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration(text: str, where: str) -> str:
    """A Go-style duration as Istio writes it ("1.5s", "500ms", "1m30s") -> Envoy's "Ns"."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise MeshConfigError(f"{where}: {text!r} is not a duration")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
