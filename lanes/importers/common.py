"""What every importer shares: the `Importer` record and the shape of a lanes.dev document.

ASM's kinds are in `asm`, Kruise's in `kruise`, Flagger's in `flagger`, Argo's in `argo`;
what Flagger's and Argo's canaries share is in `canary`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lanes.api.common import API_VERSION

KEPT_METADATA = ("name", "namespace", "labels", "annotations")
"""The metadata a user writes; what the API server adds (uid, managedFields, ...) is dropped."""

Body = dict[str, Any]
Convert = Callable[[Body, Sequence[Mapping[str, Any]]], list[Body]]
"""Turns one document into lanes.dev documents, given every document read with it."""


def no_notes(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """No notes: the converted document behaves as the original did."""
    return []


@dataclass(frozen=True)
class Importer:
    """How one foreign kind, `group` and `kind`, becomes lanes.dev documents.

    `convert` raises InvalidSpec naming each field that does not convert; `notes` says, as
    `path: message`, where the converted document will behave differently; `lone_target`
    names the (namespace, Deployment) of a canary whose group and lanes are generated, so
    that Deployment's pods get the stable lane's label.
    """

    group: str
    kind: str
    convert: Convert
    notes: Callable[[Body, Sequence[Mapping[str, Any]]], list[str]] = no_notes
    lone_target: Callable[[Body], tuple[str, str] | None] | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The (group, kind) the registry files it under."""
        return (self.group, self.kind)


def as_mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (the models report wrong shapes)."""
    return value if isinstance(value, dict) else {}


def lanes_document(kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A lanes.dev document of `kind`."""
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def renamed(doc: Body, kind: str) -> Body:
    """`doc` as the lanes.dev `kind` laid out the same: its spec as is, the metadata a user writes."""
    metadata = as_mapping(doc.get("metadata"))
    converted: Body = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {k: metadata[k] for k in KEPT_METADATA if k in metadata},
    }
    if "spec" in doc:
        converted["spec"] = doc["spec"]
    return converted
