"""The rollout's own progress deadline: a step whose canary pods are not available in time rolls
the release back (Flagger's `progressDeadlineSeconds`, Argo's with `progressDeadlineAbort`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout import template_hash

from .rollout_sim import IMAGE, World, deployment, image_of, rollout

V1, V2, V3 = (f"{IMAGE}:{tag}" for tag in ("1.0", "2.0", "3.0"))


def with_deadline(seconds: int, **kwargs) -> WorkloadRollout:
    """The story's rollout with `spec.progressDeadlineSeconds`."""
    ro = rollout(**kwargs)
    return ro.model_copy(update={"spec": ro.spec.model_copy(
        update={"progress_deadline_seconds": seconds})})


def conditions(world: World) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in world.status.conditions}


def broken_release(seconds: int = 60, **kwargs) -> World:
    """A world whose v2 pods never become available, the release of v2 started."""
    world = World.of(deployment(), with_deadline(seconds, **kwargs))
    world.reconcile()
    world.broken.add(V2)
    world.set_image(V2)
    world.reconcile()
    return world


def test_the_field_is_read_and_written_as_progress_deadline_seconds() -> None:
    ro = with_deadline(90)
    assert ro.spec.to_wire()["progressDeadlineSeconds"] == 90
    assert "progressDeadlineSeconds" not in rollout().spec.to_wire()


@pytest.mark.parametrize("value", [0, -5], ids=["zero", "negative"])
def test_a_deadline_must_be_positive(value: int) -> None:
    wire = rollout().model_dump(by_alias=True, exclude_none=True)
    wire["spec"]["progressDeadlineSeconds"] = value
    with pytest.raises(ValidationError, match="progressDeadlineSeconds"):
        WorkloadRollout.model_validate(wire)


def test_pods_not_ready_within_the_deadline_roll_the_release_back() -> None:
    world = broken_release(60)
    world.reconcile(advance=30)
    assert world.status.phase == "Progressing"
    world.reconcile(advance=30)
    world.reconcile()
    assert world.status.phase == "RollingBack"
    world.run(lambda w: w.status.phase == "Healthy")
    assert image_of(world.base) == V1 and world.canary is None
    assert world.base["spec"]["paused"] is False
    assert conditions(world) == {
        "Progressing": ("False", "Cancelled"),
        "Succeeded": ("False", "ProgressDeadlineExceeded"),
    }
    failed = world.status.failed_revision
    assert failed is not None and failed.reason == "ProgressDeadlineExceeded"
    assert failed.revision == template_hash(deployment(image=V2)["spec"]["template"])
    assert "not available within the progress deadline" in (world.status.message or "")


def test_the_roll_back_is_announced_with_a_warning_naming_the_deadline() -> None:
    world = broken_release(60)
    world.run(lambda w: w.status.phase != "Progressing", advance=20)
    [warning] = [e for e in world.events if e.reason == "ProgressDeadlineExceeded"]
    assert warning.type == "Warning"
    assert "0/1 canary pod(s) available after 60s" in warning.message
    assert "progressDeadlineSeconds of workloadrollout/rollouts-mocka" in warning.message
    assert any(e.reason == "RollingBack" for e in world.events)


def test_the_rollouts_deadline_replaces_the_bases() -> None:
    world = broken_release(900)
    started = world.now
    world.run(lambda w: w.status.phase != "Progressing", limit=60, advance=20)
    assert world.status.phase == "RollingBack"
    assert (world.now - started).total_seconds() >= 900


def test_pods_ready_within_the_deadline_carry_on() -> None:
    world = broken_release(60)
    world.reconcile(advance=30)
    world.broken.discard(V2)
    world.settle()
    world.reconcile()
    assert world.status.phase == "Paused"
    assert world.status.canary_status.current_step_state == "StepPaused"


def test_each_step_gets_its_own_deadline() -> None:
    world = World.of(deployment(replicas=2),
                     with_deadline(60, steps=[{"replicas": 1}, {"replicas": "100%"}]))
    world.reconcile()
    world.set_image(V2)
    world.reconcile()
    world.reconcile(advance=50)
    assert world.status.phase == "Paused"
    world.request("approve")
    world.broken.add(V2)
    world.reconcile(advance=50)
    world.reconcile(advance=1)
    assert world.status.canary_status.current_step_index == 2
    assert world.status.phase == "Progressing", "60 s from step 2's start have not passed"
    world.run(lambda w: w.status.phase != "Progressing", advance=5)
    assert world.status.phase == "RollingBack"
    failed = world.status.failed_revision
    assert failed is not None
    assert "step 2/2: 0/2 canary pod(s) available after 60s" in (failed.message or "")


def test_the_failed_revision_is_held_and_a_retry_releases_it_again() -> None:
    world = broken_release(30)
    world.run(lambda w: w.status.phase == "Healthy" and w.status.failed_revision is not None,
              advance=10)
    world.set_image(V2)
    world.reconcile()
    assert world.status.phase == "Healthy" and world.canary is None
    world.broken.discard(V2)
    world.request("retry")
    world.reconcile()
    assert world.status.phase == "Progressing"
    assert world.status.failed_revision is None


def test_without_the_field_the_release_is_left_failed_and_held() -> None:
    world = World.of(deployment(), rollout())
    world.reconcile()
    world.broken.add(V2)
    world.set_image(V2)
    world.reconcile()
    world.run(lambda w: w.status.phase != "Progressing", advance=200)
    assert world.status.phase == "Failed"
    assert world.canary is not None and world.base["spec"]["paused"] is True
    assert world.status.failed_revision is None
