"""ASM's swimlanes (`ASMSwimLaneGroup`, `ASMSwimLane`) as lanes.dev documents.

ASM's specs are laid out as lanes' are, so a document keeps its spec and the metadata a user
writes, with ASM's baggage mode spelled as lanes' `propagation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .common import Body, Importer, renamed
from .fallback import honours_fallbacks

ASM = "istio.alibabacloud.com"
"""ASM's API group for its swimlane kinds."""


def asm_group(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[Body]:
    """An ASMSwimLaneGroup as a SwimLaneGroup, baggage mode as baggage propagation, and
    `fallbackSubsets` on where a user's gateway route relies on ASM's `fallback` (see
    `fallback`)."""
    converted = renamed(doc, "SwimLaneGroup")
    if "spec" in converted:
        converted["spec"] = _with_propagation(converted["spec"])
        if isinstance(converted["spec"], dict) and honours_fallbacks(doc, inputs):
            converted["spec"] = {**converted["spec"], "fallbackSubsets": True}
    return [converted]


def asm_lane(doc: Body, _inputs: Sequence[Mapping[str, Any]] = ()) -> list[Body]:
    """An ASMSwimLane as a SwimLane."""
    return [renamed(doc, "SwimLane")]


def _with_propagation(spec: Any) -> Any:
    """ASM's baggage mode (`traceHeader: baggage`) as lanes' baggage propagation.

    Apps in that mode pass on only the W3C `baggage` header, so the lane must travel in it;
    header propagation would lose the lane after the first hop.
    """
    if not isinstance(spec, dict) or "propagation" in spec:
        return spec
    permissive = spec.get("permissiveModeConfiguration")
    trace = permissive.get("traceHeader") if isinstance(permissive, dict) else None
    if isinstance(trace, str) and trace.lower() == "baggage":
        return {**spec, "propagation": "baggage"}
    return spec


def asm_group_notes(doc: Body, _inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Where an ASM group, once converted, routes differently from ASM: `path: message`.

    ASM's trace-ID mode keeps a request's lane by its trace header (its sidecars remember which
    lane each trace ID entered), so its apps may pass on only that header. lanes matches the
    route header itself at every hop, as plain Istio can; an app that passes on only the trace
    header sends its requests to the fallback lane from the second hop on.
    """
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return []
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
        f"spec.permissiveModeConfiguration.traceHeader: ASM's trace-ID mode, in which services "
        f"pass on only {trace!r}: on plain Istio lanes keeps each trace's lane with its "
        f"trace-affinity Wasm module, which the operator loads (WasmPlugins) once given the "
        f"module's URL (chart value traceAffinity.url; `kubectl lane wasm` builds it); "
        f"sidecar mode only"
    ]


IMPORTERS = (
    Importer(ASM, "ASMSwimLaneGroup", asm_group, asm_group_notes),
    Importer(ASM, "ASMSwimLane", asm_lane),
)
