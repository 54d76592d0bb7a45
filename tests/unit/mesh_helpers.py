"""Builders of Istio objects and a reader of translated Envoy routes, for the mesh unit tests.

`pick` follows Envoy's documented route selection (the listener's filter chain for the
caller's address, most specific virtual host domain, then the first route whose path, header
and query conditions all hold) for the subset of matchers the translator emits, so tests can
say where a request goes rather than how it is spelled.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from lanes_testbed.mesh import EnvoyConfig

GATEWAY_OBJ = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "ingressgateway", "namespace": "istio-system"},
    "spec": {"selector": {"istio": "ingressgateway"},
             "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                          "hosts": ["*"]}]},
}


def service(name: str, namespace: str = "default", ports: tuple[int, ...] = (8000,),
            selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector or {"app": name},
                 "ports": [{"name": f"http-{p}", "port": p} for p in ports]},
    }


def virtual_service(
    name: str,
    hosts: list[str],
    http: list[dict[str, Any]],
    gateways: list[str] | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": hosts, "http": http}
    if gateways is not None:
        spec["gateways"] = gateways
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def destination_rule(host: str, subsets: dict[str, dict[str, str]],
                     namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": host.split(".")[0], "namespace": namespace},
        "spec": {"host": host,
                 "subsets": [{"name": n, "labels": labels} for n, labels in subsets.items()]},
    }


def lane_subsets(*lanes: str) -> dict[str, dict[str, str]]:
    return {lane: {"ASM_TRAFFIC_TAG": lane} for lane in lanes}


def route_config(config: EnvoyConfig, name: str) -> dict[str, Any]:
    return next(r for r in config.routes if r["name"] == name)


def cluster(config: EnvoyConfig, name: str) -> dict[str, Any]:
    return next(c for c in config.clusters if c["name"] == name)


def cluster_ips(config: EnvoyConfig, name: str) -> list[str]:
    found = cluster(config, name)
    return [
        e["endpoint"]["address"]["socket_address"]["address"]
        for group in found["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    ]


def listener_of(config: EnvoyConfig, name: str) -> dict[str, Any]:
    return next(l for l in config.listeners if l["name"] == name)


def chain_for(config: EnvoyConfig, listener: str, source: str | None = None) -> dict[str, Any]:
    """The filter chain a connection from `source` takes: the one whose source ranges hold
    it (the longest prefix wins, as in Envoy), else the chain without a source match."""
    best: tuple[int, dict[str, Any]] | None = None
    default = None
    for chain in listener_of(config, listener)["filter_chains"]:
        ranges = chain.get("filter_chain_match", {}).get("source_prefix_ranges")
        if not ranges:
            assert default is None, "two chains without a source match"
            default = chain
            continue
        for r in ranges:
            network = ipaddress.ip_network(f"{r['address_prefix']}/{r['prefix_len']}")
            if source is not None and ipaddress.ip_address(source) in network:
                assert best is None or best[0] != network.prefixlen, f"{source} in two chains"
                if best is None or network.prefixlen > best[0]:
                    best = (network.prefixlen, chain)
    found = best[1] if best else default
    assert found is not None, f"no chain of {listener} takes {source}"
    return found


def route_name_for(config: EnvoyConfig, listener: str, source: str | None = None) -> str:
    """The route table the HTTP connection manager of `source`'s chain reads."""
    hcm = chain_for(config, listener, source)["filters"][0]["typed_config"]
    return hcm["rds"]["route_config_name"]


def source_chains(config: EnvoyConfig, listener: str) -> dict[str, list[str]]:
    """Route table -> the caller addresses of each chain with a source match."""
    out = {}
    for chain in listener_of(config, listener)["filter_chains"]:
        ranges = chain.get("filter_chain_match", {}).get("source_prefix_ranges")
        if ranges:
            name = chain["filters"][0]["typed_config"]["rds"]["route_config_name"]
            out[name] = [f"{r['address_prefix']}/{r['prefix_len']}" for r in ranges]
    return out


def vhost_for(config: EnvoyConfig, listener: str, host: str,
              source: str | None = None) -> dict[str, Any] | None:
    """The virtual host Envoy picks for a Host header: exact, then wildcard suffix/prefix, `*`."""
    vhosts = route_config(config, route_name_for(config, listener, source))["virtual_hosts"]
    for kind in ("exact", "suffix", "prefix", "any"):
        best = None
        for vhost in vhosts:
            for domain in vhost["domains"]:
                length = _domain_match(domain, host, kind)
                if length is not None and (best is None or length > best[0]):
                    best = (length, vhost)
        if best:
            return best[1]
    return None


def pick(config: EnvoyConfig, listener: str, host: str, path: str = "/",
         headers: dict[str, str] | None = None,
         source: str | None = None) -> dict[str, Any] | None:
    """The route Envoy would take for a request from `source` (any caller when None), or None
    where it answers 404."""
    vhost = vhost_for(config, listener, host, source)
    if vhost is None:
        return None
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    path_only = path.split("?", 1)[0]
    for route in vhost["routes"]:
        if _route_matches(route["match"], path_only, headers):
            return route
    return None


def destination(route: dict[str, Any] | None) -> Any:
    """A route's cluster, or its weighted clusters as {name: weight}; None for no route."""
    if route is None:
        return None
    action = route["route"]
    if "cluster" in action:
        return action["cluster"]
    return {c["name"]: c["weight"] for c in action["weighted_clusters"]["clusters"]}


def added_headers(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {h["header"]["key"]: (h["header"]["value"], h["append_action"])
            for h in entry.get("request_headers_to_add", [])}


def _domain_match(domain: str, host: str, kind: str) -> int | None:
    if kind == "exact" and "*" not in domain and domain == host:
        return len(domain)
    if kind == "suffix" and domain.startswith("*") and domain != "*" and host.endswith(domain[1:]):
        return len(domain)
    if kind == "prefix" and domain.endswith("*") and domain != "*" and host.startswith(domain[:-1]):
        return len(domain)
    if kind == "any" and domain == "*":
        return 0
    return None


def _route_matches(match: dict[str, Any], path: str, headers: dict[str, str]) -> bool:
    case = match.get("case_sensitive", True)
    norm = (lambda s: s) if case else str.lower
    if "path" in match and norm(path) != norm(match["path"]):
        return False
    if "prefix" in match and not norm(path).startswith(norm(match["prefix"])):
        return False
    if "safe_regex" in match and not re.fullmatch(match["safe_regex"]["regex"], path):
        return False
    for header in match.get("headers", []):
        value = headers.get(header["name"])
        if value is None and "present_match" not in header:
            # Envoy: a missing header fails a value match, inverted or not.
            return False
        if "present_match" in header:
            ok = value is not None
        else:
            ok = _string_matches(header["string_match"], value)
        if ok == bool(header.get("invert_match")):
            return False
    return True


def _string_matches(spec: dict[str, Any], value: str) -> bool:
    if "exact" in spec:
        return value == spec["exact"]
    if "prefix" in spec:
        return value.startswith(spec["prefix"])
    return re.fullmatch(spec["safe_regex"]["regex"], value) is not None
