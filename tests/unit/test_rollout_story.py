"""Multi-step scenarios through the simulator: the mock-chain story and its variations."""

from __future__ import annotations

import pytest

from lanes.rollout import check_intent, template_hash

from .rollout_sim import IMAGE, World, deployment, image_of, rollout

V1, V2, V3 = (f"{IMAGE}:{tag}" for tag in ("1.0", "2.0", "3.0"))


def rev(image: str) -> str:
    return template_hash(deployment(image=image)["spec"]["template"])


def state(world: World) -> tuple[str, int, str | None]:
    canary = world.status.canary_status
    return world.status.phase, canary.current_step_index, canary.current_step_state


def conditions(world: World) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in world.status.conditions}


def running(world: World) -> set[str]:
    """The images the base Deployment's pods run."""
    return {
        image_of(rs)
        for rs in world.replica_sets_of(world.base_name)
        if world.pods[rs["metadata"]["name"]]
    }


def started(replicas: int = 1, **kwargs) -> World:
    """A world at story state 1 for one service: the image changed, the canary is running."""
    world = World.of(deployment(replicas=replicas), rollout(**kwargs))
    world.reconcile()
    world.set_image(V2)
    world.reconcile()
    return world


def test_story_one_service_canary_then_approve_promotes() -> None:
    world = World.of(deployment(), rollout())
    world.reconcile()
    assert world.status.phase == "Healthy"
    assert world.status.canary_status.stable_revision == rev(V1)
    v1_pods = world.pods_of("mocka-v1")

    world.set_image(V2)
    assert world.base["spec"]["paused"] is True
    assert world.pods_of("mocka-v1") == v1_pods

    world.reconcile()
    canary = world.canary
    assert state(world) == ("Progressing", 1, "StepUpgrade")
    assert image_of(canary) == V2 and canary["spec"]["replicas"] == 1
    assert canary["spec"]["template"]["metadata"]["labels"]["ASM_TRAFFIC_TAG"] == "canary"
    assert canary["spec"]["template"]["metadata"]["labels"]["app"] == "mocka"

    world.reconcile()
    assert state(world) == ("Paused", 1, "StepPaused")
    assert world.status.canary_status.canary_ready_replicas == 1
    assert "approve to promote" in world.status.message
    assert conditions(world)["Succeeded"] == ("Unknown", "InProgress")
    quiet = world.reconcile()
    assert quiet.actions == () and quiet.requeue_after is None

    assert check_intent(world.rollout, "approve") is None
    world.request("approve")
    world.reconcile()
    assert state(world) == ("Progressing", 1, "StepReady")
    assert "lanes.dev/approve" not in world.rollout.metadata.annotations

    world.reconcile()
    assert state(world) == ("Promoting", 1, "Completed")
    assert world.base["spec"]["paused"] is False
    assert image_of(world.base) == V2
    assert world.canary is not None

    world.reconcile()
    assert world.status.phase == "Healthy"
    assert world.canary is None
    assert world.status.canary_status.stable_revision == rev(V2)
    assert conditions(world) == {
        "Progressing": ("False", "Completed"),
        "Succeeded": ("True", "Promoted"),
    }
    assert world.canaries_created == 1
    assert [e.reason for e in world.events] == [
        "CanaryStarted",
        "StepReady",
        "Approved",
        "Promoting",
        "Promoted",
    ]
    assert world.reconcile().actions == ()


def test_story_undo_in_the_canary_step_restarts_no_base_pod() -> None:
    world = started(replicas=2)
    world.reconcile()
    v1_pods = world.pods_of("mocka-v1")
    assert world.status.phase == "Paused"

    world.request("undo")
    world.reconcile()
    assert world.status.phase == "RollingBack"
    assert image_of(world.base) == V1
    assert world.base["spec"]["paused"] is True
    assert world.canary is None

    world.reconcile()
    assert world.base["spec"]["paused"] is False
    world.reconcile()
    assert world.status.phase == "Healthy"
    assert conditions(world) == {
        "Progressing": ("False", "Cancelled"),
        "Succeeded": ("False", "RolledBack"),
    }
    assert world.pods_of("mocka-v1") == v1_pods
    assert len(world.replica_sets_of("mocka-v1")) == 1
    assert world.status.canary_status.stable_revision == rev(V1)
    assert "rolled back" in world.status.message


def test_story_three_services_promoted_one_at_a_time() -> None:
    names = {"a": "mocka-v1", "b": "mockb-v1", "c": "mockc-v1"}
    worlds = {
        k: World.of(deployment(name), rollout(name, name=f"rollouts-mock{k}"))
        for k, name in names.items()
    }

    def canaries() -> set[str]:
        return {k for k, w in worlds.items() if w.canary is not None}

    def settle(keys: str) -> None:
        for k in keys:
            worlds[k].run(lambda w: w.reconcile().actions == () and w.status.phase != "Initial")

    settle("abc")
    assert canaries() == set()
    worlds["a"].set_image(V2)
    settle("a")
    assert canaries() == {"a"}
    for k in "bc":
        worlds[k].set_image(V2)
    settle("bc")
    assert canaries() == {"a", "b", "c"}
    worlds["b"].request("approve")
    settle("b")
    assert canaries() == {"a", "c"}
    assert running(worlds["b"]) == {V2} and not worlds["b"].base["spec"]["paused"]
    assert running(worlds["a"]) == running(worlds["c"]) == {V1}
    for k in "ac":
        worlds[k].request("approve")
    settle("ac")
    assert canaries() == set()
    assert {image for w in worlds.values() for image in running(w)} == {V2}
    assert {w.status.phase for w in worlds.values()} == {"Healthy"}


