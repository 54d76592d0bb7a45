"""Istio's own VirtualServices and DestinationRules, as they come beside the peers' manifests.

They pass through unchanged, but for two cases: a route an Argo Rollout names for Argo to edit
is left out, as lanes writes that service's routes instead (two VirtualServices of one host
would be merged in no fixed order); and ASM's `fallback` on a route destination, which plain
Istio does not have, is dropped where the group's subsets honour it (`fallback`), and noted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .argo import argo_edited_routes
from .canary import doc_name, doc_namespace
from .common import Body, Importer
from .fallback import fallback_notes, without_honoured_fallbacks

ISTIO = "networking.istio.io"
"""Istio's networking API group."""


def _key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(doc.get("kind")), doc_namespace(doc), doc_name(doc))


def istio_route(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[Body]:
    """The route as it is, or nothing when an Argo Rollout among `inputs` edits it; without
    the ASM `fallback` fields its group's subsets honour."""
    if _key(doc) in argo_edited_routes(inputs):
        return []
    return [without_honoured_fallbacks(doc, inputs)]


def istio_route_notes(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Say that a route an Argo Rollout edits is left out, or where a route uses ASM's
    `fallback`."""
    if _key(doc) in argo_edited_routes(inputs):
        return ["left out: an Argo Rollout edits it, and lanes writes this service's routes "
                "instead (delete it from the cluster when you apply the conversion)"]
    return fallback_notes(doc, inputs)


IMPORTERS = (
    Importer(ISTIO, "VirtualService", istio_route, istio_route_notes),
    Importer(ISTIO, "DestinationRule", istio_route, istio_route_notes),
)
