"""Rewrite ASM swimlane and OpenKruise Rollout documents as lanes.dev ones.

The specs are laid out the same way, so conversion changes the apiVersion and kind and keeps
only the metadata a user writes (and spells ASM's baggage mode as lanes' `propagation`); every
other document passes through unchanged. `conversion_notes` says where a converted group will
behave differently from ASM.
"""

from __future__ import annotations

from typing import Any

from .common import API_VERSION

_KINDS = {
    ("istio.alibabacloud.com", "ASMSwimLaneGroup"): "SwimLaneGroup",
    ("istio.alibabacloud.com", "ASMSwimLane"): "SwimLane",
    ("rollouts.kruise.io", "Rollout"): "WorkloadRollout",
}
_KEPT_METADATA = ("name", "namespace", "labels", "annotations")


def api_group(doc: dict[str, Any]) -> str:
    """The API group of a document's apiVersion (`""` for the core group)."""
    api_version = str(doc.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def lanes_kind(doc: dict[str, Any]) -> str | None:
    """The lanes.dev kind a foreign document converts to, or None when it is not one."""
    return _KINDS.get((api_group(doc), str(doc.get("kind", ""))))


def convert_document(doc: dict[str, Any]) -> dict[str, Any]:
    """One document as lanes.dev when it is an ASM lane or Kruise Rollout; else unchanged."""
    kind = lanes_kind(doc)
    if kind is None:
        return doc
    metadata = doc.get("metadata") or {}
    converted: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {k: metadata[k] for k in _KEPT_METADATA if k in metadata},
    }
    if "spec" in doc:
        converted["spec"] = _with_propagation(kind, doc["spec"])
    return converted


def _with_propagation(kind: str, spec: Any) -> Any:
    """ASM's baggage mode (`traceHeader: baggage`) as lanes' baggage propagation.

    Apps in that mode pass on only the W3C `baggage` header, so the lane must travel in it;
    header propagation would lose the lane after the first hop.
    """
    if kind != "SwimLaneGroup" or not isinstance(spec, dict) or "propagation" in spec:
        return spec
    permissive = spec.get("permissiveModeConfiguration")
    trace = permissive.get("traceHeader") if isinstance(permissive, dict) else None
    if isinstance(trace, str) and trace.lower() == "baggage":
        return {**spec, "propagation": "baggage"}
    return spec


def conversion_notes(doc: dict[str, Any]) -> list[str]:
    """Where an ASM document, once converted, routes differently from ASM: `path: message`.

    ASM's trace-ID mode keeps a request's lane by its trace header (its sidecars remember which
    lane each trace ID entered), so its apps may pass on only that header. lanes matches the
    route header itself at every hop, as plain Istio can; an app that passes on only the trace
    header sends its requests to the fallback lane from the second hop on.
    """
    if lanes_kind(doc) != "SwimLaneGroup" or not isinstance(doc.get("spec"), dict):
        return []
    spec = doc["spec"]
    permissive = spec.get("permissiveModeConfiguration")
    if not isinstance(permissive, dict) or spec.get("propagation") == "baggage":
        return []
    trace = permissive.get("traceHeader")
    route = permissive.get("routeHeader") or "x-asm-prefer-tag"
    if not isinstance(trace, str) or not isinstance(route, str):
        return []
    if trace.lower() in ("", "baggage", route.lower()):
        return []
    return [
        f"spec.permissiveModeConfiguration.traceHeader: lanes keeps a request's lane by the "
        f"route header {route!r} at every hop, not by the trace header {trace!r}, so each "
        f"service must pass on {route!r} (or use traceHeader: baggage)"
    ]
