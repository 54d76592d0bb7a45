"""Istio's own VirtualServices and DestinationRules, as they come beside the peers' manifests.

They pass through unchanged, but for two cases: a route an Argo Rollout names for Argo to edit
is left out, as lanes writes that service's routes instead (two VirtualServices of one host
would be merged in no fixed order); and ASM's `fallback` on a route destination, which plain
Istio does not have, is noted with what to write instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .argo import argo_edited_routes
from .canary import doc_name, doc_namespace
from .common import Body, Importer, as_mapping

ISTIO = "networking.istio.io"
"""Istio's networking API group."""


def _key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(doc.get("kind")), doc_namespace(doc), doc_name(doc))


def istio_route(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[Body]:
    """The route as it is, or nothing when an Argo Rollout among `inputs` edits it."""
    return [] if _key(doc) in argo_edited_routes(inputs) else [doc]


def istio_route_notes(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Say that a route an Argo Rollout edits is left out, or where a route uses ASM's
    `fallback`."""
    if _key(doc) in argo_edited_routes(inputs):
        return ["left out: an Argo Rollout edits it, and lanes writes this service's routes "
                "instead (delete it from the cluster when you apply the conversion)"]
    return _fallback_notes(doc)


def _fallback_notes(doc: Mapping[str, Any]) -> list[str]:
    """ASM's `fallback` on a route destination: plain Istio's schema has no such field, so the
    object is refused, or the field dropped and a request sent to a lane subset without pods
    fails (503) instead of reaching the fallback target."""
    notes = []
    for i, route in enumerate(as_mapping(doc.get("spec")).get("http") or []):
        for j, destination in enumerate(as_mapping(route).get("route") or []):
            if "fallback" in as_mapping(destination):
                notes.append(
                    f"spec.http[{i}].route[{j}].fallback: ASM's extension, which plain Istio "
                    "does not have: its API server refuses the object (or, without strict field "
                    "validation, drops the field, and a request to a subset with no pods gets "
                    "503); on plain Istio route it with a lane's ingressRules instead, which send "
                    "it to the lane's subset where the lane has pods and to the fallback lane's "
                    "otherwise"
                )
    return notes


IMPORTERS = (
    Importer(ISTIO, "VirtualService", istio_route, istio_route_notes),
    Importer(ISTIO, "DestinationRule", istio_route, istio_route_notes),
)
