"""`autoscalerRef`: the canary's copy of the base's HorizontalPodAutoscaler during a release,
played through the simulated operator loop."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout import ApplyAutoscaler, DeleteAutoscaler, ScaleCanary, plan_finalize

from .rollout_sim import World, deployment, rollout
from .test_rollout_analysis import V2, V3, conditions, state

HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "mocka", "namespace": "default"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mocka-v1"},
        "minReplicas": 2,
        "maxReplicas": 8,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
    },
}
COPY = "mocka-v1-canary"


def scaled(steps: list[dict], **spec) -> WorkloadRollout:
    ro = rollout(steps=steps)
    wire = ro.to_wire()
    wire["spec"]["autoscalerRef"] = {"name": "mocka"}
    wire["spec"].update(spec)
    return WorkloadRollout.model_validate(wire)


def world_of(steps: list[dict], replicas: int = 4, hpa: dict | None = HPA) -> World:
    world = World.of(deployment(replicas=replicas), scaled(steps))
    if hpa is not None:
        world.autoscalers["mocka"] = hpa
    world.reconcile()
    return world


def test_a_release_gives_the_canary_a_copy_of_the_bases_autoscaler_with_the_step_as_floor() -> None:
    world = world_of([{"replicas": "50%"}, {"replicas": "100%"}])
    assert COPY not in world.autoscalers, "no copy before a release"
    world.set_image(V2)
    world.reconcile()
    copy = world.autoscalers[COPY]
    assert copy["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": COPY}
    assert (copy["spec"]["minReplicas"], copy["spec"]["maxReplicas"]) == (2, 8)
    assert copy["spec"]["metrics"] == HPA["spec"]["metrics"]
    assert copy["metadata"]["labels"] == {"lanes.dev/rollout": "rollouts-mocka",
                                          "lanes.dev/canary": "mocka-v1"}
    assert copy["metadata"]["ownerReferences"][0]["uid"] == "uid-rollout"
    assert world.autoscalers["mocka"] == HPA, "the base's own autoscaler is left alone"
    plan = world.reconcile()
    assert not any(isinstance(a, ApplyAutoscaler) for a in plan.actions), "applied once"


def test_percent_steps_and_the_copys_floor_follow_the_bases_replica_count() -> None:
    world = world_of([{"replicas": "50%"}, {"replicas": "100%"}])
    world.set_image(V2)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    assert world.canary["spec"]["replicas"] == 2
    world.base["spec"]["replicas"] = 6  # the base's autoscaler scaled it
    world.settle()
    world.reconcile()
    assert world.canary["spec"]["replicas"] == 3
    assert world.autoscalers[COPY]["spec"]["minReplicas"] == 3


def test_pods_the_copy_adds_above_the_floor_are_not_scaled_away() -> None:
    world = world_of([{"replicas": 1}, {"replicas": "100%"}])
    world.set_image(V2)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    world.canary["spec"]["replicas"] = 3  # the copy scaled the canary up under load
    world.settle()
    plan = world.reconcile()
    assert not any(isinstance(a, ScaleCanary) for a in plan.actions)
    assert state(world) == ("Paused", 1, "StepPaused")
    world.canary["spec"]["replicas"] = 0  # below the floor is corrected
    world.settle()
    plan = world.reconcile()
    assert ScaleCanary(COPY, 1) in plan.actions


@pytest.mark.parametrize("ending", ["approve", "undo"])
def test_the_copy_goes_when_the_release_ends(ending: str) -> None:
    world = world_of([{"replicas": 1}])
    world.set_image(V2)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    assert COPY in world.autoscalers
    world.request(ending)
    world.run(lambda w: w.status.phase == "Healthy")
    assert world.canary is None and COPY not in world.autoscalers
    reason = "Promoted" if ending == "approve" else "RolledBack"
    assert conditions(world)["Succeeded"][1] == reason


def test_a_copy_left_behind_by_a_crash_is_deleted_once_the_canary_is_gone() -> None:
    world = world_of([{"replicas": 1}])
    world.set_image(V2)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    world.request("undo")
    world.reconcile(crash_after=1)  # the canary deleted, the copy not, no status written
    world.run(lambda w: w.status.phase == "Healthy")
    assert COPY not in world.autoscalers


def test_without_the_bases_autoscaler_the_canary_runs_by_its_steps() -> None:
    world = world_of([{"replicas": 1}], hpa=None)
    world.set_image(V2)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    assert world.autoscalers == {}


def test_an_autoscaler_of_the_canarys_name_that_is_not_ours_is_left_alone() -> None:
    world = world_of([{"replicas": 1}])
    foreign = {**HPA, "metadata": {"name": COPY, "namespace": "default"}}
    world.autoscalers[COPY] = foreign
    world.set_image(V2)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    assert world.autoscalers[COPY] == foreign, "not taken over"
    world.request("undo")
    world.run(lambda w: w.status.phase == "Healthy")
    assert world.autoscalers[COPY] == foreign, "not deleted"


def test_a_restarted_release_keeps_one_copy_and_deleting_the_rollout_removes_it() -> None:
    world = world_of([{"replicas": 1}])
    world.set_image(V2)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    world.set_image(V3)
    world.run(lambda w: state(w) == ("Paused", 1, "StepPaused"))
    assert list(world.autoscalers) == ["mocka", COPY]
    assert DeleteAutoscaler(COPY) in plan_finalize(world.rollout, world.observed())


@pytest.mark.parametrize(
    ("ref", "field"),
    [({"name": "Mock_a"}, "name"), ({"kind": "ScaledObject", "name": "a"}, "kind"),
     ({"apiVersion": "autoscaling/v1", "name": "a"}, "apiVersion")],
    ids=["name", "kind", "apiVersion"],
)
def test_an_autoscaler_ref_lanes_cannot_copy_is_refused_naming_the_field(
    ref: dict, field: str
) -> None:
    wire = rollout().to_wire()
    wire["spec"]["autoscalerRef"] = ref
    with pytest.raises(ValidationError) as info:
        WorkloadRollout.model_validate(wire)
    assert f"spec.autoscalerRef.{field}" in str(info.value)
