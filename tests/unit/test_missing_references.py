"""A reference to a missing object is a condition naming the field: a rollout's
`spec.workloadRef.name`, a lane release's `spec.swimLaneRef.name`, a group's `spec.services[i]`
(for which nothing is generated until it exists)."""

from __future__ import annotations

from lanes.operator.conditions import group_status
from lanes.operator.plan import Inputs, plan_group
from lanes.rollout import Observed, plan_step
from lanes.rollout.conditions import newly_missing
from lanes.rollout.lanerelease import ReleaseObserved, plan_release

from .rollout_sim import START, rollout
from .test_lanerelease import LANE, NOW, release, rollouts
from .test_operator_plan import GROUP, LANES, PODS, SERVICES, conditions_by_type, with_generation


def test_a_rollout_whose_deployment_is_missing_says_so_naming_the_field() -> None:
    ro = rollout(workload="mocka-v9")
    plan = plan_step(ro, Observed(None), START)
    [progressing] = [c for c in plan.status.conditions if c.type == "Progressing"]
    assert (progressing.status, progressing.reason) == ("False", "WorkloadNotFound")
    assert progressing.message.startswith("spec.workloadRef.name: Deployment mocka-v9 not found")
    assert newly_missing([], plan.status.conditions) == [("WorkloadNotFound", progressing.message)]
    again = plan_step(ro.model_copy(update={"status": plan.status}), Observed(None), START)
    assert newly_missing(plan.status.conditions, again.status.conditions) == [], "one event"


def test_a_lane_release_naming_no_swimlane_says_so_naming_the_field() -> None:
    plan = plan_release(release(), ReleaseObserved(None, rollouts()), NOW)
    ready = {c.type: c for c in plan.status.conditions}["Ready"]
    assert (ready.status, ready.reason) == ("False", "SwimLaneNotFound")
    assert ready.message.startswith("spec.swimLaneRef.name: SwimLane canary not found")
    assert [e.reason for e in plan.events] == ["SwimLaneNotFound"]
    waiting = release(status=plan.status.model_dump(by_alias=True, exclude_none=True))
    assert plan_release(waiting, ReleaseObserved(None, rollouts()), NOW).events == ()
    found = plan_release(waiting, ReleaseObserved(LANE, rollouts()), NOW)
    assert found.status.reason is None and found.status.phase == "Waiting"


def test_a_group_generates_nothing_for_a_missing_service_and_names_it() -> None:
    services = {k: v for k, v in SERVICES.items() if k != "default/mockc"}
    plan = plan_group(Inputs(with_generation(GROUP), LANES, services, PODS))
    assert plan.valid
    hosts = {o["spec"].get("host") for o in plan.desired} | {
        h for o in plan.desired for h in o["spec"].get("hosts") or []}
    assert "mockc.default.svc.cluster.local" not in hosts
    assert "mockb.default.svc.cluster.local" in hosts
    index = [s["name"] for s in GROUP["spec"]["services"]].index("mockc")
    status = conditions_by_type(group_status(plan, None, NOW.isoformat(), generated=len(plan.desired)))
    assert status["Ready"]["status"] == "True"
    assert (status["Degraded"]["status"], status["Degraded"]["reason"]) == ("True", "ServicesNotFound")
    assert f"spec.services[{index}]: Service default/mockc not found" in status["Degraded"]["message"]
    complete = plan_group(Inputs(with_generation(GROUP), LANES, SERVICES, PODS))
    assert len(complete.desired) == len(plan.desired) + 2 and complete.absent == []
