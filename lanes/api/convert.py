"""Rewrite ASM swimlane, OpenKruise Rollout, Flagger and Argo Rollouts documents as lanes.dev ones.

ASM's and Kruise's specs are laid out the same way, so their conversion changes the apiVersion
and kind and keeps only the metadata a user writes (and spells ASM's baggage mode as lanes'
`propagation`). Flagger's Canary and MetricTemplate and Argo's Rollout and AnalysisTemplate
are rebuilt field by field (`convert_flagger`, `convert_argo`); an Argo Rollout needs the
AnalysisTemplates it names from the same input. Every other document passes through
unchanged. `conversion_notes` says where a converted document will behave differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import API_VERSION
from .convert_argo import (
    TemplateKey,
    analysis_templates,
    argo_analysis_template,
    argo_notes,
    argo_rollout,
)
from .convert_flagger import flagger_canary, flagger_metric_template, flagger_notes
from .convert_progressive import ARGO, FLAGGER, as_mapping

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


def convert_into(
    doc: dict[str, Any], templates: Mapping[TemplateKey, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The lanes.dev documents one document becomes (itself when it is no foreign kind).

    `templates` are the Argo AnalysisTemplates an Argo Rollout may name; an AnalysisTemplate
    becomes one MetricTemplate per metric.

    Raises:
        InvalidSpec: naming each field of a Flagger or Argo document that does not convert
            (without a source; the caller knows the file).
    """
    group, kind = api_group(doc), doc.get("kind")
    if group == FLAGGER and kind == "Canary":
        return [flagger_canary(doc)]
    if group == FLAGGER and kind == "MetricTemplate":
        return [flagger_metric_template(doc)]
    if group == ARGO and kind == "Rollout":
        return [argo_rollout(doc, analysis_templates([doc]) if templates is None else templates)]
    if group == ARGO and kind == "AnalysisTemplate":
        return argo_analysis_template(doc)
    return [convert_document(doc)]


def convert_document(doc: dict[str, Any]) -> dict[str, Any]:
    """One document as lanes.dev when it is an ASM lane, a Kruise Rollout or a Flagger or Argo
    kind that becomes one document; else unchanged.

    An Argo AnalysisTemplate passes through here, since it becomes several documents, and an
    Argo Rollout finds no AnalysisTemplates; `convert_into` handles both.

    Raises:
        InvalidSpec: naming each field of a Flagger or Argo document that does not convert.
    """
    group, kind = api_group(doc), doc.get("kind")
    if (group, kind) in ((FLAGGER, "Canary"), (FLAGGER, "MetricTemplate"), (ARGO, "Rollout")):
        return convert_into(doc)[0]
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

    Flagger and Argo documents are noted where lanes drops a field because it does that part
    itself (routes, Services).
    """
    progressive = progressive_notes(doc)
    if progressive:
        return progressive
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
        f"spec.permissiveModeConfiguration.traceHeader: ASM's trace-ID mode, in which services "
        f"pass on only {trace!r}: on plain Istio lanes keeps each trace's lane with its "
        f"trace-affinity Wasm module, which the operator loads (WasmPlugins) once given the "
        f"module's URL (chart value traceAffinity.url; `kubectl lane wasm` builds it); "
        f"sidecar mode only"
    ]


def progressive_notes(doc: Mapping[str, Any]) -> list[str]:
    """What a converted Flagger or Argo document leaves to lanes: `path: message`."""
    group = str(doc.get("apiVersion", "")).split("/")[0]
    spec = as_mapping(doc.get("spec"))
    if group == FLAGGER and doc.get("kind") == "Canary":
        return flagger_notes(spec)
    if group == ARGO and doc.get("kind") == "Rollout":
        return argo_notes(spec)
    return []

