"""A container's environment from its pod spec, resolved the way kubelet resolves it.

Pure: ConfigMaps and Secrets come through a lookup the caller supplies, so the rules
(`value` with `$(VAR)` expansion, `fieldRef`, `configMapKeyRef`/`secretKeyRef`, `envFrom`)
are testable without an API server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

Source = Literal["configmap", "secret"]
Lookup = Callable[[Source, str], Mapping[str, str] | None]

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(ValueError):
    """The env cannot be built (kubelet's CreateContainerConfigError); the message says why."""


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    pod_ip: str,
    host_ip: str,
    lookup: Lookup,
) -> dict[str, str]:
    """`envFrom` first, then `env` in order, each value able to refer to those before it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(_env_from(source, lookup))
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" in var:
            value = _value_from(var["valueFrom"], pod, pod_ip, host_ip, lookup, name)
            if value is None:
                continue
            env[name] = value
        else:
            env[name] = expand(var.get("value") or "", env)
    return env


def expand(value: str, env: Mapping[str, str]) -> str:
    """Replace `$(NAME)` by an earlier variable's value; `$$` escapes, unknown names stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, value)


def field_value(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    """The downward-API fields kubelet supports for env vars.

    Raises:
        EnvError: the field path is not one of them.
    """
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    subscript = _SUBSCRIPT.match(path)
    if subscript:
        return (metadata.get(subscript.group(1)) or {}).get(subscript.group(2), "")
    raise EnvError(f"fieldRef {path!r} is not supported by the local node")


def _value_from(
    source: Mapping[str, Any],
    pod: Mapping[str, Any],
    pod_ip: str,
    host_ip: str,
    lookup: Lookup,
    name: str,
) -> str | None:
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
    for key, kind in (("configMapKeyRef", "configmap"), ("secretKeyRef", "secret")):
        if key in source:
            ref = source[key]
            data = lookup(kind, ref["name"])
            if data is not None and ref["key"] in data:
                return data[ref["key"]]
            if ref.get("optional"):
                return None
            what = f"key {ref['key']!r} in {kind} {ref['name']!r}"
            raise EnvError(f"env {name}: {what} not found" if data is not None
                           else f"env {name}: {kind} {ref['name']!r} not found")
    raise EnvError(f"env {name}: valueFrom {sorted(source)} is not supported by the local node")


def _env_from(source: Mapping[str, Any], lookup: Lookup) -> dict[str, str]:
    prefix = source.get("prefix") or ""
    for key, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
        if key in source:
            ref = source[key]
            data = lookup(kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    return {}
                raise EnvError(f"envFrom: {kind} {ref['name']!r} not found")
            return {f"{prefix}{k}": v for k, v in data.items()}
    return {}
