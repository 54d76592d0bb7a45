"""One registry of importers, keyed by the (group, kind) of the documents they read.

Each source module lists the kinds it reads in its `IMPORTERS`; `register` files them here.
A document whose (group, kind) is registered converts through its importer; any other
document, lanes.dev's own included, passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lanes.api.load import api_group

from . import argo, asm, flagger, istio, kruise
from .common import Body, Importer
from .lone import LANE_LABEL, STABLE, with_stable_label

_REGISTRY: dict[tuple[str, str], Importer] = {}


def register(*importers: Importer) -> None:
    """File each importer under its (group, kind); a kind is read by one importer only.

    Raises:
        ValueError: when a (group, kind) already has an importer.
    """
    for importer in importers:
        if importer.key in _REGISTRY:
            raise ValueError(f"{importer.group}/{importer.kind} already has an importer")
        _REGISTRY[importer.key] = importer


def registered() -> list[tuple[str, str]]:
    """The (group, kind) of every foreign document lanes reads, in registration order."""
    return list(_REGISTRY)


def importer_for(doc: Mapping[str, Any]) -> Importer | None:
    """The importer of a document's (group, kind), or None when it is no foreign kind."""
    return _REGISTRY.get((api_group(doc), str(doc.get("kind", ""))))


def convert(doc: Body, inputs: Sequence[Mapping[str, Any]] | None = None) -> list[Body]:
    """The lanes.dev documents one document becomes (itself when it is no foreign kind).

    `inputs` are the documents read with it (by default, itself alone): an Argo Rollout finds
    the AnalysisTemplates it names among them.

    Raises:
        InvalidSpec: naming each field of the document that does not convert (without a
            source; the caller knows the file).
    """
    importer = importer_for(doc)
    if importer is None:
        return [doc]
    return importer.convert(doc, [doc] if inputs is None else inputs)


def convert_document(doc: Body) -> Body:
    """One document, read on its own, as the one lanes.dev document it becomes; else unchanged.

    A document that becomes several (an Argo AnalysisTemplate of several metrics, one
    MetricTemplate each) passes through unchanged; `convert` gives all of them.

    Raises:
        InvalidSpec: naming each field of the document that does not convert.
    """
    converted = convert(doc)
    return converted[0] if len(converted) == 1 else doc


def conversion_notes(
    doc: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]] | None = None
) -> list[str]:
    """Where a foreign document, once converted, will behave differently: `path: message`."""
    importer = importer_for(doc)
    if importer is None:
        return []
    return importer.notes(dict(doc), [doc] if inputs is None else inputs)


def lone_targets(inputs: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (namespace, name) of each Deployment a lone canary among `inputs` releases."""
    found = set()
    for doc in inputs:
        importer = importer_for(doc)
        target = importer.lone_target(dict(doc)) if importer and importer.lone_target else None
        if target is not None:
            found.add(target)
    return found


def _deployment_key(doc: Mapping[str, Any]) -> tuple[str, str]:
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name", "")))


def deployment(doc: Body, inputs: Sequence[Mapping[str, Any]]) -> list[Body]:
    """A Deployment, with the stable lane's pod label when a lone canary releases it."""
    return [with_stable_label(doc) if _deployment_key(doc) in lone_targets(inputs) else doc]


def deployment_notes(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Say that the Deployment's pods are relabelled, which restarts them once."""
    if _deployment_key(doc) not in lone_targets(inputs):
        return []
    return [f"spec.template.metadata.labels: {LANE_LABEL}: {STABLE} added, so the generated "
            "stable lane selects its pods; applied to a running Deployment it restarts them once"]


register(
    *asm.IMPORTERS, *kruise.IMPORTERS, *flagger.IMPORTERS, *argo.IMPORTERS, *istio.IMPORTERS,
    Importer("apps", "Deployment", deployment, deployment_notes),
)
