"""The canary's copy of the base's HorizontalPodAutoscaler (`spec.autoscalerRef`, as Flagger's).

While a release runs, the canary Deployment gets its own autoscaler: the base's spec with the
scale target turned to the canary Deployment and `minReplicas` raised to the step's replica
count, so the step's pods are a floor the autoscaler may scale above under load (never below),
and `maxReplicas` at least that floor. Percent steps are of the base's current replica count,
which its own autoscaler moves, so the floor follows the base. The copy carries the canary's
name, the rollout's labels and the rollout as owner; it is deleted with the canary Deployment
(after promotion, roll back, or the rollout's deletion), and the garbage collector removes it
should that never happen.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lanes.api.workloadrollout import WorkloadRollout

from .canary import CANARY_LABEL, ROLLOUT_LABEL, canary_name, owner_reference
from .observed import AutoscalerView

AUTOSCALING = "autoscaling/v2"
SOURCE_ANNOTATION = "lanes.dev/autoscaler-of"
SPEC_ANNOTATION = "lanes.dev/autoscaler-spec-hash"


def _spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def canary_autoscaler(
    rollout: WorkloadRollout, base: str, namespace: str, source: AutoscalerView, floor: int
) -> dict[str, Any]:
    """The canary's autoscaler, copied from the base's `source`, as an object to apply.

    `floor` is the step's replica count (at least 1: an autoscaler cannot keep zero pods).

    Raises:
        ValueError: the rollout has no uid (it was not read from the API server).
    """
    if not rollout.metadata.uid:
        raise ValueError(f"rollout/{rollout.metadata.name} has no metadata.uid to own an autoscaler")
    name = canary_name(base)
    spec = copy.deepcopy(dict(source.spec))
    floor = max(floor, 1)
    spec["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    spec["minReplicas"] = floor
    spec["maxReplicas"] = max(int(spec.get("maxReplicas") or 1), floor)
    return {
        "apiVersion": AUTOSCALING,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {ROLLOUT_LABEL: rollout.metadata.name, CANARY_LABEL: base},
            "annotations": {SOURCE_ANNOTATION: source.name, SPEC_ANNOTATION: _spec_hash(spec)},
            "ownerReferences": [owner_reference(rollout)],
        },
        "spec": spec,
    }


def owns_autoscaler(rollout: WorkloadRollout, found: AutoscalerView) -> bool:
    """Whether an autoscaler with the canary's name is this rollout's copy to change or delete."""
    return found.labels.get(ROLLOUT_LABEL) == rollout.metadata.name and CANARY_LABEL in found.labels


def autoscaler_drifted(found: AutoscalerView | None, desired: Mapping[str, Any]) -> bool:
    """Whether the observed copy is missing or differs from `desired` (by the recorded hash,
    since the API server fills defaults into the stored spec)."""
    want = desired["metadata"]["annotations"][SPEC_ANNOTATION]
    return found is None or found.annotations.get(SPEC_ANNOTATION) != want
