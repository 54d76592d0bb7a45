"""The extra canary Deployment (`enableExtraWorkloadForCanary: true`).

It runs the base's new template beside the held base Deployment. Its pods keep every label of
the base's pods, so the base's Service still selects them, and add the canary lane's labels
from `patchPodTemplateMetadata` plus `lanes.dev/canary`, which keeps its selector from
matching the base's pods.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from lanes.api.common import API_VERSION
from lanes.api.workloadrollout import KIND, WorkloadRollout

from .intents import RESTART_ANNOTATION
from .observed import DeploymentView
from .revisions import pod_template, template_hash

ROLLOUT_LABEL = "lanes.dev/rollout"
CANARY_LABEL = "lanes.dev/canary"
REVISION_ANNOTATION = "lanes.dev/revision"
TEMPLATE_ANNOTATION = "lanes.dev/template-hash"
RESTARTED_ANNOTATION = "lanes.dev/restarted-at"
SUFFIX = "-canary"


def canary_name(workload: str) -> str:
    """The canary Deployment's name: deterministic, so it is never created twice."""
    return f"{workload}{SUFFIX}"


def canary_template(rollout: WorkloadRollout, base: DeploymentView) -> dict[str, Any]:
    """The base's template with the canary's pod labels and annotations merged in.

    A restart request (`lanes.dev/restart` on the rollout) goes into the pod template's
    annotations, as `kubectl rollout restart` does: a new value is a new template, which the
    canary Deployment rolls out by its own strategy, so the canary keeps serving while its
    pods are replaced one batch at a time (deleting pods by hand would need the operator to
    pace them over several reconciles).
    """
    template = copy.deepcopy(pod_template(base.template))
    metadata = template.setdefault("metadata", {})
    patch = rollout.spec.strategy.canary.patch_pod_template_metadata
    labels = {**metadata.get("labels", {}), **(patch.labels if patch else {})}
    labels[CANARY_LABEL] = base.name
    metadata["labels"] = labels
    annotations = {**metadata.get("annotations", {}), **(patch.annotations if patch else {})}
    restarted = rollout.metadata.annotations.get(RESTART_ANNOTATION)
    if restarted:
        annotations[RESTARTED_ANNOTATION] = restarted
    if annotations:
        metadata["annotations"] = annotations
    return template


def canary_deployment(
    rollout: WorkloadRollout, base: DeploymentView, replicas: int
) -> dict[str, Any]:
    """The canary Deployment for the base's current template, as an object to apply.

    It is owned by the WorkloadRollout, so deleting the rollout collects it even if the
    operator is gone, and it records the revision it runs so the planner can tell a stale
    canary from a current one without comparing defaulted templates.

    Raises:
        ValueError: the rollout has no uid (it was not read from the API server).
    """
    if not rollout.metadata.uid:
        raise ValueError(f"rollout/{rollout.metadata.name} has no metadata.uid to own a canary")
    template = canary_template(rollout, base)
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {**base.selector, CANARY_LABEL: base.name}},
        "template": template,
        "progressDeadlineSeconds": base.progress_deadline_seconds,
    }
    if base.strategy:
        spec["strategy"] = copy.deepcopy(dict(base.strategy))
    if base.min_ready_seconds:
        spec["minReadySeconds"] = base.min_ready_seconds
    if base.revision_history_limit is not None:
        spec["revisionHistoryLimit"] = base.revision_history_limit
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(base.name),
            "namespace": base.namespace,
            "labels": {
                **base.labels,
                ROLLOUT_LABEL: rollout.metadata.name,
                CANARY_LABEL: base.name,
            },
            "annotations": {
                REVISION_ANNOTATION: base.revision,
                TEMPLATE_ANNOTATION: template_hash(template),
            },
            "ownerReferences": [owner_reference(rollout)],
        },
        "spec": spec,
    }


def owns(rollout: WorkloadRollout, canary: DeploymentView) -> bool:
    """Whether a Deployment with the canary's name is this rollout's to change or delete."""
    return canary.labels.get(ROLLOUT_LABEL) == rollout.metadata.name


def canary_revision(canary: DeploymentView) -> str | None:
    """The base revision a canary Deployment runs, as recorded when it was applied."""
    return canary.annotations.get(REVISION_ANNOTATION)


def drift(
    canary: DeploymentView, desired: dict[str, Any], floor: bool = False
) -> Literal["template", "replicas"] | None:
    """What differs between an observed canary Deployment and the desired one, if anything.

    The template is compared by the hash recorded at apply time, since the API server fills
    defaults into the stored template. With `floor` (the canary has its own autoscaler) the
    desired replicas are a minimum: more pods, the autoscaler's doing, are no drift.
    """
    want = desired["metadata"]["annotations"][TEMPLATE_ANNOTATION]
    if canary.annotations.get(TEMPLATE_ANNOTATION) != want:
        return "template"
    replicas = desired["spec"]["replicas"]
    if canary.replicas < replicas or (canary.replicas > replicas and not floor):
        return "replicas"
    return None


def is_current(canary: DeploymentView, desired: dict[str, Any], floor: bool = False) -> bool:
    """Whether the canary's controller has acted on the desired template and replicas."""
    return drift(canary, desired, floor) is None and canary.observed_generation >= canary.generation


def owner_reference(rollout: WorkloadRollout) -> dict[str, Any]:
    """The reference that makes the rollout own (and garbage-collect) what it creates."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": rollout.metadata.name,
        "uid": rollout.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
