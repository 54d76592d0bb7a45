"""Invariants of the rollout planner, over arbitrary states and arbitrary user actions."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from lanes.api.workloadrollout import CanaryStatus, WorkloadRollout, WorkloadRolloutStatus
from lanes.rollout import (
    HELD_ANNOTATION,
    ApplyCanary,
    ClearIntent,
    Observed,
    RestoreBaseTemplate,
    UnpauseBase,
    check_intent,
    plan_step,
    template_hash,
)
from lanes.rollout.status import timestamp

from .rollout_sim import IMAGE, START, World, deployment, rollout
from .rollout_fixtures import base, canary, replica_set

IMAGES = [f"{IMAGE}:{tag}" for tag in ("1.0", "2.0", "3.0")]
REVS = [template_hash(deployment(image=image)["spec"]["template"]) for image in IMAGES]
NOW = START + timedelta(hours=1)
STEPS = [
    [{"replicas": 1}],
    [{"replicas": 1}, {"replicas": "100%"}],
    [{"replicas": 1, "pause": {"duration": 60}}, {"replicas": "50%"}],
]
INTENTS = ["lanes.dev/approve", "lanes.dev/undo", "lanes.dev/pause", "lanes.dev/resume"]


@st.composite
def rollouts(draw) -> WorkloadRollout:
    ro = rollout(steps=draw(st.sampled_from(STEPS)))
    if draw(st.booleans()):
        strategy = ro.spec.strategy.model_copy(update={"paused": draw(st.booleans())})
        ro = ro.model_copy(update={"spec": ro.spec.model_copy(update={"strategy": strategy})})
    annotations = draw(
        st.dictionaries(st.sampled_from(INTENTS), st.sampled_from(["0", "1", "2", "x"]))
    )
    status = None
    if draw(st.booleans()):
        status = WorkloadRolloutStatus(
            phase=draw(
                st.sampled_from(
                    ["Initial", "Healthy", "Progressing", "Paused", "Promoting", "RollingBack",
                     "Failed"]
                )
            ),
            paused=draw(st.booleans()),
            canary_status=CanaryStatus(
                stable_revision=draw(st.sampled_from([REVS[0], REVS[0], None])),
                canary_revision=draw(st.sampled_from([None, *REVS])),
                current_step_index=draw(st.integers(0, 3)),
                current_step_state=draw(
                    st.sampled_from([None, "StepUpgrade", "StepPaused", "StepReady", "Completed"])
                ),
                last_update_time=timestamp(NOW - timedelta(seconds=draw(st.integers(0, 900)))),
            ),
        )
    metadata = ro.metadata.model_copy(update={"annotations": annotations})
    return ro.model_copy(update={"metadata": metadata, "status": status})


@st.composite
def observations(draw) -> Observed:
    if draw(st.integers(0, 9)) == 0:
        return Observed(None)
    replicas = draw(st.integers(1, 4))
    base_obj = base(
        draw(st.sampled_from(IMAGES)),
        paused=draw(st.booleans()),
        replicas=replicas,
        updated=draw(st.integers(0, replicas)),
        available=draw(st.integers(0, replicas)),
    )
    if draw(st.booleans()):
        base_obj["metadata"]["annotations"] = {HELD_ANNOTATION: "rollouts-mocka"}
    sets = [replica_set(IMAGES[0], replicas, 1)]
    if draw(st.booleans()):
        sets.append(replica_set(IMAGES[1], draw(st.integers(0, replicas)), 2))
    canary_obj = None
    kind = draw(st.sampled_from(["none", "own", "own", "foreign"]))
    if kind != "none":
        size = draw(st.integers(0, 4))
        canary_obj = canary(
            draw(st.sampled_from(IMAGES)),
            replicas=size,
            available=draw(st.integers(0, size)),
            ro=rollout(name="rollouts-mocka" if kind == "own" else "someone-else"),
        )
    return Observed.from_objects(base_obj, sets, canary_obj)


def _key(status: WorkloadRolloutStatus | None) -> tuple:
    if status is None:
        return ("Initial", 0, None, False)
    canary_status = status.canary_status or CanaryStatus()
    return (
        status.phase if canary_status.stable_revision else "Initial",
        canary_status.current_step_index,
        canary_status.current_step_state,
        status.paused,
    )


_STEP_MOVES = {
    ("StepUpgrade", "StepPaused"),
    (None, "StepPaused"),
    ("StepPaused", "StepReady"),
    ("StepPaused", "StepUpgrade"),
}


def one_step(old: tuple, new: tuple) -> bool:
    """Whether `new` is `old` or one transition away from it."""
    (p0, i0, s0, _), (p1, i1, s1, _) = old, new
    return (
        (i0, s0) == (i1, s1)
        or p1 == "Initial"
        or (p0 in ("Initial", "Healthy", "Promoting", "RollingBack") and p1 == "Healthy")
        or ((i1, s1) == (1, "StepUpgrade") and p1 in ("Progressing", "Failed"))
        or (i0 == i1 and (s0, s1) in _STEP_MOVES)
        or (s0 == "StepReady" and (i1, s1) == (i0 + 1, "StepUpgrade"))
        or (p1 == "Promoting" and s1 == "Completed" and i0 == i1)
        or (p1 == "RollingBack" and (i0, s0) == (i1, s1))
    )


def _replanned(ro: WorkloadRollout, plan) -> WorkloadRollout:
    cleared = {a.annotation for a in plan.actions if isinstance(a, ClearIntent)}
    annotations = {k: v for k, v in ro.metadata.annotations.items() if k not in cleared}
    metadata = ro.metadata.model_copy(update={"annotations": annotations})
    return ro.model_copy(update={"metadata": metadata, "status": plan.status})


@given(rollouts(), observations())
def test_one_canary_name_one_apply_and_one_step(ro: WorkloadRollout, seen: Observed) -> None:
    plan = plan_step(ro, seen, NOW)
    applies = [a for a in plan.actions if isinstance(a, ApplyCanary)]
    assert len(applies) <= 1
    assert {a.name for a in applies} <= {"mocka-v1-canary"}
    assert len(set(map(repr, plan.actions))) == len(plan.actions)
    assert one_step(_key(ro.status), _key(plan.status))


@given(rollouts(), observations())
def test_base_is_released_only_when_promoting_or_back_on_stable(
    ro: WorkloadRollout, seen: Observed
) -> None:
    plan = plan_step(ro, seen, NOW)
    stable = plan.status.canary_status.stable_revision if plan.status.canary_status else None
    for action in plan.actions:
        if isinstance(action, UnpauseBase):
            assert plan.status.phase in ("Promoting", "RollingBack", "Healthy")
            if plan.status.phase != "Promoting":
                assert seen.base.revision == stable
        if isinstance(action, RestoreBaseTemplate):
            assert template_hash(action.template) == stable


@given(rollouts(), observations())
def test_replanning_unchanged_observations_creates_nothing_twice_and_settles(
    ro: WorkloadRollout, seen: Observed
) -> None:
    creates = 0
    plans = []
    for _ in range(16):
        plan = plan_step(ro, seen, NOW)
        plans.append(plan)
        if seen.canary is None:
            creates += sum(isinstance(a, ApplyCanary) for a in plan.actions)
        settled = plan.status == ro.status and not plan.followups
        ro = _replanned(ro, plan)
        if settled:
            break
    assert creates <= 1
    assert plans[-1].status == ro.status, [p.status.phase for p in plans]
    again = plan_step(ro, seen, NOW)
    assert again == plans[-1]


# --- arbitrary user actions through the simulator -----------------------------------------

OPS = st.one_of(
    st.tuples(st.just("image"), st.sampled_from(IMAGES)),
    st.tuples(st.sampled_from(["approve", "undo", "pause", "resume"]), st.none()),
    st.tuples(st.just("tick"), st.sampled_from([5, 61, 700])),
    st.tuples(st.just("reconcile"), st.sampled_from([None, None, 0, 1, 2])),
    st.tuples(st.just("delete-canary"), st.none()),
)


def _check(world: World) -> None:
    assert set(world.deployments) <= {"mocka-v1", "mocka-v1-canary"}
    if world.canary is not None:
        assert world.canary["metadata"]["labels"]["lanes.dev/rollout"] == "rollouts-mocka"
    status = world.status
    planned = world.plans[-1].status.phase if world.plans else None
    if status is not None and not world.base["spec"].get("paused"):
        released = template_hash(world.base["spec"]["template"])
        assert released == status.canary_status.stable_revision or "Promoting" in (
            status.phase,
            planned,
        ), "the base rolls to a revision nobody approved"


def _finish(world: World) -> None:
    for _ in range(60):
        status = world.status
        if (
            status.phase == "Healthy"
            and world.canary is None
            and status.canary_status.stable_revision
            == template_hash(world.base["spec"]["template"])
            and not world.base["spec"].get("paused")
        ):
            return
        for intent in ("resume", "approve"):
            if check_intent(world.rollout, intent) is None:
                world.request(intent)
        world.reconcile(advance=61)
        _check(world)
    raise AssertionError(f"rollout never finished: {world.status}")


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, max_size=25), st.integers(1, 3))
def test_any_sequence_of_user_actions_and_crashes_keeps_invariants_and_finishes(
    ops: list[tuple], replicas: int
) -> None:
    world = World.of(deployment(replicas=replicas), rollout())
    world.reconcile()
    for op, arg in ops:
        if op == "image":
            world.set_image(arg)
        elif op == "tick":
            world.now += timedelta(seconds=arg)
        elif op == "reconcile":
            world.reconcile(crash_after=arg)
        elif op == "delete-canary":
            world.delete("mocka-v1-canary")
        elif check_intent(world.rollout, op) is None:
            world.request(op)
        _check(world)
    _finish(world)
    assert world.base["spec"]["replicas"] == replicas
    assert world.base["status"]["availableReplicas"] == replicas


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=12, max_size=12), st.booleans())
def test_crash_at_any_point_of_the_story_still_finishes_with_one_canary(
    crashes: list[int], undo: bool
) -> None:
    world = World.of(deployment(replicas=2), rollout())
    world.reconcile()
    stable_pods = world.pods_of("mocka-v1")
    world.set_image(IMAGES[1])
    approved = undone = False
    for crash in crashes:
        if world.status.phase == "Paused":
            world.request("undo" if undo else "approve")
            approved, undone = approved or not undo, undone or undo
        world.reconcile(crash_after=crash if crash else None)
        _check(world)
        if not approved:
            assert world.pods_of("mocka-v1") == stable_pods
    if undo:
        world.run(lambda w: w.status.phase != "Progressing")
        if check_intent(world.rollout, "undo") is None:
            world.request("undo")
            undone = True
        world.run(lambda w: w.status.phase == "Healthy")
        assert world.pods_of("mocka-v1") == stable_pods
    _finish(world)
    assert world.canaries_created == 1
    expected = REVS[0] if undone else REVS[1]
    assert world.status.canary_status.stable_revision == expected
