"""A lane release's shadow step (`spec.mirror`): the step it adds, when the gateway mirrors,
and the routes that keep a copy's every hop in the lane."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from rich.console import Console

from lanes.api.lanerelease import LaneReleaseSpec
from lanes.cli.releasestatus import format_release, release_view
from lanes.operator.plan import Inputs, plan_group
from lanes.render.shadow import SHADOW_ABORT_STATUS
from lanes.rollout.lanerelease import ReleaseObserved, mirror_in_force, plan_release

from .test_lanerelease import CHECK, LANE, NOW, advance, ok, release, rollouts, run
from .test_lanerelease_routes import SERVICES, _bodies, _plan, _pods, _rollout

MIRROR = {"percent": 40}


def _shadow_release(phase: str, step: int, weight: int = 0, **mirror: object) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
        "metadata": {"name": "seed", "namespace": "default"},
        "spec": {"swimLaneRef": {"name": "canary"}, "steps": [{"weight": 10}],
                 "mirror": {**MIRROR, **mirror}},
        "status": {"phase": phase, "weight": weight, "currentStepIndex": step,
                   "rollouts": [{"name": f"rollouts-{s}"} for s in SERVICES]},
    }


def test_the_mirror_adds_a_shadow_step_at_entry_weight_0_before_the_steps() -> None:
    spec = LaneReleaseSpec.model_validate({"swimLaneRef": {"name": "canary"}, "stepWeight": 25,
                                           "mirror": {"pause": {"duration": 30}}})
    assert [(s.weight, s.pause and s.pause.duration) for s in spec.all_steps] == [
        (0, 30), (25, None), (50, None)]
    assert spec.mirror.percent == 100 and not spec.mirror.fallback_to_base


@pytest.mark.parametrize("percent", [0, 101])
def test_a_mirror_percent_outside_1_to_100_is_refused(percent: int) -> None:
    with pytest.raises(ValidationError, match="mirror.percent"):
        LaneReleaseSpec.model_validate({"swimLaneRef": {"name": "canary"}, "steps": [
            {"weight": 10}], "mirror": {"percent": percent}})


def test_the_release_starts_at_the_shadow_step_then_enters_the_lane_after_a_check() -> None:
    rel = release(mirror=MIRROR)
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    rel = advance(rel, plan_release(rel, observed, NOW))
    assert (rel.status.phase, rel.status.current_step_index, rel.status.weight) == (
        "Progressing", 1, 0)
    assert "shadow: 40% of untagged requests copied into lane canary" in rel.status.message
    assert mirror_in_force(rel) == rel.spec.mirror
    plan = run(rel, observed, CHECK, ok())
    rel = advance(rel, plan)
    assert (rel.status.current_step_index, rel.status.weight) == (2, 10)
    assert rel.status.check_step == 1 and rel.status.checks == 1
    assert mirror_in_force(rel) is None


def test_a_failing_shadow_check_rolls_the_lane_back_with_no_user_ever_in_it() -> None:
    rel = release(mirror=MIRROR)
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    rel = advance(rel, plan_release(rel, observed, NOW))
    now = CHECK
    for _ in range(2):
        rel = advance(rel, run(rel, observed, now, ok(50.0)))
        now += timedelta(seconds=10)
    assert rel.status.phase == "RollingBack" and rel.status.weight == 0
    assert mirror_in_force(rel) is None


def test_the_gateway_mirrors_the_untagged_route_into_the_lanes_entry_pods() -> None:
    gateway, mesh = _plan([_shadow_release("Progressing", 1)], [_rollout(s) for s in SERVICES])
    [untagged] = [r for r in gateway["spec"]["http"] if r["name"] == "untagged"]
    assert untagged["route"] == [{"destination": {
        "host": "mocka.default.svc.cluster.local", "subset": "base"}}]
    assert untagged["mirror"] == {"host": "mocka.default.svc.cluster.local", "subset": "canary"}
    assert untagged["mirrorPercentage"] == {"value": 40.0}
    for service in SERVICES:
        http = mesh[f"lanes-rollout-{service}"]["spec"]["http"]
        assert [r["name"] for r in http] == ["canary", "canary/shadow", "base"]
        assert http[1]["match"] == [{"sourceLabels": {"ASM_TRAFFIC_TAG": "canary"},
                                     "withoutHeaders": {"x-asm-prefer-tag": {}}}]
        assert http[1]["route"][0]["destination"]["subset"] == "canary"


@pytest.mark.parametrize("phase,step", [("Progressing", 2), ("Promoting", 1),
                                        ("RollingBack", 1), ("Succeeded", 1)])
def test_no_mirror_past_the_shadow_step(phase: str, step: int) -> None:
    gateway, mesh = _plan([_shadow_release(phase, step, weight=10 if step == 2 else 0)],
                          [_rollout(s) for s in SERVICES])
    assert not any("mirror" in r for r in gateway["spec"]["http"])
    for service in SERVICES:
        names = [r["name"] for r in mesh[f"lanes-rollout-{service}"]["spec"]["http"]]
        assert "canary/shadow" not in names


@pytest.mark.parametrize("fallback", [False, True])
def test_a_copy_stops_where_the_lane_has_no_pod_unless_it_may_fall_back(fallback: bool) -> None:
    group, lanes = _bodies()
    pods = [p for p in _pods() if p.name != "mockc-canary"]
    plan = plan_group(Inputs(group, lanes, {f"default/{s}": {"app": s} for s in SERVICES}, pods,
                             rollouts=[_rollout(s) for s in ("mocka", "mockb")],
                             releases=[_shadow_release("Paused", 1, fallbackToBase=fallback)]))
    assert plan.valid, plan.errors
    [mockc] = [o for o in plan.desired if o["metadata"]["name"] == "lanes-rollout-mockc"
               and o["kind"] == "VirtualService"]
    [shadow] = [r for r in mockc["spec"]["http"] if r["name"] == "canary/shadow"]
    assert shadow["route"][0]["destination"]["subset"] == "base"
    if fallback:
        assert "fault" not in shadow
    else:
        assert shadow["fault"]["abort"]["httpStatus"] == SHADOW_ABORT_STATUS


def test_the_status_view_names_the_shadow_step() -> None:
    body = _shadow_release("Progressing", 1)
    view = release_view(body)
    console = Console(width=120, record=True)
    console.print(format_release(view))
    assert "steps: shadow 40% 10%" in console.export_text()
