"""Webhook types beyond `rollout`, played through the simulated operator loop: the gates
(confirm-rollout, confirm-promotion), pre-rollout and rollback hooks with the checks,
post-rollout once after a release, event hooks; restarts mid-way keep what they did."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanes.analysis.verdict import HookResult
from lanes.api.analysis import Webhook
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout import ApplyCanary, Event, flagger_phase, plan_step

from .rollout_sim import World, deployment, rollout
from .test_rollout_analysis import (
    ANALYSIS,
    V2,
    always,
    conditions,
    first_check,
    reasons,
    run_until,
    started,
    state,
    wait,
)

Answer = Callable[[World, Webhook, str], HookResult]


def hook(name: str, kind: str) -> dict:
    return {"name": name, "type": kind, "url": f"http://hooks.test/{name}"}


def hooked(*hooks: dict, steps: list[dict] | None = None, **analysis) -> WorkloadRollout:
    """A rollout under ANALYSIS with these webhooks."""
    spec = {**ANALYSIS, "webhooks": list(hooks), **analysis}
    return rollout(steps=steps or [{"replicas": 1}], analysis=spec)


def answering(**ok: bool | list[bool]) -> Answer:
    """Webhooks answering by name: always the same, or each answer in turn (the last from
    then on); a name not given answers 2xx."""
    queues = {name: list(v) if isinstance(v, list) else [v] for name, v in ok.items()}

    def answer(world: World, h: Webhook, phase: str) -> HookResult:
        queue = queues.get(h.name, [True])
        good = queue.pop(0) if len(queue) > 1 else queue[0]
        return HookResult(h.name, good, "answered 200" if good else "answered 403", h.type)

    return answer


def calls(world: World, kind: str) -> list[tuple[str, str]]:
    """The (name, phase) of every call of hooks of one type."""
    return [(name, phase) for t, name, phase in world.called if t == kind]


def restarted(world: World) -> None:
    """An operator restart: only the stored rollout (as the API server returns it) is kept."""
    world.rollout = WorkloadRollout.model_validate(world.rollout.to_wire())


def replayed(world: World) -> None:
    """One reconcile, then planning again from its stored status with the same observations
    and answers at the same time: nothing new is asked for or posted."""
    seen, now, before, checks = world.observed(), world.now, len(world.called), len(world.checks)
    world.reconcile(advance=0)
    if len(world.called) == before or len(world.checks) > checks:
        return
    answers = [HookResult(n, True, "answered 200", t) for t, n, _ in world.called[before:]]
    again = plan_step(world.rollout, seen.with_hooks(answers), now)
    assert again.hooks_due == () and again.check is None
    assert not any(isinstance(a, Event) for a in again.actions), again.actions
    assert again.status.analysis == world.status.analysis
    assert again.status.canary_status == world.status.canary_status
    assert not any(isinstance(c, ApplyCanary) for c in again.changes), again.changes


def test_confirm_rollout_holds_the_release_without_a_canary_until_it_answers_2xx() -> None:
    world = started(hooked(hook("gate", "confirm-rollout")), always())
    world.webhooks = answering(gate=[False, False, True])
    assert state(world) == ("Progressing", 1, "StepUpgrade")
    assert world.canary is None and world.status.canary_status.canary_replicas == 0
    assert "waits for confirm-rollout webhook(s) gate" in world.status.message

    wait(world)
    assert calls(world, "confirm-rollout") == [("gate", "Waiting")]
    assert world.canary is None and "answered 403" in world.status.message
    assert world.base["spec"]["paused"], "the base stays held on the stable revision"
    assert reasons(world.events)[-1] == "WaitingForConfirmRollout"

    world.webhooks = answering(gate=[False, True])
    world.now -= timedelta(seconds=20)  # 10 s after the first ask
    plan = world.reconcile(advance=0)
    assert calls(world, "confirm-rollout") == [("gate", "Waiting")], "not asked within interval"
    assert plan.requeue_after == 20
    world.now += timedelta(seconds=20)
    wait(world)
    assert len(calls(world, "confirm-rollout")) == 2, "asked again once the interval passed"
    run_until(world, lambda w: w.canary is not None)
    assert len(calls(world, "confirm-rollout")) == 3
    assert "RolloutConfirmed" in reasons(world.events)
    assert world.status.analysis.hooks_done == ["confirm-rollout"]
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")
    assert len(calls(world, "confirm-rollout")) == 3, "a confirmed release is not asked again"


def test_a_confirmation_survives_a_restart_and_the_progress_deadline_starts_with_the_canary(
) -> None:
    world = started(hooked(hook("gate", "confirm-rollout")), always())
    world.now += timedelta(seconds=3600)  # waited far longer than progressDeadlineSeconds
    replayed(world)
    assert world.canary is not None
    restarted(world)
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert calls(world, "confirm-rollout") == [("gate", "Waiting")]
    assert conditions(world)["Succeeded"] == ("True", "Promoted")


def test_a_release_waiting_for_confirm_rollout_can_be_undone() -> None:
    world = started(hooked(hook("gate", "confirm-rollout")), always())
    world.webhooks = answering(gate=False)
    wait(world)
    world.request("undo")
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("False", "RolledBack")
    assert world.canaries_created == 0


def test_pre_rollout_runs_once_before_the_first_check_and_never_again() -> None:
    world = started(hooked(hook("smoke", "pre-rollout"), steps=[{"replicas": 1}, {"replicas": 2}]))
    wait(world)
    assert calls(world, "pre-rollout") == [], "not before the step's canary pods are ready"
    first_check(world)
    assert calls(world, "pre-rollout") == [("smoke", "Progressing")]
    assert len(world.checks) == 1, "called with the first check"
    assert "PreRolloutPassed" in reasons(world.events)
    restarted(world)
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert len(world.checks) >= 2
    assert calls(world, "pre-rollout") == [("smoke", "Progressing")]
    assert conditions(world)["Succeeded"] == ("True", "Promoted")


def test_a_failing_pre_rollout_is_a_failed_check_retried_each_interval() -> None:
    world = started(hooked(hook("smoke", "pre-rollout")))
    world.webhooks = answering(smoke=[False, True])
    run_until(world, lambda w: len(w.checks) == 1)
    analysis = world.status.analysis
    assert (analysis.phase, analysis.failed_checks) == ("Halted", 1)
    assert "pre-rollout webhook smoke: answered 403" in analysis.message
    assert state(world) == ("Progressing", 1, "StepPaused")
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert len(calls(world, "pre-rollout")) == 2
    assert world.status.analysis.failed_checks == 1
    assert conditions(world)["Succeeded"] == ("True", "Promoted")


def test_pre_rollout_failing_threshold_times_rolls_back_as_pre_rollout_failed() -> None:
    world = started(hooked(hook("smoke", "pre-rollout")))
    world.webhooks = answering(smoke=False)
    v1_pods = world.pods_of(world.base_name)
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert len(calls(world, "pre-rollout")) == 3
    assert conditions(world)["Succeeded"] == ("False", "PreRolloutFailed")
    assert "pre-rollout" in world.status.message and "smoke" in world.status.message
    assert "PreRolloutFailed" in reasons(world.events)
    assert world.canary is None and world.pods_of(world.base_name) == v1_pods


def test_confirm_promotion_holds_promotion_after_the_last_step_passed() -> None:
    world = started(hooked(hook("promote", "confirm-promotion")))
    world.webhooks = answering(promote=[False, True])
    run_until(world, lambda w: state(w)[2] == "StepReady")
    wait(world)
    assert calls(world, "confirm-promotion") == [("promote", "WaitingPromotion")]
    assert state(world) == ("Progressing", 1, "StepReady")
    assert "promotion waits for confirm-promotion webhook(s) promote" in world.status.message
    assert world.base["spec"]["paused"], "the base stays held until promotion"
    restarted(world)
    run_until(world, lambda w: w.status.phase == "Promoting")
    assert len(calls(world, "confirm-promotion")) == 2
    assert "PromotionConfirmed" in reasons(world.events)
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")
    assert len(calls(world, "confirm-promotion")) == 2


def test_confirm_promotion_also_gates_an_approved_last_step() -> None:
    world = started(hooked(hook("promote", "confirm-promotion"),
                           steps=[{"replicas": 1, "pause": {}}]))
    world.webhooks = answering(promote=False)
    run_until(world, lambda w: w.status.analysis is not None and w.status.analysis.checks > 0)
    world.request("approve")
    for _ in range(5):
        wait(world)
    assert world.status.phase == "Progressing"
    assert calls(world, "confirm-promotion")


WEIGHTS = [{"replicas": 1, "traffic": "10%"}, {"replicas": 1, "traffic": "50%"},
           {"replicas": 1, "traffic": "50%"}, {"replicas": 1, "traffic": "100%"}]


def test_confirm_traffic_increase_gates_each_step_that_raises_the_canarys_share() -> None:
    world = started(hooked(hook("weights", "confirm-traffic-increase"), steps=WEIGHTS))
    world.webhooks = answering(weights=[False, True])
    run_until(world, lambda w: state(w)[2] == "StepReady")
    wait(world)
    assert calls(world, "confirm-traffic-increase") == [("weights", "Progressing")]
    assert state(world) == ("Progressing", 1, "StepReady"), "the share stays at step 1's"
    assert ("canary weight 50 waits for confirm-traffic-increase webhook(s) weights"
            in world.status.message)
    assert "answered 403" in world.status.message
    assert reasons(world.events).count("WaitingForConfirmTrafficIncrease") == 1
    restarted(world)
    world.now -= timedelta(seconds=20)  # 10 s after the first ask
    plan = world.reconcile(advance=0)
    assert len(calls(world, "confirm-traffic-increase")) == 1, "asked again only an interval on"
    assert plan.requeue_after == 20
    world.now += timedelta(seconds=20)
    run_until(world, lambda w: w.status.canary_status.current_step_index == 2)
    assert len(calls(world, "confirm-traffic-increase")) == 2
    assert "TrafficIncreaseConfirmed" in reasons(world.events)
    assert world.status.analysis.last_gate_time is None
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")
    # asked before 10 -> 50 (twice) and 50 -> 100; 50 -> 50 raises nothing
    assert len(calls(world, "confirm-traffic-increase")) == 3


def test_a_release_waiting_for_a_traffic_increase_keeps_no_check_and_can_be_undone() -> None:
    world = started(hooked(hook("weights", "confirm-traffic-increase"), steps=WEIGHTS[:2]))
    world.webhooks = answering(weights=False)
    run_until(world, lambda w: state(w)[2] == "StepReady")
    checks = len(world.checks)
    for _ in range(4):
        wait(world)
    assert state(world) == ("Progressing", 1, "StepReady")
    assert len(world.checks) == checks, "no checks while the gate waits"
    assert len(calls(world, "confirm-traffic-increase")) == 4
    world.request("undo")
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("False", "RolledBack")


def test_steps_that_do_not_raise_the_share_ask_nothing() -> None:
    steps = [{"replicas": 1, "traffic": "50%"}, {"replicas": 2, "traffic": "20%"}, {"replicas": 2}]
    world = started(hooked(hook("weights", "confirm-traffic-increase"), steps=steps))
    world.webhooks = answering(weights=False)
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert calls(world, "confirm-traffic-increase") == []


@pytest.mark.parametrize("ok", [True, False], ids=["answers-2xx", "fails"])
def test_post_rollout_is_called_once_after_promotion_and_never_changes_it(ok: bool) -> None:
    world = started(hooked(hook("notify", "post-rollout")))
    world.webhooks = answering(notify=ok)
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert calls(world, "post-rollout") == []
    wait(world)
    assert calls(world, "post-rollout") == [("notify", "Succeeded")]
    assert conditions(world)["Succeeded"] == ("True", "Promoted")
    assert reasons(world.events)[-1] == ("PostRolloutCalled" if ok else "PostRolloutFailed")
    restarted(world)
    for _ in range(3):
        wait(world)
    assert calls(world, "post-rollout") == [("notify", "Succeeded")]


def test_post_rollout_after_a_roll_back_says_failed() -> None:
    world = started(hooked(hook("notify", "post-rollout")), always(rate=10))
    run_until(world, lambda w: w.status.phase == "Healthy")
    wait(world)
    assert calls(world, "post-rollout") == [("notify", "Failed")]
    assert conditions(world)["Succeeded"] == ("False", "AnalysisFailed")


def test_post_rollout_comes_before_the_next_release_starts() -> None:
    world = started(hooked(hook("notify", "post-rollout")))
    run_until(world, lambda w: w.status.phase == "Healthy")
    world.set_image("registry.example/go-http-sample:3.0")
    wait(world)
    assert calls(world, "post-rollout") == [("notify", "Succeeded")]
    run_until(world, lambda w: w.status.phase == "Healthy")
    wait(world)
    assert len(calls(world, "post-rollout")) == 2, "once per release"


def test_a_rollback_hook_answering_2xx_rolls_back_at_once_naming_it() -> None:
    world = started(hooked(hook("abort", "rollback"), steps=[{"replicas": 1}, {"replicas": 2}]))
    world.webhooks = answering(abort=[False, True])
    run_until(world, lambda w: w.status.phase != "Progressing" or len(w.checks) == 2)
    assert calls(world, "rollback") == [("abort", "Progressing")] * 2
    assert world.status.phase in ("RollingBack", "Healthy")
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("False", "RolledBackByWebhook")
    assert "abort" in world.status.message
    assert world.status.analysis.reason == "RolledBackByWebhook"


def test_a_failing_rollback_hook_changes_nothing() -> None:
    world = started(hooked(hook("abort", "rollback")))
    world.webhooks = answering(abort=False)
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")
    assert calls(world, "rollback")


def test_event_hooks_get_every_event_the_release_posts() -> None:
    world = started(hooked(hook("slack", "event")))
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert world.notified == [("slack", e.type, e.message) for e in world.events]
    assert {"CanaryStarted", "Promoted"} <= set(reasons(world.events))


def test_hooks_of_a_steps_own_analysis_count_for_the_release() -> None:
    analysis = {**ANALYSIS, "webhooks": [hook("gate", "confirm-rollout")]}
    world = World.of(deployment(replicas=4),
                     rollout(steps=[{"replicas": 1, "analysis": analysis}]),
                     metrics=always())
    world.reconcile()
    world.set_image(V2)
    world.reconcile()
    assert world.canary is None and "confirm-rollout" in world.status.message


def test_every_gate_asked_for_alone_and_replanning_asks_nothing_new() -> None:
    world = started(hooked(hook("gate", "confirm-rollout"), hook("promote", "confirm-promotion"),
                           hook("notify", "post-rollout")))
    asked: list[tuple[str, ...]] = []
    for _ in range(40):
        if world.status.phase == "Healthy" and calls(world, "post-rollout"):
            break
        before = len(world.called)
        replayed(world)
        world.now += timedelta(seconds=world.plans[-1].requeue_after or 1)
        if len(world.called) > before:
            asked.append(tuple(t for t, _, _ in world.called[before:]))
        assert world.plans[-1].hooks_due == ()
    assert asked == [("confirm-rollout",), ("confirm-promotion",), ("post-rollout",)]


@pytest.mark.parametrize(
    ("phase", "succeeded", "expected"),
    [
        ("Initial", None, "Initializing"),
        ("Progressing", "Unknown", "Progressing"),
        ("Paused", "Unknown", "Progressing"),
        ("Promoting", "Unknown", "Promoting"),
        ("RollingBack", "Unknown", "Failed"),
        ("Healthy", "True", "Succeeded"),
        ("Healthy", "False", "Failed"),
        ("Healthy", None, "Initialized"),
    ],
)
def test_payload_phases_are_flaggers(phase: str, succeeded: str | None, expected: str) -> None:
    from lanes.api.common import Condition
    from lanes.api.workloadrollout import WorkloadRolloutStatus

    found = [] if succeeded is None else [Condition(type="Succeeded", status=succeeded,
                                                    reason="x", message="")]
    assert flagger_phase(WorkloadRolloutStatus(phase=phase, conditions=found)) == expected


GATED = (hook("gate", "confirm-rollout"), hook("smoke", "pre-rollout"),
         hook("abort", "rollback"), hook("weights", "confirm-traffic-increase"),
         hook("promote", "confirm-promotion"), hook("notify", "post-rollout"))


@settings(max_examples=30, deadline=None)
@given(
    answers=st.dictionaries(
        st.sampled_from([h["name"] for h in GATED]),
        st.lists(st.booleans(), min_size=1, max_size=4),
    ),
    restart_at=st.integers(min_value=0, max_value=30),
)
def test_gates_hold_what_they_gate_and_post_rollout_is_called_once(
    answers: dict[str, list[bool]], restart_at: int
) -> None:
    answers.setdefault("abort", [False])
    for gate in ("gate", "weights", "promote"):  # a gate that never opens holds for good
        answers[gate] = [*answers.get(gate, []), True]
    refusals = answers["weights"].index(True)
    world = started(hooked(*GATED, steps=[{"replicas": 1, "traffic": "10%"},
                                          {"replicas": 2, "traffic": "50%"}]))
    world.webhooks = answering(**answers)
    for turn in range(80):
        if turn == restart_at:
            restarted(world)
        replayed(world)
        world.now += timedelta(seconds=world.plans[-1].requeue_after or 1)
        done = world.status.analysis.hooks_done if world.status.analysis else []
        if world.canary is not None and world.status.phase != "Healthy":
            assert "confirm-rollout" in done
        if world.status.phase == "Promoting":
            assert {"confirm-rollout", "pre-rollout", "confirm-promotion"} <= set(done)
        at = world.status.canary_status.current_step_index if world.status.canary_status else 0
        if at == 2 or world.status.phase == "Promoting":
            assert len(calls(world, "confirm-traffic-increase")) == refusals + 1, (
                "the share rose only on the 2xx, which ends the asking")
        if world.status.phase == "Healthy" and calls(world, "post-rollout"):
            break
    else:
        raise AssertionError(f"the release never ended: {world.status}")
    assert len(calls(world, "post-rollout")) == 1
    assert conditions(world)["Succeeded"][1] in ("Promoted", "PreRolloutFailed",
                                                 "RolledBackByWebhook", "AnalysisFailed")


def test_pre_rollout_of_a_later_steps_analysis_runs_with_the_first_check() -> None:
    later = {**ANALYSIS, "webhooks": [hook("smoke", "pre-rollout")]}
    world = started(rollout(steps=[{"replicas": 1}, {"replicas": 2, "analysis": later}],
                            analysis=ANALYSIS))
    run_until(world, lambda w: len(w.checks) == 1)
    assert calls(world, "pre-rollout") == [("smoke", "Progressing")]