def test_newer_template_mid_rollout_restarts_the_same_canary() -> None:
    world = started(replicas=2, steps=[{"replicas": 1}, {"replicas": "100%"}])
    world.reconcile()
    world.request("approve")
    world.reconcile()
    world.reconcile()
    assert state(world) == ("Progressing", 2, "StepUpgrade")

    world.set_image(V3)
    world.reconcile()
    assert state(world) == ("Progressing", 1, "StepUpgrade")
    assert image_of(world.canary) == V3 and world.canary["spec"]["replicas"] == 1
    assert world.status.canary_status.canary_revision == rev(V3)
    assert world.status.canary_status.stable_revision == rev(V1)
    assert world.canaries_created == 1

    for _ in range(2):
        world.run(lambda w: check_intent(w.rollout, "approve") is None)
        world.request("approve")
        world.reconcile()
    world.run(lambda w: w.status.phase == "Healthy")
    assert image_of(world.base) == V3 and world.canary is None
    assert world.status.canary_status.stable_revision == rev(V3)


def test_percentage_steps_and_timed_pauses() -> None:
    steps = [
        {"replicas": "20%", "pause": {"duration": 60}},
        {"replicas": "50%", "pause": {"duration": 0}},
        {"replicas": "100%"},
    ]
    world = started(replicas=5, steps=steps)
    seen: list[int] = []
    for _ in range(30):
        if world.canary is not None and world.canary["spec"]["replicas"] not in seen:
            seen.append(world.canary["spec"]["replicas"])
        if world.status.phase == "Paused":
            break
        world.reconcile(advance=20)
    assert seen == [1, 3, 5]
    assert state(world) == ("Paused", 3, "StepPaused")
    assert world.pods_of("mocka-v1") and image_of(world.base) == V2
    assert world.base["spec"]["paused"] is True


def test_timed_pause_waits_its_duration() -> None:
    world = started(steps=[{"replicas": 1, "pause": {"duration": 60}}, {"replicas": 1}])
    world.reconcile(advance=0)
    assert state(world) == ("Progressing", 1, "StepPaused")
    assert world.reconcile(advance=59).requeue_after == 60
    assert world.reconcile().requeue_after == 1
    assert world.status.canary_status.current_step_state == "StepPaused"
    world.reconcile()
    assert state(world) == ("Progressing", 1, "StepReady")


def test_canary_that_never_becomes_available_fails_then_undo_recovers() -> None:
    world = World.of(deployment(), rollout())
    world.reconcile()
    world.broken.add(V2)
    world.set_image(V2)
    world.reconcile()
    world.reconcile(advance=300)
    assert world.status.phase == "Progressing"
    world.reconcile(advance=300)
    world.reconcile()
    assert world.status.phase == "Failed"
    assert conditions(world)["Succeeded"] == ("False", "ProgressDeadlineExceeded")
    assert check_intent(world.rollout, "approve") is not None

    world.request("undo")
    world.run(lambda w: w.status.phase == "Healthy")
    assert image_of(world.base) == V1 and world.canary is None


def test_failed_canary_fixed_by_a_newer_template() -> None:
    world = World.of(deployment(), rollout())
    world.reconcile()
    world.broken.add(V2)
    world.set_image(V2)
    world.run(lambda w: w.status.phase == "Failed", advance=120)
    world.set_image(V3)
    world.reconcile()
    world.reconcile()
    assert state(world) == ("Paused", 1, "StepPaused")
    assert conditions(world)["Succeeded"] == ("Unknown", "InProgress")
    assert image_of(world.canary) == V3


def test_pause_holds_a_ready_step_until_resume() -> None:
    world = started()
    world.request("pause")
    world.reconcile()
    assert world.status.phase == "Paused" and world.status.paused
    for _ in range(3):
        world.reconcile()
    assert state(world) == ("Paused", 1, "StepUpgrade")
    assert "resume" in world.status.message

    world.request("resume")
    world.reconcile()
    assert state(world) == ("Progressing", 1, "StepUpgrade") and not world.status.paused
    world.reconcile()
    assert state(world) == ("Paused", 1, "StepPaused")


def test_template_set_back_by_hand_rolls_back() -> None:
    world = started()
    world.reconcile()
    world.set_image(V1)
    world.run(lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("False", "RolledBack")
    assert world.canary is None and world.base["spec"]["paused"] is False


def test_deleted_canary_is_created_again() -> None:
    world = started()
    world.reconcile()
    world.delete("mocka-v1-canary")
    world.reconcile()
    assert state(world) == ("Progressing", 1, "StepUpgrade")
    assert world.canary is not None
    world.reconcile()
    assert state(world) == ("Paused", 1, "StepPaused")


def test_without_the_webhook_the_operator_still_holds_the_base() -> None:
    world = World.of(deployment(replicas=2), rollout(), webhook=False)
    world.reconcile()
    world.base["spec"]["paused"] = False
    world.set_image(V2)
    world.reconcile()
    assert world.base["spec"]["paused"] is True
    world.run(lambda w: w.status.phase == "Paused")
    world.request("approve")
    world.run(lambda w: w.status.phase == "Healthy")
    assert image_of(world.base) == V2


@pytest.mark.parametrize("steps_done", [1, 2, 3], ids=["upgrade", "paused", "ready"])
def test_deleting_the_rollout_mid_release_leaves_the_base_on_stable(steps_done: int) -> None:
    world = World.of(deployment(replicas=2), rollout())
    world.reconcile()
    v1_pods = world.pods_of("mocka-v1")
    world.set_image(V2)
    world.reconcile(advance=0)
    for _ in range(steps_done - 1):
        if world.status.phase == "Paused":
            world.request("approve")
        world.reconcile()
    world.finalize()
    assert image_of(world.base) == V1 and world.base["spec"]["paused"] is False
    assert world.canary is None
    assert world.pods_of("mocka-v1") == v1_pods
