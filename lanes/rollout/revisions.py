"""Revisions: a short, stable name for a pod template.

A revision is the hash of a pod template as the Deployment carries it, so the same template
gets the same name whether it is read from the Deployment or from one of its ReplicaSets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

POD_TEMPLATE_HASH = "pod-template-hash"
HASH_LENGTH = 10


def _without_nulls(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _without_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list | tuple):
        return [_without_nulls(item) for item in node]
    return node


def pod_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template as a Deployment carries it.

    ReplicaSets copy their Deployment's template and add the `pod-template-hash` label, and the
    API server writes `creationTimestamp: null` into templates. Dropping both makes a
    ReplicaSet's template equal to the Deployment template it came from, so it can be written
    back to the Deployment (undo) and the Deployment controller adopts the existing ReplicaSet
    instead of creating a new one.
    """
    clean = _without_nulls(template)
    metadata = dict(clean.get("metadata") or {})
    metadata.pop("creationTimestamp", None)
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != POD_TEMPLATE_HASH}
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    if not metadata.get("annotations"):
        metadata.pop("annotations", None)
    if metadata:
        clean["metadata"] = metadata
    else:
        clean.pop("metadata", None)
    return clean


def template_hash(template: Mapping[str, Any]) -> str:
    """The revision of a pod template: sha256 of its canonical JSON, first ten hex digits.

    Key order and null fields do not change the result, so a template read back from the API
    server hashes like the one that was written.
    """
    canonical = json.dumps(pod_template(template), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]
