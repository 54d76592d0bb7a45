"""A revision that failed stays failed: the same template applied again (a GitOps self-heal)
starts no release and writes nothing to the base's template; retry or a new revision does."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lanes.rollout import ApplyCanary, RestoreBaseTemplate, check_intent

from .rollout_sim import IMAGE, World, deployment, image_of, rollout
from .test_rollout_analysis import ANALYSIS, always, analysed, run_until, started

V1, V2, V3 = f"{IMAGE}:1.0", f"{IMAGE}:2.0", f"{IMAGE}:3.0"


def rolled_back_by_analysis() -> World:
    world = started(analysed([{"replicas": 1}, {"replicas": "50%"}]), always(rate=10.0))
    run_until(world, lambda w: w.status.phase == "Healthy")
    return world


def writes_since(world: World, plans: int) -> tuple[int, int]:
    """Canary applies and base template writes planned after the first `plans` plans."""
    actions = [a for p in world.plans[plans:] for a in p.actions]
    return (sum(isinstance(a, ApplyCanary) for a in actions),
            sum(isinstance(a, RestoreBaseTemplate) for a in actions))


def test_a_failed_revision_is_recorded_with_why_and_when() -> None:
    world = rolled_back_by_analysis()
    failed = world.status.failed_revision
    assert failed is not None
    assert failed.revision == world.status.canary_status.canary_revision
    assert failed.reason == "AnalysisFailed"
    assert "request-success-rate" in (failed.message or "")
    assert failed.time is not None
    assert image_of(world.base) == V1


def test_the_failed_template_applied_again_starts_nothing_and_writes_no_template() -> None:
    world = rolled_back_by_analysis()
    pods = world.pods_of(world.base_name)
    canaries, plans = world.canaries_created, len(world.plans)
    world.events.clear()

    for _ in range(6):  # a GitOps self-heal every 10 s for a minute
        world.set_image(V2)
        for _ in range(10):
            world.reconcile()
    assert world.canaries_created == canaries
    assert writes_since(world, plans) == (0, 0)
    assert world.canary is None
    assert world.status.phase == "Healthy"
    assert world.base["spec"]["paused"] is True, "the base stays held on the stable revision"
    assert world.pods_of(world.base_name) == pods
    assert [e.reason for e in world.events] == ["FailedRevisionHeld"]
    assert "kubectl lane retry rollout/rollouts-mocka" in world.status.message


def test_retry_releases_the_failed_revision_again() -> None:
    world = rolled_back_by_analysis()
    world.set_image(V2)
    world.reconcile()
    world.metrics = always()
    world.request("retry")
    world.reconcile()
    assert world.status.phase == "Progressing"
    assert world.status.failed_revision is None
    assert world.canary is not None and image_of(world.canary) == V2
    assert "Retried" in [e.reason for e in world.events]
    run_until(world, lambda w: w.status.phase == "Healthy")
    assert image_of(world.base) == V2


def test_retry_before_the_template_is_applied_again_releases_it_when_it_is() -> None:
    world = rolled_back_by_analysis()
    world.request("retry")
    world.reconcile()
    assert world.status.failed_revision is None and world.status.phase == "Healthy"
    world.set_image(V2)
    world.reconcile()
    assert world.status.phase == "Progressing"


def test_a_new_revision_starts_a_release_and_forgets_the_failed_one() -> None:
    world = rolled_back_by_analysis()
    world.set_image(V3)
    world.reconcile()
    assert world.status.phase == "Progressing"
    assert world.status.failed_revision is None
    assert image_of(world.canary) == V3


def test_a_persons_undo_is_not_a_failure_and_the_template_applied_again_is_released() -> None:
    world = World.of(deployment(replicas=2), rollout())
    world.reconcile()
    world.set_image(V2)
    world.run(lambda w: w.status.phase == "Paused")
    world.request("undo")
    world.run(lambda w: w.status.phase == "Healthy")
    assert world.status.failed_revision is None
    world.set_image(V2)
    world.reconcile()
    assert world.status.phase == "Progressing"


def test_a_lane_releases_undo_after_failed_checks_records_the_revision_as_failed() -> None:
    world = World.of(deployment(replicas=2), rollout())
    world.reconcile()
    world.set_image(V2)
    world.run(lambda w: w.status.phase == "Paused")
    annotations = {**world.rollout.metadata.annotations,
                   "lanes.dev/undo": "2025-01-01T00:00:00Z lanerelease/seed AnalysisFailed"}
    world._set_annotations(annotations)
    world.run(lambda w: w.status.phase == "Healthy")
    failed = world.status.failed_revision
    assert failed is not None and failed.reason == "AnalysisFailed"
    assert "lanerelease/seed" in (failed.message or "")
    canaries = world.canaries_created
    world.set_image(V2)
    world.now += timedelta(seconds=30)
    world.reconcile()
    assert world.canaries_created == canaries and world.canary is None


def test_a_template_set_back_to_stable_by_its_owner_is_not_a_failure() -> None:
    world = World.of(deployment(replicas=2), rollout())
    world.reconcile()
    world.set_image(V2)
    world.run(lambda w: w.status.phase == "Paused")
    world.set_image(V1)
    world.run(lambda w: w.status.phase == "Healthy")
    assert world.status.failed_revision is None
    world.set_image(V2)
    world.reconcile()
    assert world.status.phase == "Progressing"


@pytest.mark.parametrize("phase", ["nothing failed", "in progress"])
def test_retry_is_refused_when_there_is_nothing_to_retry(phase: str) -> None:
    world = World.of(deployment(replicas=2), rollout(analysis=ANALYSIS))
    world.reconcile()
    if phase == "in progress":
        world = rolled_back_by_analysis()
        world.set_image(V3)
        world.reconcile()
        world.rollout = world.rollout.model_copy(update={"status": world.status.model_copy(
            update={"failed_revision": rolled_back_by_analysis().status.failed_revision})})
    refused = check_intent(world.rollout, "retry")
    assert refused is not None and "workloadrollout/rollouts-mocka" in refused
