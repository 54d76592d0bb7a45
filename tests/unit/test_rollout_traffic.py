"""A release's traffic step, from the rollout's spec and status to the group's routes."""

from __future__ import annotations

import pytest

from lanes.api.workloadrollout import WorkloadRollout
from lanes.operator.plan import Inputs, plan_group
from lanes.render.observe import PodView
from lanes.rollout.canary import CANARY_LABEL
from lanes.rollout.traffic import step_in_force

from .test_operator_plan import GROUP, LANES, SERVICES, with_generation

STEPS = [
    {"replicas": 1, "traffic": "10%", "pause": {}},
    {"replicas": 1, "traffic": "40%",
     "matches": [{"headers": [{"name": "x-canary", "value": "1"}], "path": {"value": "/"}}],
     "pause": {}},
    {"replicas": "100%", "pause": {}},
]


def rollout(phase: str = "Paused", index: int = 1, state: str | None = "StepPaused") -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "WorkloadRollout",
        "metadata": {"name": "rollouts-mockb", "namespace": "default"},
        "spec": {
            "workloadRef": {"name": "mockb-v1"},
            "strategy": {"canary": {
                "steps": STEPS,
                "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}},
            }},
        },
        "status": {"phase": phase, "canaryStatus": {"currentStepIndex": index,
                                                    "currentStepState": state}},
    }


@pytest.mark.parametrize(
    ("phase", "index", "state", "weight"),
    [
        ("Progressing", 1, "StepUpgrade", None),
        ("Paused", 1, "StepPaused", 10),
        ("Progressing", 1, "StepReady", 10),
        ("Progressing", 2, "StepUpgrade", 10),
        ("Paused", 2, "StepPaused", 40),
        ("Progressing", 3, "StepUpgrade", 40),
        ("Paused", 3, "StepPaused", None),
        ("Promoting", 3, "Completed", None),
        ("RollingBack", 2, "StepPaused", None),
        ("Failed", 2, "StepPaused", None),
        ("Healthy", 0, None, None),
    ],
)
def test_the_step_in_force(phase: str, index: int, state: str | None, weight: int | None) -> None:
    step = step_in_force(WorkloadRollout.model_validate(rollout(phase, index, state)))
    assert (step.weight if step else None) == weight


def test_kruise_matches_read_as_istio_matches() -> None:
    step = WorkloadRollout.model_validate(rollout()).spec.strategy.canary.steps[1]
    [match] = step.matches
    assert match.to_request_match().to_wire() == {
        "uri": {"prefix": "/"}, "headers": {"x-canary": {"exact": "1"}}}


PODS = [
    PodView("default", "a1", {"app": "mocka", "ASM_TRAFFIC_TAG": "base"}, True),
    PodView("default", "b1", {"app": "mockb", "ASM_TRAFFIC_TAG": "base"}, True),
    PodView("default", "b2", {"app": "mockb", "ASM_TRAFFIC_TAG": "canary",
                              CANARY_LABEL: "mockb-v1"}, True),
    PodView("default", "c1", {"app": "mockc", "ASM_TRAFFIC_TAG": "base"}, True),
]


def mockb_routes(*rollouts: dict) -> list[dict]:
    plan = plan_group(Inputs(with_generation(GROUP), LANES, SERVICES, PODS, rollouts=rollouts))
    assert plan.valid, plan.errors
    vs = next(o for o in plan.desired if o["kind"] == "VirtualService"
              and o["spec"]["hosts"] == ["mockb.default.svc.cluster.local"])
    return vs["spec"]["http"]


def test_the_group_splits_the_services_untagged_requests_by_the_step() -> None:
    http = {r["name"]: r for r in mockb_routes(rollout("Paused", 2, "StepPaused"))}
    assert [d["weight"] for d in http["untagged"]["route"]] == [60, 40]
    assert http["canary/matches"]["match"][0]["headers"] == {"x-canary": {"exact": "1"}}
    assert [r["name"] for r in mockb_routes(rollout("Paused", 2, "StepPaused"))] == [
        "canary", "canary/matches", "untagged", "base"]


def test_no_step_in_force_means_no_split() -> None:
    for body in (rollout("Progressing", 1, "StepUpgrade"), rollout("Promoting", 3, "Completed")):
        assert [r["name"] for r in mockb_routes(body)] == ["canary", "base"]
    assert [r["name"] for r in mockb_routes()] == ["canary", "base"]


def test_a_rollout_that_does_not_parse_splits_nothing() -> None:
    broken = rollout()
    broken["spec"]["strategy"]["canary"]["steps"][0]["traffic"] = "ten percent"
    assert [r["name"] for r in mockb_routes(broken)] == ["canary", "base"]
