"""Pure planning of releases: (release, what is observed, now) -> next status + actions.

One step engine (`engine`) serves two units: a WorkloadRollout (`machine.plan_step`, one
workload and its canary Deployment) and a LaneRelease (`lanerelease.plan_release`, the
rollouts of one lane moved together by the lane's entry weight). Nothing here talks to the
API server; the operator reads the objects, calls the planner (or `plan_finalize` on
deletion) and carries out the returned actions.
"""

from .actions import (
    HELD_ANNOTATION,
    Action,
    ApplyAutoscaler,
    ApplyCanary,
    Change,
    ClearIntent,
    DeleteAutoscaler,
    DeleteCanary,
    Event,
    Followup,
    PauseBase,
    Plan,
    RestoreBaseTemplate,
    ScaleCanary,
    UnpauseBase,
)
from .batches import is_batch_ready, scaled_value, step_replicas
from .canary import (
    CANARY_LABEL,
    REVISION_ANNOTATION,
    ROLLOUT_LABEL,
    TEMPLATE_ANNOTATION,
    canary_deployment,
    canary_name,
    canary_revision,
)
from .finalize import plan_finalize
from .hooks import HookCall, flagger_phase, release_hooks
from .intents import ANNOTATIONS, Intent, check_intent, intent_patch, requested
from .machine import plan_step
from .observed import DeploymentView, Observed, ReplicaSetView
from .revisions import pod_template, template_hash

__all__ = [
    "ANNOTATIONS",
    "CANARY_LABEL",
    "HELD_ANNOTATION",
    "REVISION_ANNOTATION",
    "ROLLOUT_LABEL",
    "TEMPLATE_ANNOTATION",
    "Action",
    "ApplyAutoscaler",
    "ApplyCanary",
    "Change",
    "ClearIntent",
    "DeleteAutoscaler",
    "DeleteCanary",
    "DeploymentView",
    "Event",
    "Followup",
    "HookCall",
    "Intent",
    "Observed",
    "PauseBase",
    "Plan",
    "ReplicaSetView",
    "RestoreBaseTemplate",
    "ScaleCanary",
    "UnpauseBase",
    "canary_deployment",
    "canary_name",
    "canary_revision",
    "check_intent",
    "flagger_phase",
    "intent_patch",
    "is_batch_ready",
    "plan_finalize",
    "plan_step",
    "pod_template",
    "release_hooks",
    "requested",
    "scaled_value",
    "step_replicas",
    "template_hash",
]
