"""A lane release's entry weight in the routes: tagged at the gateway, no split on later hops,
and the driven rollouts' own traffic steps left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanes.importers import load
from lanes.operator.plan import Inputs, plan_group
from lanes.render.observe import PodView
from lanes.render.steps import entered_weight
from lanes.rollout.canary import CANARY_LABEL

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain" / "lanes.yaml"
SERVICES = ("mocka", "mockb", "mockc")


def _bodies():
    bundle = load(SAMPLE)
    group = bundle.groups[0].to_wire()
    lanes = [lane.to_wire() for lane in bundle.lanes]
    return group, lanes


def _pods() -> list[PodView]:
    pods = []
    for s in SERVICES:
        for lane in ("base", "canary"):
            labels = {"app": s, "ASM_TRAFFIC_TAG": lane}
            if lane == "canary":
                labels[CANARY_LABEL] = f"{s}-v1"
            pods.append(PodView("default", f"{s}-{lane}", labels, True))
    return pods


def _rollout(service: str, traffic: str | None = "30%") -> dict:
    step = {"replicas": 1, **({"traffic": traffic} if traffic else {})}
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "WorkloadRollout",
        "metadata": {"name": f"rollouts-{service}", "namespace": "default"},
        "spec": {"workloadRef": {"name": f"{service}-v1"}, "strategy": {"canary": {
            "steps": [step], "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}}}}},
        "status": {"phase": "Paused", "canaryStatus": {"currentStepIndex": 1,
                                                       "currentStepState": "StepPaused"}},
    }


def _release(phase: str, weight: int, matches: list | None = None) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
        "metadata": {"name": "seed", "namespace": "default"},
        "spec": {"swimLaneRef": {"name": "canary"}, "steps": [{"weight": 10}],
                 "matches": matches or []},
        "status": {"phase": phase, "weight": weight,
                   "rollouts": [{"name": f"rollouts-{s}"} for s in SERVICES]},
    }


def _plan(releases: list[dict], rollouts: list[dict]):
    group, lanes = _bodies()
    services = {f"default/{s}": {"app": s} for s in SERVICES}
    plan = plan_group(Inputs(group, lanes, services, _pods(), rollouts=rollouts,
                             releases=releases))
    assert plan.valid, plan.errors
    gateway = next(o for o in plan.desired if o["metadata"]["namespace"] == "istio-system")
    mesh = {o["metadata"]["name"]: o for o in plan.desired if o["kind"] == "VirtualService"}
    return gateway, mesh


@pytest.mark.parametrize("weight", [10, 25, 50, 100])
def test_the_entry_weight_tags_its_share_at_the_gateway(weight: int) -> None:
    gateway, mesh = _plan([_release("Progressing", weight)], [_rollout(s) for s in SERVICES])
    assert entered_weight(gateway, "x-asm-prefer-tag", "canary") == weight
    [untagged] = [r for r in gateway["spec"]["http"] if r["name"] == "untagged"]
    into = [d for d in untagged["route"] if d["destination"]["subset"] == "canary"]
    assert into[0]["headers"]["request"]["set"] == {"x-asm-prefer-tag": "canary"}
    for service in SERVICES:
        names = [r["name"] for r in mesh[f"lanes-rollout-{service}"]["spec"]["http"]]
        assert "untagged" not in names, f"{service} splits untagged requests on its own"


def test_rolling_back_routes_nothing_into_the_lane_and_drops_the_matches() -> None:
    matches = [{"headers": [{"name": "x-tester", "value": "me"}]}]
    gateway, _ = _plan([_release("Progressing", 10, matches)], [_rollout("mocka")])
    assert any(r["name"] == "canary/matches" for r in gateway["spec"]["http"])
    gateway, mesh = _plan([_release("RollingBack", 0, matches)], [_rollout("mockb")])
    assert entered_weight(gateway, "x-asm-prefer-tag", "canary") == 0
    assert not any(r["name"] == "canary/matches" for r in gateway["spec"]["http"])
    names = [r["name"] for r in mesh["lanes-rollout-mockb"]["spec"]["http"]]
    assert "untagged" not in names


def test_rollouts_outside_a_release_keep_their_own_traffic_steps() -> None:
    gateway, mesh = _plan([_release("Succeeded", 0)], [_rollout("mockb")])
    assert entered_weight(gateway, "x-asm-prefer-tag", "canary") == 0
    names = [r["name"] for r in mesh["lanes-rollout-mockb"]["spec"]["http"]]
    assert "untagged" in names
