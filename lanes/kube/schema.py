"""What a CRD's structural schema keeps of an object, computed the way kube-apiserver prunes.

The operator compares desired objects with live ones. A field the installed CRD does not
declare (ASM's `fallback` on a vanilla Istio VirtualService) is silently dropped on write, so
comparing unpruned objects would find a difference forever and write forever. Pruning first
makes the comparison true to what the server stores, and names the dropped fields for status.
See https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#field-pruning
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_TOP_LEVEL = ("apiVersion", "kind", "metadata")


@dataclass
class Pruned:
    """An object as the server would store it, and the paths of the fields it would drop."""

    value: Any
    dropped: list[str] = field(default_factory=list)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(value: Any, schema: dict[str, Any] | None, path: str, dropped: list[str]) -> Any:
    if schema is None or schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-embedded-resource"
    ):
        return value
    if isinstance(value, list):
        items = schema.get("items")
        return [_prune(v, items, f"{path}[{i}]", dropped) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get(_PRESERVE))
    kept: dict[str, Any] = {}
    for key, item in value.items():
        where = _join(path, key)
        if properties is not None and key in properties:
            kept[key] = _prune(item, properties[key], where, dropped)
        elif isinstance(additional, dict):
            kept[key] = _prune(item, additional, where, dropped)
        elif preserve or additional is True:
            kept[key] = item
        else:
            dropped.append(where)
    return kept


def prune(obj: dict[str, Any], schema: dict[str, Any] | None) -> Pruned:
    """Drop what `schema` (a CRD version's openAPIV3Schema) does not declare.

    apiVersion, kind and metadata are the server's own and never pruned by a CRD schema.
    Without a schema (CRD not found) the object is returned unchanged.
    """
    if schema is None:
        return Pruned(obj)
    dropped: list[str] = []
    properties = schema.get("properties") or {}
    result = {k: obj[k] for k in _TOP_LEVEL if k in obj}
    for key, item in obj.items():
        if key in _TOP_LEVEL:
            continue
        if key in properties:
            result[key] = _prune(item, properties[key], key, dropped)
        elif schema.get(_PRESERVE):
            result[key] = item
        else:
            dropped.append(key)
    return Pruned(result, dropped)


def version_schema(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The openAPIV3Schema a CRD serves for `version`, or None when it does not serve it."""
    for served in (crd.get("spec") or {}).get("versions") or []:
        if served.get("name") == version:
            return (served.get("schema") or {}).get("openAPIV3Schema")
    return None
