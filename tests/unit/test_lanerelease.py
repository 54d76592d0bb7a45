"""The LaneRelease planner: steps, lane-wide checks, all-or-nothing promotion and roll back,
and the defined outcome of each way a release can be disturbed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from lanes.analysis.verdict import HookResult, Reading
from lanes.api.lanerelease import LaneRelease, LaneReleaseSpec
from lanes.api.swimlane import SwimLane
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout.lanerelease import (
    ReleaseObserved,
    canary_holder,
    driven_rollouts,
    entry_weight,
    member_rollouts,
    plan_release,
    release_checksum,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CHECK = NOW + timedelta(seconds=10)
SERVICES = ("mocka", "mockb", "mockc")
LANE = SwimLane.model_validate({
    "metadata": {"name": "canary", "labels": {"swimlane-group": "g"}},
    "spec": {"labelSelector": {"ASM_TRAFFIC_TAG": "canary"}},
})
ANALYSIS = {
    "interval": "10s", "threshold": 2,
    "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
}


def member(service: str, phase: str = "Paused", state: str = "StepPaused", ready: int = 1,
           revision: str = "v2", stable: str = "v1", annotations: dict | None = None,
           lane: str = "canary", deleted: bool = False, **canary: object) -> WorkloadRollout:
    """A rollout of one service, by default waiting for approval at its only step; `deleted`:
    being deleted, its finalizer still running."""
    return WorkloadRollout.model_validate({
        "metadata": {"name": f"rollouts-{service}", "namespace": "default",
                     "annotations": annotations or {},
                     **({"deletionTimestamp": NOW.isoformat()} if deleted else {})},
        "spec": {"workloadRef": {"name": f"{service}-v1"}, "strategy": {"canary": {
            "steps": [{"replicas": 1}],
            "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": lane}}, **canary}}},
        "status": {"phase": phase, "canaryStatus": {
            "stableRevision": stable, "canaryRevision": revision, "currentStepIndex": 1,
            "currentStepState": state, "canaryReadyReplicas": ready}},
    })


def release(status: dict | None = None, annotations: dict | None = None, **spec: object
            ) -> LaneRelease:
    body = {"swimLaneRef": {"name": "canary"},
            "steps": [{"weight": 10}, {"weight": 25}, {"weight": 50}], "analysis": ANALYSIS}
    body.update(spec)
    return LaneRelease.model_validate({
        "metadata": {"name": "seed", "namespace": "default", "generation": 1,
                     "annotations": annotations or {}},
        "spec": body, **({"status": status} if status else {}),
    })


def rollouts(**phases: dict) -> list[WorkloadRollout]:
    return [member(s, **phases.get(s, {})) for s in SERVICES]


def ok(value: float = 100.0) -> dict:
    return {s: {"request-success-rate": Reading("request-success-rate", value)}
            for s in (f"rollouts-{x}" for x in SERVICES)}


def run(rel: LaneRelease, observed: ReleaseObserved, now: datetime, readings=None):
    """Plan once; when a check is asked for, plan again with `readings` as the operator does."""
    plan = plan_release(rel, observed, now)
    if plan.check is not None and readings is not None:
        plan = plan_release(rel, observed.with_readings(readings), now)
    return plan


def advance(rel: LaneRelease, plan) -> LaneRelease:
    return rel.model_copy(update={"status": plan.status})


def started() -> LaneRelease:
    rel = release()
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    rel = advance(rel, plan_release(rel, observed, NOW))
    assert rel.status.phase == "Progressing"
    return rel


def test_members_are_the_rollouts_the_lane_selects_when_none_are_named() -> None:
    other = member("mockd", lane="blue")
    found, missing = member_rollouts(release(), LANE, [*rollouts(), other])
    assert [r.metadata.name for r in found] == ["rollouts-mocka", "rollouts-mockb",
                                                "rollouts-mockc"]
    assert missing == []
    found, missing = member_rollouts(release(rollouts=["rollouts-mocka", "rollouts-x"]), LANE,
                                     rollouts())
    assert [r.metadata.name for r in found] == ["rollouts-mocka"] and missing == ["rollouts-x"]


def test_waits_until_every_member_is_ready_at_its_last_step() -> None:
    rel = release()
    observed = ReleaseObserved(LANE, rollouts(mockc={"phase": "Progressing",
                                                    "state": "StepUpgrade", "ready": 0}))
    rel = advance(rel, plan_release(rel, observed, NOW))
    plan = plan_release(rel, observed, NOW)
    assert plan.status.phase == "Waiting" and plan.status.weight == 0
    assert "rollouts-mockc" in plan.status.message
    ready = ReleaseObserved(LANE, rollouts())
    plan = plan_release(advance(rel, plan), ready, NOW)
    assert (plan.status.phase, plan.status.current_step_index, plan.status.weight) == (
        "Progressing", 1, 10)
    assert [m.revision for m in plan.status.rollouts] == ["v2"] * 3


def test_the_first_check_comes_one_interval_after_the_start() -> None:
    plan = plan_release(started(), ReleaseObserved(LANE, rollouts()), NOW + timedelta(seconds=5))
    assert plan.check is None and plan.requeue_after == pytest.approx(5)


def test_healthy_steps_then_all_promoted_in_one_reconcile() -> None:
    rel = started()
    observed = ReleaseObserved(LANE, rollouts())
    weights = []
    now = CHECK
    for _ in range(3):
        plan = run(rel, observed, now, ok())
        rel = advance(rel, plan)
        weights.append(rel.status.weight)
        now += timedelta(seconds=10)
    assert weights == [25, 50, 100]
    assert rel.status.phase == "Promoting" and rel.status.check_step == 3
    assert [s.service for s in rel.status.services] == ["mocka-v1", "mockb-v1", "mockc-v1"]
    waiting = plan_release(rel, ReleaseObserved(LANE, rollouts(), routed_weight=50), now)
    assert waiting.intents == () and "gateway routes 50%" in waiting.status.message
    routed = ReleaseObserved(LANE, rollouts(), routed_weight=100)
    plan = plan_release(rel, routed, now)
    assert plan.intents == () and plan.requeue_after == pytest.approx(2)
    rel = advance(rel, plan)
    plan = plan_release(rel, routed, now + timedelta(seconds=2))
    assert {(i.rollout, i.intent, i.value, i.hold) for i in plan.intents} == {
        (f"rollouts-{s}", "approve", "1", "seed") for s in SERVICES}
    assert plan.status.weight == 100 and plan.status.phase == "Promoting"
    rel = advance(rel, plan)
    now += timedelta(seconds=2)
    held = {"lanes.dev/lane-release": "seed"}
    rolling = ReleaseObserved(LANE, [
        member("mocka", phase="Promoting", state="Completed", annotations=held),
        member("mockb", phase="Promoting", state="Completed", annotations=held),
        member("mockc", phase="Promoting", state="Completed", annotations=held)],
        routed_weight=100, rolled_out=frozenset({"rollouts-mocka", "rollouts-mockc"}))
    plan = plan_release(rel, rolling, now)
    assert plan.intents == () and plan.status.weight == 100
    assert "rollouts-mockb" in plan.status.message
    rolled = ReleaseObserved(LANE, rolling.rollouts, routed_weight=100,
                             rolled_out=frozenset(f"rollouts-{s}" for s in SERVICES))
    plan = plan_release(rel, rolled, now)
    assert (plan.status.phase, plan.status.weight, plan.intents) == ("Promoting", 0, ())
    rel = advance(rel, plan)
    back = ReleaseObserved(LANE, rolling.rollouts, routed_weight=0, rolled_out=rolled.rolled_out)
    rel = advance(rel, plan_release(rel, back, now))
    plan = plan_release(rel, back, now + timedelta(seconds=2))
    assert {(i.rollout, i.unhold) for i in plan.intents} == {
        (f"rollouts-{s}", True) for s in SERVICES}
    assert plan.status.phase == "Promoting"
    rel = advance(rel, plan)
    done = ReleaseObserved(LANE, [member(s, phase="Healthy", stable="v2") for s in SERVICES],
                           routed_weight=0)
    plan = plan_release(rel, done, now + timedelta(seconds=3))
    assert (plan.status.phase, plan.status.weight) == ("Succeeded", 0)
    succeeded = {c.type: c.status for c in plan.status.conditions}
    assert succeeded == {"Ready": "True", "Progressing": "False", "Succeeded": "True"}


def test_a_failing_service_halts_the_lane_then_rolls_every_rollout_back() -> None:
    rel = started()
    observed = ReleaseObserved(LANE, rollouts())
    bad = ok()
    bad["rollouts-mockc"] = {"request-success-rate": Reading("request-success-rate", 62.5)}
    plan = run(rel, observed, CHECK, bad)
    assert plan.status.weight == 10 and plan.status.failed_checks == 1
    [event] = [e for e in plan.events if e.reason == "HaltAdvancement"]
    assert "mockc-v1" in event.message and "62.5" in event.message and ">= 99" in event.message
    rel = advance(rel, plan)
    plan = run(rel, observed, CHECK + timedelta(seconds=10), bad)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, "AnalysisFailed")
    assert plan.intents == ()
    rel = advance(rel, plan)
    routed = ReleaseObserved(LANE, rollouts(), routed_weight=0)
    rel = advance(rel, plan_release(rel, routed, NOW + timedelta(seconds=21)))
    plan = plan_release(rel, routed, NOW + timedelta(seconds=23))
    assert {(i.rollout, i.intent) for i in plan.intents} == {
        (f"rollouts-{s}", "undo") for s in SERVICES}
    rel = advance(rel, plan)
    again = plan_release(rel, ReleaseObserved(LANE, rollouts(mocka={"phase": "RollingBack"}),
                                              routed_weight=0), NOW + timedelta(seconds=24))
    assert {i.rollout for i in again.intents} == {"rollouts-mockb", "rollouts-mockc"}
    done = ReleaseObserved(LANE, [member(s, phase="Healthy") for s in SERVICES], routed_weight=0)
    plan = plan_release(rel, done, NOW + timedelta(seconds=30))
    assert (plan.status.phase, plan.status.reason) == ("Failed", "AnalysisFailed")
    conditions = {c.type: (c.status, c.reason) for c in plan.status.conditions}
    assert conditions["Succeeded"] == ("False", "AnalysisFailed")


def test_checks_are_not_repeated_within_an_interval() -> None:
    rel = advance(started(), run(started(), ReleaseObserved(LANE, rollouts()), CHECK, {
        **ok(), "rollouts-mocka": {"request-success-rate": Reading("request-success-rate", 1)}}))
    plan = plan_release(rel, ReleaseObserved(LANE, rollouts()), CHECK + timedelta(seconds=5))
    assert plan.check is None and plan.requeue_after == pytest.approx(5)
    assert plan.status.failed_checks == 1


def test_prometheus_unavailable_holds_without_a_failed_check() -> None:
    down = {f"rollouts-{s}": {"request-success-rate": Reading("request-success-rate",
                                                              unavailable="refused")}
            for s in SERVICES}
    plan = run(started(), ReleaseObserved(LANE, rollouts()), CHECK, down)
    assert (plan.status.weight, plan.status.failed_checks) == (10, 0)
    assert plan.status.unavailable_since is not None


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        pytest.param(ReleaseObserved(None, rollouts()), "LaneDeleted", id="lane-deleted"),
        pytest.param(ReleaseObserved(LANE, rollouts()[:2]), "RolloutDeleted",
                     id="rollout-deleted"),
        pytest.param(ReleaseObserved(LANE, rollouts(mockb={"phase": "RollingBack"})),
                     "RolloutFailed", id="rollout-undone-on-its-own"),
        pytest.param(ReleaseObserved(LANE, rollouts(mockb={"phase": "Failed"})),
                     "RolloutFailed", id="rollout-failed-on-its-own"),
        pytest.param(ReleaseObserved(LANE, rollouts(mockb={"revision": "v3",
                                                           "state": "StepUpgrade"})),
                     "RolloutFailed", id="rollout-restarted-on-another-template"),
    ],
)
def test_a_disturbed_release_rolls_the_whole_lane_back(observed, reason) -> None:
    plan = plan_release(started(), observed, NOW)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, reason)
    assert plan.intents == ()
    assert [e.type for e in plan.events] == ["Warning"]


def test_a_deleted_lane_rolls_back_without_waiting_for_routes() -> None:
    rel = advance(started(), plan_release(started(), ReleaseObserved(None, rollouts()), NOW))
    gone = ReleaseObserved(None, rollouts(), routed_weight=None)
    rel = advance(rel, plan_release(rel, gone, NOW))
    plan = plan_release(rel, gone, NOW + timedelta(seconds=2))
    assert {i.intent for i in plan.intents} == {"undo"}


def test_a_restarted_operator_resumes_from_status_alone() -> None:
    rel = started()
    observed = ReleaseObserved(LANE, rollouts())
    plan = run(rel, observed, CHECK, ok())
    stored = LaneRelease.model_validate({**rel.model_dump(by_alias=True, exclude_none=True),
                                        "status": plan.status.to_wire()})
    again = plan_release(stored, observed, CHECK)
    assert again.check is None and again.status == plan.status.model_copy(
        update={"conditions": again.status.conditions})
    promoting = stored.model_copy(update={"status": stored.status.model_copy(update={
        "phase": "Promoting", "weight": 100, "routesSince": NOW.isoformat()})})
    approved = [member(s, annotations={"lanes.dev/approve": "1", "lanes.dev/lane-release": "seed"})
                for s in SERVICES]
    plan = plan_release(promoting, ReleaseObserved(LANE, approved, routed_weight=100),
                        NOW + timedelta(seconds=5))
    assert plan.intents == ()


def test_timed_pause_and_approve_steps() -> None:
    rel = release(steps=[{"weight": 20, "pause": {"duration": 30}}, {"weight": 40, "pause": {}}],
                  analysis=None)
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    rel = advance(rel, plan_release(rel, observed, NOW))
    plan = plan_release(rel, observed, NOW + timedelta(seconds=10))
    assert plan.status.weight == 20 and plan.requeue_after == pytest.approx(20)
    rel = advance(rel, plan_release(rel, observed, NOW + timedelta(seconds=30)))
    assert rel.status.weight == 40
    plan = plan_release(rel, observed, NOW + timedelta(seconds=40))
    assert "waiting for approve" in plan.status.message
    stale = rel.model_copy(update={"metadata": rel.metadata.model_copy(
        update={"annotations": {"lanes.dev/approve": "1"}})})
    plan = plan_release(stale, observed, NOW)
    assert plan.status.weight == 40 and plan.clear == ("lanes.dev/approve",)
    fresh = rel.model_copy(update={"metadata": rel.metadata.model_copy(
        update={"annotations": {"lanes.dev/approve": "2"}})})
    plan = plan_release(fresh, observed, NOW)
    assert (plan.status.phase, plan.status.weight) == ("Promoting", 100)


def test_pause_resume_and_undo_intents() -> None:
    rel = started()
    observed = ReleaseObserved(LANE, rollouts())

    def annotated(**annotations: str) -> LaneRelease:
        return rel.model_copy(update={"metadata": rel.metadata.model_copy(
            update={"annotations": annotations})})

    plan = plan_release(annotated(**{"lanes.dev/pause": "t"}), observed, NOW)
    assert plan.status.paused and plan.clear == ("lanes.dev/pause",)
    rel = advance(rel, plan)
    plan = plan_release(rel, observed, CHECK)
    assert plan.status.phase == "Paused" and plan.check is None
    rel = advance(rel, plan)
    plan = plan_release(annotated(**{"lanes.dev/resume": "t"}), observed, NOW)
    assert not plan.status.paused
    plan = plan_release(annotated(**{"lanes.dev/undo": "t"}), observed, NOW)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, "UndoRequested")


def test_traffic_of_a_release_in_force() -> None:
    rel = started()
    assert entry_weight(rel) == 10
    assert driven_rollouts(rel) == {f"rollouts-{s}" for s in SERVICES}
    assert entry_weight(release()) == 0 and driven_rollouts(release()) == set()


def test_a_member_whose_last_step_promotes_on_its_own_is_refused() -> None:
    rel = release()
    own = [member("mocka", analysis=ANALYSIS), *rollouts()[1:]]
    plan = plan_release(rel, ReleaseObserved(LANE, own), NOW)
    assert plan.status.phase == "Initial" and "rollouts-mocka" in plan.status.message
    assert {c.type: c.reason for c in plan.status.conditions}["Ready"] == "InvalidSpec"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({"steps": []}, "give steps", id="no-steps"),
        pytest.param({"stepWeight": 10}, "either steps or stepWeight", id="both"),
        pytest.param({"steps": [{"weight": 50}, {"weight": 10}]}, "must rise", id="falling"),
        pytest.param({"steps": [{"weight": 0}]}, "greater than or equal to 1", id="zero"),
        pytest.param({"rollouts": ["a", "a"]}, "listed twice", id="twice"),
        pytest.param({"analysis": {**ANALYSIS, "webhooks": [
            {"name": "w", "type": "confirm-rollout", "url": "http://x"}]}},
                "analysis.webhooks 'w': type confirm-rollout", id="confirm-rollout"),
    ],
)
def test_invalid_specs_are_refused(spec, message) -> None:
    with pytest.raises(ValidationError, match=message):
        release(**spec)


def test_step_weight_expands_like_flagger() -> None:
    spec = LaneReleaseSpec.model_validate({"swimLaneRef": {"name": "c"}, "stepWeight": 20,
                                           "maxWeight": 50})
    assert [s.weight for s in spec.all_steps] == [20, 40, 50]


def test_status_view_shows_each_service_metrics_and_the_step() -> None:
    import io

    from rich.console import Console

    from lanes.cli.releasestatus import format_release, release_view, summary_line

    rel = started()
    bad = ok()
    bad["rollouts-mockc"] = {"request-success-rate": Reading("request-success-rate", 62.5)}
    rel = advance(rel, run(rel, ReleaseObserved(LANE, rollouts()), CHECK, bad))
    view = release_view(rel.model_dump(by_alias=True, exclude_none=True, mode="json"))
    assert (view.outcome, view.step, view.weight, view.failed) == ("progressing", 1, 10, 1)
    out = io.StringIO()
    Console(file=out, width=120).print(format_release(view))
    text = out.getvalue()
    assert "mockc-v1" in text and "62.5" in text and ">= 99" in text
    assert "weight 10%" in summary_line(view) and "failed 1/2" in summary_line(view)


@pytest.mark.parametrize(
    ("phase", "intent", "refused"),
    [
        ("Promoting", "undo", "nothing to undo"),
        ("Succeeded", "pause", "cannot be paused"),
        ("Progressing", "resume", "not paused"),
        ("Waiting", "approve", "no step waiting"),
        ("Progressing", "approve", "continues on its own"),
    ],
)
def test_release_intents_refused_with_a_reason(phase, intent, refused) -> None:
    from lanes.rollout.lanerelease import check_release_intent

    rel = release(status={"phase": phase, "currentStepIndex": 1})
    assert refused in check_release_intent(rel, intent)
    assert check_release_intent(release(status={"phase": "Progressing"}), "undo") is None


def test_the_lane_demo_classifies_every_untagged_answer() -> None:
    from lanes_testbed.cli.lanestory import Tally, missing, share_ok

    hop = "-> {app}(version: {v}, ip: 10.0.0.{n})"
    chain = lambda *vs: "".join(hop.format(app=a, v=v, n=i) for i, (a, v) in  # noqa: E731
                                enumerate(zip(("mocka", "mockb", "mockc"), vs)))
    tally = Tally()
    tally.record("untagged", 200, chain("v2", "v2", "v2"), 10, "v2")
    tally.record("untagged", 200, chain("v1", "v1", "v1"), 10, "v2")
    tally.record("untagged", 200, chain("v2", "v1", "v1"), 10, "v2")
    tally.record("untagged", 500, "injected failure", 10, "v2")
    tally.record("untagged", 503, "no healthy upstream", None, "v2")
    tally.record("canary", 500, "injected failure", 10, "v2")
    assert tally.by_weight == {10: [2, 3]}
    assert tally.mixed == ["v2 -> v1 -> v1"]
    assert tally.base_errors == ["untagged: HTTP 503 no healthy upstream"]
    assert tally.lane_errors == 2
    wrong = missing(("True", "Promoted"), ("False", "AnalysisFailed"), tally)
    assert any("mixed versions" in w for w in wrong) and any("base got an error" in w or
                                                             "served by base" in w for w in wrong)
    assert share_ok(10, 10, 100)[0] and not share_ok(10, 40, 100)[0]
    assert share_ok(50, 30, 40)[0] and not share_ok(50, 5, 200)[0]


def test_a_rollout_a_lane_release_holds_keeps_its_canary_once_its_base_rolled() -> None:
    from lanes.rollout import DeleteCanary, plan_step

    from .rollout_fixtures import NOW as ROLLOUT_NOW
    from .rollout_fixtures import V2, base, canary, observed, status
    from .rollout_sim import rollout as sim_rollout

    promoting = status("Promoting", "Completed")
    held = sim_rollout().model_copy(update={"status": promoting})
    held = held.model_copy(update={"metadata": held.metadata.model_copy(
        update={"annotations": {"lanes.dev/lane-release": "seed"}})})
    plan = plan_step(held, observed(base(V2), canary()), ROLLOUT_NOW)
    assert plan.status.phase == "Promoting"
    assert not any(isinstance(a, DeleteCanary) for a in plan.actions)
    assert "lanerelease/seed" in plan.status.message
    free = sim_rollout().model_copy(update={"status": promoting})
    plan = plan_step(free, observed(base(V2), canary()), ROLLOUT_NOW)
    assert plan.status.phase == "Healthy"
    assert any(isinstance(a, DeleteCanary) for a in plan.actions)


def test_a_bad_lane_release_file_is_refused_with_exit_2_naming_the_field(tmp_path) -> None:
    from .test_cli import invoke, sample_copy

    sample = sample_copy(tmp_path)
    (sample / "release.yaml").write_text(
        "apiVersion: lanes.dev/v1alpha1\nkind: LaneRelease\n"
        "metadata: {name: seed, namespace: default}\n"
        "spec:\n  swimLaneRef: {name: canary}\n  steps: [{weight: 50}, {weight: 10}]\n")
    result = invoke("render", "-f", sample)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "LaneRelease/seed: spec.steps: step weights must rise" in result.stderr


def test_an_invalid_lane_release_gets_a_condition_naming_the_field() -> None:
    from pydantic import ValidationError as PydanticError

    from lanes.operator.lanereleases import invalid_status

    body = {"metadata": {"name": "seed", "namespace": "default", "generation": 3},
            "spec": {"swimLaneRef": {"name": "canary"}, "steps": [{"weight": 0}]}}
    with pytest.raises(PydanticError) as error:
        LaneRelease.model_validate(body)
    status = invalid_status(body, error.value, NOW)
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.steps[0].weight" in ready["message"]
    assert status["observedGeneration"] == 3


def test_a_lane_takes_one_release_at_a_time() -> None:
    busy = started()
    other = release().model_copy(update={"metadata": release().metadata.model_copy(
        update={"name": "next"}), "status": None})
    other = advance(other, plan_release(other, ReleaseObserved(LANE, rollouts()), NOW))
    plan = plan_release(other, ReleaseObserved(LANE, rollouts(), others=[busy]), NOW)
    assert plan.status.phase == "Waiting" and "lanerelease/seed" in plan.status.message
    done = busy.model_copy(update={"status": busy.status.model_copy(update={"phase": "Succeeded"})})
    plan = plan_release(other, ReleaseObserved(LANE, rollouts(), others=[done]), NOW)
    assert plan.status.phase == "Progressing"


def hooked(*hooks: dict, **spec: object) -> LaneRelease:
    return release(analysis={**ANALYSIS, "webhooks": [
        {"url": f"http://hooks/{h['name']}", **h} for h in hooks]}, **spec)


def answer(name: str, ok: bool, kind: str) -> HookResult:
    return HookResult(name, ok, "POST answered " + ("200" if ok else "500"), kind)


def test_a_failing_pre_rollout_hook_aborts_before_any_traffic_enters_the_lane() -> None:
    rel = hooked({"name": "smoke", "type": "pre-rollout"})
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    plan = plan_release(rel, observed, NOW)
    assert [(c.hook.name, c.phase) for c in plan.hooks_due] == [("smoke", "Initializing")]
    assert (plan.status.phase, plan.status.weight) == ("Waiting", 0)
    assert release_checksum(rel.status) == "" and release_checksum(plan.status), \
        "the payload's checksum is the planned status's, which names the member revisions"
    failed = plan_release(rel, observed.with_hooks([answer("smoke", False, "pre-rollout")]), NOW)
    assert (failed.status.phase, failed.status.weight, failed.status.reason) == (
        "RollingBack", 0, "PreRolloutFailed")
    assert failed.status.current_step_index == 0
    assert [m.name for m in failed.status.rollouts] == [f"rollouts-{s}" for s in SERVICES]
    passed = plan_release(rel, observed.with_hooks([answer("smoke", True, "pre-rollout")]), NOW)
    assert (passed.status.phase, passed.status.weight) == ("Progressing", 10)
    assert plan_release(advance(rel, passed), observed, CHECK).hooks_due == ()


def test_a_failing_rollout_hook_is_a_failed_check_of_the_lane() -> None:
    rel = hooked({"name": "load", "type": "rollout"})
    rel = advance(rel, plan_release(rel, ReleaseObserved(LANE, rollouts()), NOW))
    rel = advance(rel, plan_release(rel, ReleaseObserved(LANE, rollouts()), NOW))
    observed = ReleaseObserved(LANE, rollouts())
    plan = plan_release(rel, observed, CHECK)
    assert plan.check is not None and [c.hook.name for c in plan.hooks_due] == ["load"]
    bad = observed.with_readings(ok()).with_hooks([answer("load", False, "rollout")])
    plan = plan_release(rel, bad, CHECK)
    assert (plan.status.weight, plan.status.failed_checks) == (10, 1)
    assert "webhook load" in plan.status.message
    plan = plan_release(advance(rel, plan), bad, CHECK + timedelta(seconds=10))
    assert (plan.status.phase, plan.status.reason) == ("RollingBack", "AnalysisFailed")
    good = observed.with_readings(ok()).with_hooks([answer("load", True, "rollout")])
    assert plan_release(rel, good, CHECK).status.weight == 25


def test_a_rollback_hook_answering_2xx_rolls_the_lane_back_at_once() -> None:
    rel = hooked({"name": "stop", "type": "rollback"})
    rel = advance(rel, plan_release(rel, ReleaseObserved(LANE, rollouts()), NOW))
    rel = advance(rel, plan_release(rel, ReleaseObserved(LANE, rollouts()), NOW))
    observed = ReleaseObserved(LANE, rollouts()).with_readings(ok())
    quiet = plan_release(rel, observed.with_hooks([answer("stop", False, "rollback")]), CHECK)
    assert quiet.status.weight == 25
    plan = plan_release(rel, observed.with_hooks([answer("stop", True, "rollback")]), CHECK)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, "RolledBackByWebhook")
    assert "stop" in plan.status.message


def test_confirm_promotion_gates_the_promotion_and_post_rollout_reports_the_end() -> None:
    rel = hooked({"name": "gate", "type": "confirm-promotion"},
                 {"name": "done", "type": "post-rollout"}, {"name": "chat", "type": "event"},
                 steps=[{"weight": 10}])
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    rel = advance(rel, plan_release(rel, observed, NOW))
    assert [h.name for h in plan_release(rel, observed, NOW).event_hooks] == ["chat"]
    checked = observed.with_readings(ok())
    plan = plan_release(rel, checked, CHECK)
    assert [c.hook.name for c in plan.hooks_due] == ["gate"]
    closed = plan_release(rel, checked.with_hooks([answer("gate", False, "confirm-promotion")]),
                          CHECK)
    assert (closed.status.phase, closed.status.weight) == ("Progressing", 10)
    assert "confirm-promotion" in closed.status.message
    rel = advance(rel, closed)
    assert plan_release(rel, observed, CHECK + timedelta(seconds=5)).hooks_due == ()
    later = CHECK + timedelta(seconds=10)
    opened = plan_release(rel, observed.with_readings(ok()).with_hooks(
        [answer("gate", True, "confirm-promotion")]), later)
    assert (opened.status.phase, opened.status.weight) == ("Promoting", 100)
    ending = advance(rel, opened).model_copy(update={"status": opened.status.model_copy(
        update={"weight": 0, "routes_since": NOW.isoformat()})})
    done = ReleaseObserved(LANE, [member(s, phase="Healthy", stable="v2") for s in SERVICES],
                           routed_weight=0)
    plan = plan_release(ending, done, later)
    assert plan.status.phase == "Succeeded"
    assert [(c.hook.name, c.phase) for c in plan.hooks_due] == [("done", "Succeeded")]
    plan = plan_release(ending, done.with_hooks([answer("done", True, "post-rollout")]), later)
    assert "post-rollout" in plan.status.hooks_done
    assert any(e.reason == "PostRollout" for e in plan.events)
    assert plan_release(advance(ending, plan), done, later).hooks_due == ()


def settle(rel: LaneRelease, observed: ReleaseObserved, now: datetime) -> LaneRelease:
    """Plan once the gateway routes `observed.routed_weight`: the settling starts."""
    rel = advance(rel, plan_release(rel, observed, now))
    assert rel.status.routes_since is not None
    return rel


def test_a_member_deleted_mid_release_keeps_its_canary_until_no_request_enters_the_lane() -> None:
    rel = started()
    going = rollouts(mockb={"deleted": True})
    assert canary_holder([rel], "rollouts-mockb", NOW) == "seed"
    plan = plan_release(rel, ReleaseObserved(LANE, going, routed_weight=10), NOW)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, "RolloutDeleted")
    assert "rollouts-mockb" in plan.status.message and plan.intents == ()
    rel = advance(rel, plan)
    assert canary_holder([rel], "rollouts-mockb", NOW) == "seed", "weight 0 is not in force yet"
    still = plan_release(rel, ReleaseObserved(LANE, going, routed_weight=10), NOW)
    assert still.intents == () and still.status.routes_since is None
    rel = settle(rel, ReleaseObserved(LANE, going, routed_weight=0), NOW + timedelta(seconds=1))
    assert canary_holder([rel], "rollouts-mockb", NOW + timedelta(seconds=2)) == "seed"
    later = NOW + timedelta(seconds=3)
    assert canary_holder([rel], "rollouts-mockb", later) is None
    plan = plan_release(rel, ReleaseObserved(LANE, going, routed_weight=0), later)
    assert {(i.rollout, i.intent) for i in plan.intents} == {
        ("rollouts-mocka", "undo"), ("rollouts-mockc", "undo")}
    assert {m.name: m.undone for m in plan.status.rollouts} == {
        f"rollouts-{s}": True for s in SERVICES}
    assert "rollouts-mockb" in plan.status.message, "waits for the deleted one to be gone"
    rel = advance(rel, plan)
    done = [member(s, phase="Healthy") for s in ("mocka", "mockc")]
    plan = plan_release(rel, ReleaseObserved(LANE, done, routed_weight=0), later)
    assert (plan.status.phase, plan.status.reason) == ("Failed", "RolloutDeleted")
    assert "workloadrollout/rollouts-mockb deleted" in plan.status.message
    assert {c.type: (c.status, c.reason) for c in plan.status.conditions}["Succeeded"] == (
        "False", "RolloutDeleted")


def promoting(weight: int = 100, promoted: bool = False) -> LaneRelease:
    rel = started()
    return rel.model_copy(update={"status": rel.status.model_copy(update={
        "phase": "Promoting", "weight": weight, "current_step_index": 3,
        "routes_since": NOW.isoformat(),
        "rollouts": [m.model_copy(update={"promoted": promoted}) for m in rel.status.rollouts]})})


def test_a_member_deleted_before_the_approvals_rolls_the_lane_back() -> None:
    going = rollouts(mockc={"deleted": True})
    plan = plan_release(promoting(), ReleaseObserved(LANE, going, routed_weight=90), NOW)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "RollingBack", 0, "RolloutDeleted")
    assert plan.intents == ()


def test_a_member_deleted_after_it_took_the_approval_counts_as_promoted() -> None:
    held = {"lanes.dev/lane-release": "seed"}
    rolling = [member(s, phase="Promoting", state="Completed", annotations=held,
                      deleted=s == "mockb") for s in SERVICES]
    rel = promoting(promoted=True)
    later = NOW + timedelta(seconds=5)
    waiting = plan_release(rel, ReleaseObserved(
        LANE, rolling, routed_weight=100,
        rolled_out=frozenset({"rollouts-mocka", "rollouts-mockc"})), later)
    assert waiting.status.weight == 100 and "rollouts-mockb" in waiting.status.message
    rolled = ReleaseObserved(LANE, rolling, routed_weight=100,
                             rolled_out=frozenset(f"rollouts-{s}" for s in SERVICES))
    plan = plan_release(rel, rolled, later)
    assert (plan.status.weight, plan.intents) == (0, ())
    rel = advance(rel, plan)
    assert canary_holder([rel], "rollouts-mockb", later) == "seed"
    back = ReleaseObserved(LANE, rolling, routed_weight=0, rolled_out=rolled.rolled_out)
    rel = settle(rel, back, later)
    plan = plan_release(rel, back, later + timedelta(seconds=2))
    assert canary_holder([rel], "rollouts-mockb", later + timedelta(seconds=2)) is None
    assert {i.rollout for i in plan.intents} == {"rollouts-mocka", "rollouts-mockc"}
    assert plan.status.phase == "Promoting"
    done = [member(s, phase="Healthy", stable="v2") for s in ("mocka", "mockc")]
    plan = plan_release(advance(rel, plan), ReleaseObserved(LANE, done, routed_weight=0),
                        later + timedelta(seconds=3))
    assert plan.status.phase == "Succeeded"


def test_a_member_deleted_before_it_took_its_approval_leaves_the_others_to_finish() -> None:
    approved = {"lanes.dev/approve": "1", "lanes.dev/lane-release": "seed"}
    mixed = [member("mocka", phase="Promoting", state="Completed", annotations=approved),
             member("mockb", annotations=approved, deleted=True),
             member("mockc", phase="Promoting", state="Completed", annotations=approved)]
    rel = promoting(promoted=True)
    later = NOW + timedelta(seconds=5)
    rolled = ReleaseObserved(LANE, mixed, routed_weight=100,
                             rolled_out=frozenset({"rollouts-mocka", "rollouts-mockc"}))
    plan = plan_release(rel, rolled, later)
    assert {m.name: m.deleted for m in plan.status.rollouts} == {
        "rollouts-mocka": False, "rollouts-mockb": True, "rollouts-mockc": False}
    assert [e.reason for e in plan.events][0] == "RolloutDeleted"
    assert plan.status.weight == 0, "the others run the new version"
    rel = settle(advance(rel, plan), ReleaseObserved(LANE, mixed, routed_weight=0), later)
    done = [member(s, phase="Healthy", stable="v2") for s in ("mocka", "mockc")]
    plan = plan_release(rel, ReleaseObserved(LANE, done, routed_weight=0),
                        later + timedelta(seconds=2))
    assert (plan.status.phase, plan.status.reason) == ("Failed", "RolloutDeleted")
    assert "rollouts-mockb" in plan.status.message


def test_a_member_deleted_while_waiting_is_waited_for_and_not_held() -> None:
    rel = advance(release(), plan_release(release(), ReleaseObserved(LANE, rollouts()), NOW))
    plan = plan_release(rel, ReleaseObserved(LANE, rollouts(mocka={"deleted": True})), NOW)
    assert plan.status.phase == "Waiting" and "being deleted" in plan.status.message
    assert canary_holder([advance(rel, plan)], "rollouts-mocka", NOW) is None


@pytest.mark.parametrize(
    ("phase", "weight", "since", "held"),
    [
        pytest.param("Progressing", 10, None, True, id="progressing"),
        pytest.param("Paused", 10, None, True, id="paused"),
        pytest.param("Promoting", 100, NOW, True, id="promoting-at-100"),
        pytest.param("RollingBack", 0, None, True, id="weight-0-not-yet-routed"),
        pytest.param("RollingBack", 0, NOW, True, id="weight-0-settling"),
        pytest.param("RollingBack", 0, NOW - timedelta(seconds=2), False, id="weight-0-settled"),
        pytest.param("Waiting", 0, None, False, id="waiting"),
        pytest.param("Failed", 0, None, False, id="ended"),
    ],
)
def test_which_release_holds_a_members_canary(phase, weight, since, held) -> None:
    rel = started()
    rel = rel.model_copy(update={"status": rel.status.model_copy(update={
        "phase": phase, "weight": weight, "routes_since": since and since.isoformat()})})
    assert canary_holder([rel], "rollouts-mocka", NOW) == ("seed" if held else None)
    assert canary_holder([rel], "rollouts-other", NOW) is None


def test_a_release_on_an_asm_group_is_refused_naming_the_field() -> None:
    rel = release()
    asm = ReleaseObserved(LANE, rollouts(), flavour="asm")
    plan = plan_release(rel, asm, NOW)
    assert (plan.status.phase, plan.status.weight, plan.status.reason) == (
        "Initial", 0, "UnsupportedFlavour")
    [ready] = [c for c in plan.status.conditions if c.type == "Ready"]
    assert (ready.status, ready.reason) == ("False", "UnsupportedFlavour")
    assert "SwimLaneGroup g spec.flavour: asm renders no entry weight" in ready.message
    assert [e.reason for e in plan.events] == ["UnsupportedFlavour"]
    again = plan_release(advance(rel, plan), asm, NOW)
    assert again.events == () and again.intents == ()
    waiting = advance(release(), plan_release(release(), ReleaseObserved(LANE, rollouts()), NOW))
    assert plan_release(waiting, asm, NOW).status.reason == "UnsupportedFlavour"
    istio = plan_release(advance(rel, plan), ReleaseObserved(LANE, rollouts(), flavour="istio"),
                         NOW)
    assert istio.status.phase == "Waiting"
