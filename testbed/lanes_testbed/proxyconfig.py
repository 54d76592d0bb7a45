"""What a proxy of the local mesh was given, read from its Envoy admin page (as `istioctl
proxy-config` reads a pod's): the routes, clusters or listeners of its config dump.

The local node lists every pod's sidecar (admin address, pod, namespace) in the stack's scrape
file; the gateway's admin address is in the stack's info. The table functions are pure.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

KINDS = ("routes", "clusters", "listeners")
_DUMP_TYPE = {
    "routes": "RoutesConfigDump",
    "clusters": "ClustersConfigDump",
    "listeners": "ListenersConfigDump",
}
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sidecars(scrape_file: Path) -> list[dict[str, str]]:
    """Every pod's sidecar: `pod`, `namespace`, `admin` (host:port), from the node's file."""
    try:
        targets = json.loads(scrape_file.read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [{"pod": t["labels"]["pod"], "namespace": t["labels"]["namespace"],
             "admin": t["targets"][0]} for t in targets]


def config_dump(admin: str) -> dict[str, Any]:
    with _DIRECT.open(f"http://{admin}/config_dump", timeout=10) as response:
        return json.load(response)


def _section(dump: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    wanted = _DUMP_TYPE[kind]
    for config in dump.get("configs", []):
        if config.get("@type", "").rpartition(".")[2] == wanted:
            return config
    return {}


def route_rows(dump: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(route table, virtual host, domains, match, destination) per route, as Envoy holds them."""
    rows = []
    for entry in _section(dump, "routes").get("dynamic_route_configs", []):
        table = entry.get("route_config", {})
        for vhost in table.get("virtual_hosts", []):
            domains = vhost.get("domains", [])
            shown = ", ".join(domains[:2]) + (f" +{len(domains) - 2} more" if len(domains) > 2 else "")
            for route in vhost.get("routes", []):
                rows.append((table.get("name", ""), vhost.get("name", ""), shown,
                             _match(route.get("match", {})), _destination(route)))
    return rows


def cluster_rows(dump: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(cluster name, discovery type) per cluster."""
    section = _section(dump, "clusters")
    rows = []
    for key in ("static_clusters", "dynamic_active_clusters"):
        for entry in section.get(key, []):
            cluster = entry.get("cluster", {})
            rows.append((cluster.get("name", ""), cluster.get("type", "EDS")))
    return sorted(rows)


def listener_rows(dump: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(listener name, address) per listener in force."""
    rows = []
    for entry in _section(dump, "listeners").get("dynamic_listeners", []):
        listener = (entry.get("active_state") or {}).get("listener", {})
        address = listener.get("address", {}).get("socket_address", {})
        rows.append((listener.get("name", entry.get("name", "")),
                     f"{address.get('address', '')}:{address.get('port_value', '')}"))
    return sorted(rows)


def rows_of(kind: str, dump: Mapping[str, Any]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The header and rows of one kind's table."""
    if kind == "routes":
        return ("ROUTE TABLE", "VIRTUAL HOST", "DOMAINS", "MATCH", "DESTINATION"), route_rows(dump)
    if kind == "clusters":
        return ("CLUSTER", "TYPE"), cluster_rows(dump)
    return ("LISTENER", "ADDRESS"), listener_rows(dump)


def _match(match: Mapping[str, Any]) -> str:
    parts = []
    for key in ("prefix", "path", "safe_regex"):
        if key in match:
            value = match[key]
            parts.append(f"{key} {value.get('regex', value) if isinstance(value, dict) else value}")
    for header in match.get("headers", []):
        matcher = header.get("string_match") or {}
        how = next(iter(matcher), "present")
        parts.append(f"{header.get('name')} {how} {matcher.get(how, '')}".rstrip())
    return "; ".join(parts) or "*"


def _destination(route: Mapping[str, Any]) -> str:
    action = route.get("route")
    if action is None:
        if "direct_response" in route:
            return f"answer {route['direct_response'].get('status')}"
        return next(iter(k for k in route if k not in ("match", "name", "metadata", "decorator")), "")
    if "cluster" in action:
        return action["cluster"]
    weighted = (action.get("weighted_clusters") or {}).get("clusters", [])
    return ", ".join(f"{c.get('name')} {c.get('weight', 0)}%" for c in weighted)


def format_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    lines = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in lines)
