"""Which traffic step a release is at, and the services and lanes it applies to. Pure.

A step's traffic is in force while the step's canary pods are ready (the step is paused or
done); while the next batch comes up the previous step's traffic stays. Before the first
batch is ready, and once the release promotes, rolls back or fails, untagged requests are
all the fallback lane's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from lanes.api.observations import TrafficStep
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.workloadrollout import CanaryStep, WorkloadRollout
from lanes.render.observe import PodView, selects

from .canary import CANARY_LABEL

_IN_STEPS = {"Progressing", "Paused"}


def step_in_force(rollout: WorkloadRollout) -> CanaryStep | None:
    """The step whose traffic is in force, or None when untagged requests stay on base."""
    status = rollout.status
    canary = status.canary_status if status is not None else None
    if status is None or canary is None or status.phase not in _IN_STEPS:
        return None
    steps = rollout.spec.strategy.canary.steps
    index = canary.current_step_index
    if canary.current_step_state in ("StepPaused", "StepReady"):
        pass
    elif canary.current_step_state == "StepUpgrade":
        index -= 1
    else:
        return None
    if not 1 <= index <= len(steps):
        return None
    step = steps[index - 1]
    return step if step.weight or step.matches else None


def traffic_steps(
    group: SwimLaneGroup,
    lanes: Sequence[SwimLane],
    services: Mapping[str, Mapping[str, str] | None],
    pods: Iterable[PodView],
    rollouts: Iterable[WorkloadRollout],
) -> dict[str, TrafficStep]:
    """The traffic step of each group service a release in force targets.

    A rollout's canary pods (labelled with the base Deployment's name) tell which services
    select them and which of the group's lanes they are in.
    """
    pods = list(pods)
    own = [lane for lane in lanes if lane.group == group.name]
    found: dict[str, TrafficStep] = {}
    for rollout in rollouts:
        step = step_in_force(rollout)
        if step is None:
            continue
        namespace = rollout.metadata.namespace or "default"
        base = rollout.spec.workload_ref.name
        canaries = [p for p in pods if p.namespace == namespace and p.labels.get(CANARY_LABEL) == base]
        for service in group.spec.services:
            if service.namespace != namespace:
                continue
            selector = services.get(service.key)
            mine = [p for p in canaries if selects(selector, p.labels)]
            lane = next((l for l in own if any(selects(l.spec.label_selector, p.labels) for p in mine)), None)
            if lane is not None:
                found[service.key] = TrafficStep(
                    lane=lane.name,
                    weight=step.weight,
                    matches=[m.to_request_match() for m in step.matches],
                )
    return found
