"""What converting Flagger and Argo Rollouts canaries shares: refusals, metadata, canary labels.

Flagger's kinds are in `flagger`, Argo's in `argo`.

lanes drives an existing Deployment step by step and routes by lane, so what converts is the
target, the traffic steps, the header matches and the metric analysis; everything else either
has no lanes equivalent (and is refused, naming the field, so nothing is silently dropped) or
is something lanes does itself, such as writing the routes (dropped with a note on stderr).

Flagger and Argo have no notion of lanes. A canary that names the canary lane's pod labels
(the `lanes.dev/canary-labels` annotation, `"ASM_TRAFFIC_TAG=canary"`, comma-separated
`key=value` pairs, or Argo's `strategy.canary.canaryMetadata.labels`) joins lanes the user
writes; one that names none is a lone canary, and gets its group and lanes generated from its
Deployment (see `lone`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lanes.api.errors import FieldError, InvalidSpec

from .common import KEPT_METADATA, as_mapping
from .lone import CANARY_POD_LABELS, LoneCanary, lane_documents, pod_selector

CANARY_LABELS = "lanes.dev/canary-labels"
NO_EQUIVALENT = "has no lanes equivalent; remove it to convert"

@dataclass
class Refusals:
    """The fields of one document that do not convert, gathered so one run names them all."""

    kind: str
    name: str
    errors: list[FieldError] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        """Refuse the field at `path`."""
        self.errors.append(FieldError(self.kind, self.name, path, message))

    def unknown(self, body: Mapping[str, Any], path: str, known: Iterable[str]) -> None:
        """Refuse every key of `body` that is not in `known`."""
        allowed = set(known)
        for key in body:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else key, NO_EQUIVALENT)

    def check(self) -> None:
        """Raise the refusals, if any.

        Raises:
            InvalidSpec: naming each refused field.
        """
        if self.errors:
            raise InvalidSpec(self.errors)


def progress_deadline(value: Any, path: str, refusals: Refusals) -> int | None:
    """A peer's `progressDeadlineSeconds` for the WorkloadRollout's own, which rolls back a
    step whose canary pods are not available in time; None (refused) unless a positive count."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    refusals.add(path, f"{value!r}: must be a positive number of seconds")
    return None


def doc_name(doc: Mapping[str, Any]) -> str:
    """The document's name, as errors name it."""
    return str(as_mapping(doc.get("metadata")).get("name", "(unnamed)"))


def doc_namespace(doc: Mapping[str, Any]) -> str:
    """The document's namespace, `""` when it gives none (Argo looks templates up in it)."""
    return str(as_mapping(doc.get("metadata")).get("namespace") or "")


def kept_metadata(doc: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """The metadata a user writes, without the annotation the conversion has consumed."""
    source = as_mapping(doc.get("metadata"))
    metadata = {k: source[k] for k in KEPT_METADATA if k in source}
    annotations = {k: v for k, v in as_mapping(metadata.get("annotations")).items() if k != CANARY_LABELS}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if name is not None:
        metadata["name"] = name
    return metadata


def canary_labels(doc: Mapping[str, Any], refusals: Refusals) -> dict[str, str]:
    """The canary lane's pod labels from the `lanes.dev/canary-labels` annotation.

    Neither Flagger nor Argo says which lane the canary pods join, and lanes cannot route them
    without it, so a missing or malformed annotation is refused with what to add.
    """
    annotations = as_mapping(as_mapping(doc.get("metadata")).get("annotations"))
    text = annotations.get(CANARY_LABELS)
    path = f"metadata.annotations.{CANARY_LABELS}"
    if text is None:
        return {}
    labels: dict[str, str] = {}
    for pair in str(text).split(","):
        key, sep, value = pair.strip().partition("=")
        if not sep or not key.strip():
            refusals.add(path, f"{pair.strip()!r} is not key=value (e.g. ASM_TRAFFIC_TAG=canary)")
            continue
        labels[key.strip()] = value.strip()
    return labels


def lone_lanes(
    lone: LoneCanary, deployment: Mapping[str, Any] | None, refusals: Refusals
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A lone canary's pod labels and its generated group and lanes, from its Deployment.

    Refused when the Deployment is not in the input: lanes could not label its pods into the
    stable lane, which would then select none, and every request would fail.
    """
    if deployment is None:
        refusals.add(
            f"metadata.annotations.{CANARY_LABELS}",
            f"missing, and Deployment {lone.deployment} is not in the input: give it with -f "
            "(lanes generates the canary's group and lanes from its pod labels), or name the "
            f"canary lane's pod labels for lanes you write, e.g. {CANARY_LABELS}: "
            "ASM_TRAFFIC_TAG=canary",
        )
        return {}, []
    return dict(CANARY_POD_LABELS), lane_documents(lone, pod_selector(deployment))


def workload_ref(
    ref: Any, path: str, refusals: Refusals, dropped: Iterable[str] = ()
) -> dict[str, str]:
    """A reference to a Deployment as lanes' workloadRef; `dropped` fields are noted elsewhere."""
    ref = as_mapping(ref)
    if not ref:
        refusals.add(path, "missing: lanes drives an existing Deployment; name it here")
        return {}
    refusals.unknown(ref, path, ("apiVersion", "kind", "name", *dropped))
    if ref.get("kind", "Deployment") != "Deployment":
        refusals.add(f"{path}.kind", f"{ref.get('kind')!r}: lanes rolls out Deployments only")
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": str(ref.get("name", ""))}


def traffic_step(
    weight: Any, matches: list[dict[str, Any]], replicas: int | str | None = None
) -> dict[str, Any]:
    """One canary step: `weight` percent of the unlaned traffic, and canary pods sized to it
    (that percent of the Deployment's replicas, rounded up) unless `replicas` says otherwise,
    as Flagger and Argo size the canary with its load."""
    step: dict[str, Any] = {"replicas": f"{weight}%" if replicas is None else replicas,
                            "traffic": f"{weight}%"}
    if matches:
        step["matches"] = matches
    return step


def canary_spec(
    steps: list[dict[str, Any]], labels: dict[str, str], analysis: dict[str, Any] | None
) -> dict[str, Any]:
    """A WorkloadRollout's canary strategy: an extra canary workload, labelled into its lane."""
    canary: dict[str, Any] = {
        "enableExtraWorkloadForCanary": True,
        "steps": steps,
        "patchPodTemplateMetadata": {"labels": labels},
    }
    if analysis:
        canary["analysis"] = analysis
    return canary
