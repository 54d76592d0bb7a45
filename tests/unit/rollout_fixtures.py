"""Hand-built objects and statuses for the state-machine tests: the base Deployment, its
ReplicaSets and the canary at chosen points of a release."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from lanes.api.workloadrollout import CanaryStatus, WorkloadRollout, WorkloadRolloutStatus
from lanes.rollout import (
    DeploymentView,
    Observed,
    Plan,
    canary_deployment,
    plan_step,
    template_hash,
)
from lanes.rollout.status import timestamp

from .rollout_sim import IMAGE, START, deployment, rollout

V1, V2, V3 = (f"{IMAGE}:{tag}" for tag in ("1.0", "2.0", "3.0"))
REV = {i: template_hash(deployment(image=i)["spec"]["template"]) for i in (V1, V2, V3)}
NOW = START + timedelta(minutes=5)
RECENT = NOW - timedelta(seconds=10)
LONG_AGO = NOW - timedelta(seconds=601)


def base(
    image: str = V1,
    paused: bool = False,
    replicas: int = 3,
    updated: int | None = None,
    available: int | None = None,
) -> dict:
    """The base Deployment; by default fully rolled out."""
    obj = deployment(image=image, replicas=replicas)
    obj["metadata"]["generation"] = 4
    obj["spec"]["paused"] = paused
    obj["status"] = {
        "observedGeneration": 4,
        "replicas": replicas,
        "updatedReplicas": replicas if updated is None else updated,
        "availableReplicas": replicas if available is None else available,
    }
    return obj


def held(obj: dict) -> dict:
    """The base as the webhook or a PauseBase leaves it: paused, annotated as held."""
    obj["spec"]["paused"] = True
    obj["metadata"]["annotations"] = {"lanes.dev/held-by": "rollouts-mocka"}
    return obj


def replica_set(image: str = V1, replicas: int = 3, number: int = 1) -> dict:
    """A ReplicaSet of the base, as the Deployment controller writes it."""
    template = copy.deepcopy(deployment(image=image)["spec"]["template"])
    template["metadata"]["labels"]["pod-template-hash"] = f"h{number}"
    return {
        "metadata": {
            "name": f"mocka-v1-h{number}",
            "annotations": {"deployment.kubernetes.io/revision": str(number)},
            "ownerReferences": [{"uid": "uid-mocka-v1", "controller": True}],
        },
        "spec": {"replicas": replicas, "template": template},
        "status": {"availableReplicas": replicas},
    }


def canary(
    image: str = V2,
    replicas: int = 1,
    available: int | None = None,
    ro: WorkloadRollout | None = None,
) -> dict:
    """A canary Deployment as the planner would have applied it, with its status."""
    obj = canary_deployment(ro or rollout(), DeploymentView.from_object(base(image)), replicas)
    obj["metadata"]["generation"] = 1
    ready = replicas if available is None else available
    obj["status"] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": ready,
    }
    return obj


def observed(
    base_obj: dict | None = None, canary_obj: dict | None = None, sets: list | None = None
) -> Observed:
    """What a reconcile sees; by default the base is held on v2 with its v1 ReplicaSet."""
    return Observed.from_objects(
        base(V2, paused=True) if base_obj is None else base_obj,
        [replica_set()] if sets is None else sets,
        canary_obj,
    )


def status(
    phase: str,
    state: str | None = "StepUpgrade",
    index: int = 1,
    *,
    canary_rev: str | None = REV[V2],
    paused: bool = False,
    last=RECENT,
    conditions=(),
) -> WorkloadRolloutStatus:
    """A stored status with v1 stable and, by default, v2 in the canary."""
    return WorkloadRolloutStatus(
        phase=phase,
        paused=paused,
        conditions=list(conditions),
        canary_status=CanaryStatus(
            stable_revision=REV[V1],
            canary_revision=canary_rev,
            current_step_index=index,
            current_step_state=state,
            canary_replicas=1,
            last_update_time=timestamp(last),
        ),
    )


HEALTHY = status("Healthy", None, 0, canary_rev=None)
TWO_STEPS = [{"replicas": 1}, {"replicas": "100%"}]
TIMED = [{"replicas": 1, "pause": {"duration": 60}}, {"replicas": 2}]


@dataclass
class Case:
    """One reconcile: the rollout's status and what is observed -> the next state and actions."""

    before: WorkloadRolloutStatus | None
    seen: Observed
    phase: str
    state: str | None = None
    index: int | None = None
    actions: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    strategy_paused: bool = False
    now: Any = NOW


def case_rollout(case: Case) -> WorkloadRollout:
    """The rollout a case describes."""
    ro = rollout(**case.spec)
    if case.strategy_paused:
        strategy = ro.spec.strategy.model_copy(update={"paused": True})
        ro = ro.model_copy(update={"spec": ro.spec.model_copy(update={"strategy": strategy})})
    metadata = ro.metadata.model_copy(update={"annotations": case.annotations})
    return ro.model_copy(update={"metadata": metadata, "status": case.before})




def plan_case(case: Case) -> Plan:
    """The plan for one case."""
    return plan_step(case_rollout(case), case.seen, case.now)
