"""Metric analysis in a WorkloadRollout's steps: checks asked for when due, judged, and acted on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lanes.analysis.verdict import HookResult, Reading
from lanes.api.analysis import Analysis, AnalysisStatus
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout import Event, Plan, check_intent, plan_step
from lanes.rollout.checks import analysis_at
from lanes.rollout.endings import ROUTES_SETTLE_SECONDS
from lanes.rollout.status import parse_time

from .rollout_fixtures import (
    LONG_AGO,
    NOW,
    V1,
    V2,
    V3,
    Case,
    canary,
    case_rollout,
    observed,
    status,
)
from .rollout_sim import World, deployment, image_of, rollout

ANALYSIS = {
    "interval": "30s",
    "threshold": 3,
    "metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
        {"name": "request-duration", "thresholdRange": {"max": 500}},
    ],
}
RATE, DURATION = "request-success-rate", "request-duration"
Metrics = Callable[[World, Analysis], dict[str, Reading]]


def readings(rate: float | None = 99.9, p99: float = 120.0, down: str | None = None) -> dict:
    """What the two metrics read; `down` says Prometheus did not answer."""
    if down is not None:
        return {RATE: Reading(RATE, unavailable=down), DURATION: Reading(DURATION, unavailable=down)}
    return {RATE: Reading(RATE, rate), DURATION: Reading(DURATION, p99)}


def always(**kwargs) -> Metrics:
    """Metrics that read the same at every check."""
    return lambda world, analysis: readings(**kwargs)


def in_turn(*answers: dict) -> Metrics:
    """Metrics that read each answer in turn, the last one from then on."""
    queue = list(answers)
    return lambda world, analysis: queue.pop(0) if len(queue) > 1 else queue[0]


def analysed(steps: list[dict], **canary_spec) -> WorkloadRollout:
    """A rollout whose release is under ANALYSIS, unless the spec gives its own."""
    return rollout(steps=steps, **{"analysis": ANALYSIS, **canary_spec})


def started(ro: WorkloadRollout, metrics: Metrics | None = None, replicas: int = 4) -> World:
    """A world whose base moved to v2 and whose canary is starting at step 1."""
    world = World.of(deployment(replicas=replicas), ro, metrics=metrics or always())
    world.reconcile()
    world.set_image(V2)
    world.reconcile()
    return world


def wait(world: World) -> Plan:
    """One reconcile, then the clock moves to when the plan asked to be woken."""
    plan = world.reconcile(advance=0)
    world.now += timedelta(seconds=plan.requeue_after or 1)
    return plan


def run_until(world: World, until: Callable[[World], bool], limit: int = 40) -> None:
    """`wait` until `until(world)` holds."""
    for _ in range(limit):
        if until(world):
            return
        wait(world)
    raise AssertionError(f"not reached after {limit} reconciles: {world.status}")


def first_check(world: World) -> None:
    """From a step whose canary pods are ready: `wait` until the step's first check, and
    check it came one interval after the step started (its `lastUpdateTime`), never sooner."""
    at = world.status.canary_status
    since = parse_time(at.last_update_time)
    interval = analysis_at(world.rollout, at.current_step_index).interval_seconds
    made = len(world.checks)
    run_until(world, lambda w: len(w.checks) > made)
    assert world.checks[-1] == since + timedelta(seconds=interval), (
        f"step {at.current_step_index}'s first check at {world.checks[-1]}, "
        f"not an interval after {since}"
    )


def state(world: World) -> tuple[str, int, str | None]:
    canary_status = world.status.canary_status
    return world.status.phase, canary_status.current_step_index, canary_status.current_step_state


def conditions(world: World) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in world.status.conditions}


def reasons(events: list[Event]) -> list[str]:
    return [e.reason for e in events]


def base_pods(world: World) -> set[str]:
    return world.pods_of(world.base_name)


def test_a_healthy_release_advances_on_passing_checks_and_promotes() -> None:
    world = started(analysed([{"replicas": 1, "traffic": "10%"}, {"replicas": "50%"}]))
    assert state(world) == ("Progressing", 1, "StepUpgrade")
    assert world.checks == [], "no check before the step's canary pods are ready"

    world.reconcile()
    ready_at = world.now - timedelta(seconds=1)
    assert state(world) == ("Progressing", 1, "StepPaused")
    assert "waiting for the first analysis check" in world.status.message

    early = world.reconcile(advance=0)
    assert world.checks == [], "the first check waits an interval from the step's start"
    assert early.check is None and early.actions == () and early.requeue_after == 29
    world.now += timedelta(seconds=early.requeue_after)
    world.reconcile()
    assert world.checks == [ready_at + timedelta(seconds=30)]
    assert state(world) == ("Progressing", 1, "StepReady")
    assert world.status.message == "step 1/2: analysis passed"
    assert (world.status.analysis.phase, world.status.analysis.step) == ("Passed", 1)

    world.reconcile()
    world.reconcile()
    assert state(world) == ("Progressing", 2, "StepPaused")
    step_2_at = parse_time(world.status.canary_status.last_update_time)
    quiet = wait(world)
    assert len(world.checks) == 1, "the next check waits for the interval"
    assert quiet.check is None and quiet.actions == ()
    assert 0 < quiet.requeue_after <= 30
    assert world.status.message == (
        "step 2/2: 2/2 canary pod(s) available; waiting for the first analysis check; "
        "continues once an analysis check passes"
    )

    wait(world)
    assert world.checks[1] == step_2_at + timedelta(seconds=30), "an interval into step 2"
    assert state(world) == ("Progressing", 2, "StepReady")
    world.run(lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")
    assert image_of(world.base) == V2 and world.canary is None
    assert (world.status.analysis.checks, world.status.analysis.failed_checks) == (2, 0)


def test_a_failing_metric_halts_then_rolls_back_at_the_threshold() -> None:
    world = started(analysed([{"replicas": 1}, {"replicas": "50%"}]), always(rate=88.2))
    v1_pods = base_pods(world)
    world.reconcile()
    world.events.clear()

    for failed in (1, 2):
        if failed == 1:
            first_check(world)
        else:
            wait(world)
        assert state(world) == ("Progressing", 1, "StepPaused")
        assert world.status.analysis.failed_checks == failed
        halt = f"Halt advancement: request-success-rate 88.2% < 99% (failed checks {failed}/3)"
        assert [(e.type, e.reason, e.message) for e in world.events] == [
            ("Warning", "HaltAdvancement", halt)
        ]
        assert halt in world.status.message
        world.events.clear()

    wait(world)
    assert world.status.phase == "RollingBack"
    assert reasons(world.events) == ["AnalysisFailed", "RollingBack"]
    assert world.events[0].message == (
        "Rolling back: failed checks threshold reached 3 (request-success-rate 88.2% < 99%)"
    )
    assert world.canary is None
    world.run(lambda w: w.status.phase == "Healthy")
    assert base_pods(world) == v1_pods, "the base is never restarted"
    assert image_of(world.base) == V1 and world.base["spec"]["paused"] is False
    assert conditions(world) == {
        "Progressing": ("False", "Cancelled"),
        "Succeeded": ("False", "AnalysisFailed"),
    }
    message = next(c.message for c in world.status.conditions if c.type == "Succeeded")
    assert "request-success-rate 88.2% < 99% (range >= 99)" in message
    assert "analysis failed 3 check(s)" in message
    assert reasons(world.events)[-1] == "RolledBack"
    assert len(world.checks) == 3
    world.reconcile()
    assert "request-success-rate 88.2% < 99%" in world.status.message, "kept once settled"


def test_a_canary_that_got_untagged_traffic_outlives_the_rollback_until_routes_settle() -> None:
    world = started(analysed([{"replicas": 1, "traffic": "20%"}, {"replicas": "50%"}]),
                    always(rate=88.2))
    world.reconcile()
    run_until(world, lambda w: w.status.phase == "RollingBack")
    assert world.canary is not None, "the routes still split traffic to it as the phase moves"
    began = parse_time(world.status.canary_status.last_update_time)
    held = world.reconcile(advance=0)
    assert world.canary is not None and 0 < held.requeue_after <= ROUTES_SETTLE_SECONDS
    world.now = began + timedelta(seconds=ROUTES_SETTLE_SECONDS)
    world.reconcile()
    assert world.canary is None, "deleted once the routes back to base have settled"
    world.run(lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("False", "AnalysisFailed")


def test_a_failed_check_blocks_advance_until_one_passes_and_is_not_forgotten() -> None:
    metrics = in_turn(readings(rate=50), readings())
    world = started(analysed([{"replicas": 1}, {"replicas": "50%"}]), metrics)
    world.reconcile()
    first_check(world)
    assert state(world) == ("Progressing", 1, "StepPaused")
    wait(world)
    assert state(world) == ("Progressing", 1, "StepReady")
    assert (world.status.analysis.failed_checks, world.status.analysis.checks) == (1, 2)


def test_prometheus_unavailable_holds_without_failed_checks_and_recovers() -> None:
    metrics = in_turn(readings(down="connection refused"), readings(down="connection refused"),
                      readings())
    world = started(analysed([{"replicas": 1}]), metrics)
    world.reconcile()
    world.events.clear()
    assert "MetricsAvailable" not in conditions(world), "only an outage brings the condition"
    first_check(world)
    assert state(world) == ("Progressing", 1, "StepPaused")
    assert world.status.analysis.phase == "Holding"
    assert world.status.analysis.failed_checks == 0
    assert reasons(world.events) == ["MetricsUnavailable"]
    assert conditions(world)["MetricsAvailable"] == ("False", "PrometheusUnavailable")
    held = next(c for c in world.status.conditions if c.type == "MetricsAvailable")
    assert "Holding: Prometheus unavailable (connection refused)" in held.message
    wait(world)
    assert world.status.analysis.phase == "Holding"
    assert reasons(world.events) == ["MetricsUnavailable"], "the hold is announced once"
    again = next(c for c in world.status.conditions if c.type == "MetricsAvailable")
    assert again.last_transition_time == held.last_transition_time
    wait(world)
    assert state(world) == ("Progressing", 1, "StepReady")
    assert world.status.analysis.unavailable_since is None
    assert conditions(world)["MetricsAvailable"] == ("True", "PrometheusAnswered")
    world.run(lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")


def test_prometheus_unavailable_past_the_deadline_rolls_back_as_unavailable() -> None:
    world = started(analysed([{"replicas": 1}]), always(down="timeout"))
    v1_pods = base_pods(world)
    world.reconcile()
    run_until(world, lambda w: w.status.phase == "RollingBack")
    assert "AnalysisUnavailable" in reasons(world.events)
    assert "HaltAdvancement" not in reasons(world.events)
    world.run(lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("False", "AnalysisUnavailable")
    assert conditions(world)["MetricsAvailable"] == ("False", "PrometheusUnavailable")
    assert "Prometheus unavailable" in world.status.message
    assert base_pods(world) == v1_pods


def test_pause_given_as_empty_still_waits_for_approve_after_a_pass() -> None:
    world = started(analysed([{"replicas": 1, "pause": {}}, {"replicas": "50%"}]))
    world.reconcile()
    assert state(world) == ("Paused", 1, "StepPaused")
    refused = check_intent(world.rollout, "approve")
    assert refused is not None and "its analysis has not passed (no check made yet)" in refused

    first_check(world)
    assert len(world.checks) == 1 and world.status.analysis.phase == "Passed"
    assert state(world) == ("Paused", 1, "StepPaused")
    assert world.status.message.endswith("check passed: request-success-rate 99.9%, "
                                         "request-duration 120ms; approve to continue to step 2/2")
    for _ in range(3):
        wait(world)
    assert state(world) == ("Paused", 1, "StepPaused"), "checks go on; the step waits for approve"

    assert check_intent(world.rollout, "approve") is None
    world.request("approve")
    world.reconcile()
    assert state(world) == ("Progressing", 1, "StepReady")


def test_approve_is_refused_while_the_step_is_halted() -> None:
    world = started(analysed([{"replicas": 1, "pause": {}}]), always(rate=10))
    world.reconcile()
    first_check(world)
    refused = check_intent(world.rollout, "approve")
    assert refused is not None and "Halt advancement: request-success-rate 10% < 99%" in refused
    world.request("approve")
    world.reconcile()
    assert state(world) == ("Paused", 1, "StepPaused")
    assert "IntentRejected" in reasons(world.events)


def test_a_timed_pause_needs_both_its_duration_and_a_pass() -> None:
    metrics = in_turn(readings(), readings(rate=1), readings(rate=1), readings())
    world = started(analysed([{"replicas": 1, "pause": {"duration": 75}}, {"replicas": "50%"}]),
                    metrics)
    world.reconcile()
    ready_at = world.now - timedelta(seconds=1)
    first_check(world)
    assert world.status.analysis.phase == "Passed"
    assert state(world) == ("Progressing", 1, "StepPaused"), "passed, but the pause runs on"
    while world.now < ready_at + timedelta(seconds=75):
        wait(world)
    assert len(world.checks) == 2, "checks at 30 s (passed) and 60 s (failed)"
    assert state(world) == ("Progressing", 1, "StepPaused"), "the pause is over, the check failed"
    run_until(world, lambda w: w.status.canary_status.current_step_state == "StepReady")
    assert world.status.analysis.phase == "Passed"
    assert world.status.analysis.failed_checks == 2
    assert world.status.message.endswith("pause of 75s is over and analysis passed")


def test_a_restart_mid_analysis_neither_forgets_nor_doubles_failed_checks() -> None:
    world = started(analysed([{"replicas": 1}]), always(rate=50))
    world.reconcile()
    first_check(world)
    assert world.status.analysis.failed_checks == 1

    checked = world.checks[-1]
    stored = WorkloadRollout.model_validate(world.rollout.to_wire())
    again = plan_step(stored, world.observed().with_check(readings(rate=50)), checked)
    assert again.status.analysis == world.status.analysis
    assert again.check is None and again.actions == ()

    world.rollout = stored
    world.reconcile(crash_after=0)
    assert world.status.analysis.failed_checks == 1, "a check whose status was lost is not kept"
    world.reconcile()
    assert world.status.analysis.failed_checks == 2
    assert world.status.analysis.checks == 2


def test_a_step_analysis_overrides_the_release_analysis_for_that_step() -> None:
    loose = {**ANALYSIS, "metrics": [{"name": RATE, "thresholdRange": {"min": 50}}]}
    strict = {"interval": "10s", "threshold": 1,
              "metrics": [{"name": RATE, "thresholdRange": {"min": 99}}]}
    ro = analysed([{"replicas": 1}, {"replicas": "50%", "analysis": strict}], analysis=loose)
    world = started(ro, always(rate=90))
    run_until(world, lambda w: w.status.phase == "RollingBack")
    assert world.status.canary_status.current_step_index == 2, "step 1 passed at >= 50"
    analysis = world.status.analysis
    assert (analysis.step, analysis.checks, analysis.failed_checks) == (2, 2, 1)
    assert "request-success-rate 90% < 99%" in analysis.message


def test_the_step_under_its_own_analysis_is_checked_against_it() -> None:
    own = {"interval": "10s", "threshold": 1,
           "metrics": [{"name": RATE, "thresholdRange": {"min": 50}}]}
    ro = analysed([{"replicas": 1}, {"replicas": "50%", "analysis": own}])
    before = status("Progressing", "StepPaused", index=2)
    plan = plan_step(ro.model_copy(update={"status": before}),
                     observed(canary_obj=canary(replicas=2)), NOW)
    assert plan.check == Analysis.model_validate(own)
    seen = observed(canary_obj=canary(replicas=2)).with_check({RATE: Reading(RATE, 90)})
    judged = plan_step(ro.model_copy(update={"status": before}), seen, NOW)
    assert judged.status.canary_status.current_step_state == "StepReady"
    assert judged.status.analysis.step == 2


@pytest.mark.parametrize(
    ("started_ago", "due_in"), [(10, 20.0), (29, 1.0), (30, 0.0), (601, 0.0)],
    ids=["10s-in", "29s-in", "30s-in", "long-ago"],
)
def test_the_first_check_of_a_step_is_due_an_interval_after_the_step_started(
    started_ago: int, due_in: float
) -> None:
    before = status("Progressing", "StepPaused", last=NOW - timedelta(seconds=started_ago))
    ro = analysed([{"replicas": 1}]).model_copy(update={"status": before})
    plan = plan_step(ro, observed(canary_obj=canary()), NOW)
    assert plan.check_due == (due_in == 0)
    assert plan.requeue_after == (due_in or 30.0)
    early = observed(canary_obj=canary()).with_check(readings())
    judged = plan_step(ro, early, NOW)
    assert (judged.status.analysis is not None) == (due_in == 0), "readings too early are not judged"


def test_a_check_at_the_previous_step_does_not_make_the_next_step_due_early() -> None:
    before = status("Progressing", "StepPaused", index=2, last=NOW - timedelta(seconds=5))
    analysis = AnalysisStatus(phase="Passed", checks=1, step=1,
                              last_check_time=(NOW - timedelta(seconds=40)).isoformat())
    ro = analysed([{"replicas": 1}, {"replicas": 2}]).model_copy(
        update={"status": before.model_copy(update={"analysis": analysis})})
    plan = plan_step(ro, observed(canary_obj=canary(replicas=2)), NOW)
    assert plan.check is None and plan.requeue_after == 25


def test_a_missing_reading_is_a_failed_query_not_a_crash() -> None:
    before = status("Progressing", "StepPaused", last=LONG_AGO)
    ro = analysed([{"replicas": 1}]).model_copy(update={"status": before})
    seen = observed(canary_obj=canary()).with_check({RATE: Reading(RATE, 100)})
    plan = plan_step(ro, seen, NOW)
    assert plan.status.analysis.failed_checks == 1
    assert "request-duration: query failed: no reading was supplied" in plan.status.message


def test_a_failing_rollout_webhook_halts_the_step() -> None:
    world = started(analysed([{"replicas": 1}]))
    world.hooks = lambda w, a: [HookResult("load-test", False, "HTTP 500")]
    world.reconcile()
    first_check(world)
    assert state(world) == ("Progressing", 1, "StepPaused")
    assert "webhook load-test: HTTP 500" in world.status.analysis.message


def test_a_paused_rollout_makes_no_check() -> None:
    world = started(analysed([{"replicas": 1}]))
    world.reconcile()
    world.request("pause")
    world.reconcile()
    assert world.status.phase == "Paused"
    for _ in range(3):
        plan = wait(world)
        assert plan.check is None
    assert world.checks == []
    world.request("resume")
    world.reconcile()
    first_check(world)
    assert len(world.checks) == 1, "an interval after the resume, as a timed pause restarts"


def test_a_new_release_starts_with_a_fresh_analysis() -> None:
    world = started(analysed([{"replicas": 1}]), always(rate=50))
    world.reconcile()
    first_check(world)
    assert world.status.analysis.failed_checks == 1
    world.set_image(V3)
    world.reconcile()
    assert world.status.analysis is None
    assert state(world) == ("Progressing", 1, "StepUpgrade")


@pytest.mark.parametrize("step_state", ["StepUpgrade", "StepReady"])
def test_no_check_outside_a_ready_step(step_state: str) -> None:
    ro = analysed([{"replicas": 1}, {"replicas": 2}])
    plan = plan_step(ro.model_copy(update={"status": status("Progressing", step_state)}),
                     observed(canary_obj=canary(available=0)), NOW)
    assert plan.check is None


def test_a_check_asked_for_is_the_only_thing_the_plan_wants() -> None:
    before = status("Progressing", "StepPaused", last=LONG_AGO)
    ro = analysed([{"replicas": 1}]).model_copy(update={"status": before})
    plan = plan_step(ro, observed(canary_obj=canary()), NOW)
    assert plan.check_due and plan.requeue_after == 30, "retried at the interval if unanswered"
    assert plan.status.canary_status.current_step_state == "StepPaused"
    assert plan.status.canary_status.last_update_time == before.canary_status.last_update_time
    assert plan.actions == ()


@pytest.mark.parametrize(
    "steps",
    [[{"replicas": 1}], [{"replicas": 1, "pause": {}}]],
    ids=["pause-absent", "pause-empty"],
)
def test_without_analysis_a_ready_step_waits_for_approve_and_asks_for_no_check(
    steps: list[dict],
) -> None:
    case = Case(status("Progressing", "StepPaused", last=LONG_AGO),
                observed(canary_obj=canary()), "Paused", spec={"steps": steps})
    plan = plan_step(case_rollout(case), case.seen, NOW)
    assert plan.check is None and plan.requeue_after is None
    assert plan.status.canary_status.current_step_state == "StepPaused"
    assert plan.status.analysis is None
    assert plan.status.message.endswith("approve to promote")


def test_pause_absent_and_empty_are_kept_apart_on_the_wire() -> None:
    ro = analysed([{"replicas": 1, "pause": {}}, {"replicas": 1}])
    steps = ro.to_wire()["spec"]["strategy"]["canary"]["steps"]
    assert [s.get("pause") for s in steps] == [{}, None]
    assert WorkloadRollout.model_validate(ro.to_wire()) == ro


@pytest.mark.parametrize(
    ("canary_spec", "field"),
    [
        ({"analysis": {"interval": "1 minute"}}, "spec.strategy.canary.analysis.interval"),
        ({"analysis": {"threshold": 0}}, "spec.strategy.canary.analysis.threshold"),
        ({"steps": [{"replicas": 1, "analysis": {"metrics": [
            {"name": "error-rate", "thresholdRange": {"max": 1}}]}}]},
         "spec.strategy.canary.steps.0.analysis.metrics.0"),
        ({"steps": [{"replicas": 1, "pause": {"duration": -1}}]},
         "spec.strategy.canary.steps.0.pause.duration"),
    ],
    ids=["interval", "threshold", "step-metric", "pause-duration"],
)
def test_validation_errors_name_the_field(canary_spec: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        rollout(**canary_spec)
    assert field in str(info.value)


OUTCOMES = st.sampled_from(["good", "bad", "down", "hook"])


def _answer(outcome: str) -> dict:
    return {"good": readings(), "bad": readings(rate=10), "down": readings(down="refused"),
            "hook": readings()}[outcome]


@settings(max_examples=40, deadline=None)
@given(
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=10),
    steps=st.sampled_from([
        [{"replicas": 1}, {"replicas": "50%"}],
        [{"replicas": 1, "pause": {"duration": 40}}, {"replicas": 2}],
        [{"replicas": 1, "pause": {}}],
    ]),
    approve=st.booleans(),
)
def test_failed_checks_never_decrease_and_replanning_repeats_nothing(
    outcomes: list[str], steps: list[dict], approve: bool
) -> None:
    queue = iter(outcomes)
    current: list[str] = ["good"]

    def metrics(world: World, analysis: Analysis) -> dict:
        current[0] = next(queue, current[0])
        return _answer(current[0])

    def hooks(world: World, analysis: Analysis) -> list[HookResult]:
        return [HookResult("smoke", current[0] != "hook", "HTTP 503")]

    world = started(analysed(steps), metrics)
    world.hooks = hooks
    seen_failed = 0
    for _ in range(30):
        if world.status.phase in ("Healthy", "RollingBack"):
            break
        if approve and check_intent(world.rollout, "approve") is None:
            world.request("approve")
        checks = len(world.checks)
        where = state(world)
        wait(world)
        analysis = world.status.analysis
        failed = analysis.failed_checks if analysis else 0
        assert failed >= seen_failed
        assert failed <= len(world.checks)
        seen_failed = failed
        if len(world.checks) > checks and state(world) == where:
            replay = world.observed().with_check(_answer(current[0]), hooks(world, None))
            again = plan_step(world.rollout, replay, world.checks[-1])
            assert again.status.analysis == analysis
            assert not any(isinstance(a, Event) for a in again.actions)
            assert again.check is None
        if world.status.phase == "RollingBack":
            assert failed >= 3 or analysis.unavailable_since is not None
