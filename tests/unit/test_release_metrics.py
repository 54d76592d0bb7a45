"""Release metrics: the exposition read from rollouts' and lane releases' status, and the
counter of promotions and roll backs counted from the endings the watches bring."""

from __future__ import annotations

import copy

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lanes.operator.metrics import Metrics
from lanes.operator.releasemetrics import (
    FAILED,
    LANERELEASE,
    PROMOTED,
    ROLLED_BACK,
    WORKLOADROLLOUT,
    ending,
    new_ending,
    read_lanerelease,
    read_releases,
    read_rollout,
)


def workload_rollout(phase: str = "Paused", index: int = 2, state: str = "StepPaused",
                     conditions: list[dict] | None = None) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "WorkloadRollout",
        "metadata": {"name": "rollouts-mocka", "namespace": "team-a", "generation": 1},
        "spec": {
            "workloadRef": {"name": "mocka-v1"},
            "strategy": {"canary": {"steps": [
                {"replicas": 1, "traffic": "10%"}, {"replicas": "50%", "traffic": "40%"}, {"replicas": "100%"},
            ]}},
        },
        "status": {
            "phase": phase,
            "canaryStatus": {"currentStepIndex": index, "currentStepState": state},
            "analysis": {"checks": 4, "failedChecks": 1, "metrics": [
                {"name": "request-success-rate", "value": 99.5, "range": ">= 99", "ok": True},
                {"name": "request-duration", "value": None, "range": "<= 500", "ok": False},
            ]},
            "conditions": conditions or [],
        },
    }


def lane_release(phase: str = "Progressing", weight: int = 20, reason: str | None = None,
                 conditions: list[dict] | None = None) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1", "kind": "LaneRelease",
        "metadata": {"name": "canary-lane", "namespace": "team-a", "generation": 1},
        "spec": {"swimLaneRef": {"name": "canary"}, "stepWeight": 20, "maxWeight": 60},
        "status": {
            "phase": phase, "currentStepIndex": 1, "weight": weight, "checks": 3, "failedChecks": 2,
            "reason": reason,
            "services": [
                {"service": "mocka", "rollout": "rollouts-mocka", "ok": True,
                 "metrics": [{"name": "request-success-rate", "value": 100.0, "ok": True}]},
                {"service": "mockb", "rollout": "rollouts-mockb", "ok": False,
                 "metrics": [{"name": "request-success-rate", "value": 62.5, "ok": False}]},
            ],
            "conditions": conditions or [],
        },
    }


def succeeded(status: str, reason: str, since: str = "2026-12-07T19:00:00Z") -> list[dict]:
    return [{"type": "Succeeded", "status": status, "reason": reason, "message": "",
             "lastTransitionTime": since}]


def exposition(bodies: list[tuple[str, dict]]) -> dict[str, list[tuple[dict, float]]]:
    metrics = Metrics(CollectorRegistry())
    metrics.read_releases(lambda: bodies)
    text = generate_latest(metrics.registry).decode()
    found: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_a_paused_rollout_reports_phase_step_weight_checks_and_metric_values() -> None:
    found = exposition([(WORKLOADROLLOUT, workload_rollout())])
    labels = {"kind": "WorkloadRollout", "namespace": "team-a", "name": "rollouts-mocka"}
    assert found["lanes_release_info"] == [({**labels, "phase": "Paused", "lane": ""}, 1.0)]
    assert found["lanes_release_step"] == [(labels, 2.0)]
    assert found["lanes_release_steps"] == [(labels, 3.0)]
    assert found["lanes_release_weight"] == [(labels, 40.0)]
    assert found["lanes_release_checks"] == [(labels, 4.0)]
    assert found["lanes_release_failed_checks"] == [(labels, 1.0)]
    rate = {**labels, "service": "mocka-v1", "metric": "request-success-rate"}
    duration = {**labels, "service": "mocka-v1", "metric": "request-duration"}
    assert found["lanes_release_metric_value"] == [(rate, 99.5)]
    assert found["lanes_release_metric_in_range"] == [(rate, 1.0), (duration, 0.0)]


def test_a_lane_release_reports_its_entry_weight_lane_and_every_services_metrics() -> None:
    found = exposition([(LANERELEASE, lane_release())])
    labels = {"kind": "LaneRelease", "namespace": "team-a", "name": "canary-lane"}
    assert found["lanes_release_info"] == [({**labels, "phase": "Progressing", "lane": "canary"}, 1.0)]
    assert found["lanes_release_weight"] == [(labels, 20.0)]
    assert found["lanes_release_steps"] == [(labels, 3.0)]
    assert found["lanes_release_failed_checks"] == [(labels, 2.0)]
    assert found["lanes_release_metric_value"] == [
        ({**labels, "service": "mocka", "metric": "request-success-rate"}, 100.0),
        ({**labels, "service": "mockb", "metric": "request-success-rate"}, 62.5),
    ]


@pytest.mark.parametrize(
    ("phase", "index", "state", "weight"),
    [
        pytest.param("Progressing", 2, "StepUpgrade", 10, id="next-batch-coming-up-keeps-previous-traffic"),
        pytest.param("Progressing", 1, "StepUpgrade", 0, id="first-batch-not-ready"),
        pytest.param("Paused", 3, "StepPaused", 0, id="step-without-traffic"),
        pytest.param("Healthy", 3, "Completed", 0, id="after-the-release"),
    ],
)
def test_a_rollouts_weight_is_the_traffic_its_routes_carry(phase, index, state, weight) -> None:
    assert read_rollout(workload_rollout(phase, index, state)).weight == weight


def test_a_rollout_that_does_not_parse_still_reports_its_phase() -> None:
    body = workload_rollout()
    body["spec"]["strategy"]["canary"]["steps"] = "not a list"
    reading = read_rollout(body)
    assert (reading.phase, reading.weight) == ("Paused", 0)


def test_a_release_without_status_is_initial() -> None:
    body = lane_release()
    del body["status"]
    reading = read_lanerelease(body)
    assert (reading.phase, reading.weight, reading.metrics) == ("Initial", 0, ())


def test_no_release_no_samples_and_a_gone_release_leaves_no_gauge() -> None:
    bodies = [(LANERELEASE, lane_release())]
    metrics = Metrics(CollectorRegistry())
    metrics.read_releases(lambda: bodies)
    assert b'name="canary-lane"' in generate_latest(metrics.registry)
    bodies.clear()
    assert b'name="canary-lane"' not in generate_latest(metrics.registry)


@pytest.mark.parametrize(
    ("kind", "body", "outcome", "reason"),
    [
        pytest.param(WORKLOADROLLOUT, workload_rollout("Healthy", conditions=succeeded("True", "Promoted")),
                     PROMOTED, "Promoted", id="rollout-promoted"),
        pytest.param(WORKLOADROLLOUT, workload_rollout("Healthy", conditions=succeeded("False", "FailedChecks")),
                     ROLLED_BACK, "FailedChecks", id="rollout-rolled-back"),
        pytest.param(WORKLOADROLLOUT,
                     workload_rollout("Failed", conditions=succeeded("False", "ProgressDeadlineExceeded")),
                     FAILED, "ProgressDeadlineExceeded", id="rollout-failed"),
        pytest.param(LANERELEASE, lane_release("Succeeded", conditions=succeeded("True", "Promoted")),
                     PROMOTED, "Promoted", id="lane-promoted"),
        pytest.param(LANERELEASE, lane_release("Failed", conditions=succeeded("False", "RolloutFailed")),
                     ROLLED_BACK, "RolloutFailed", id="lane-rolled-back"),
    ],
)
def test_endings_are_read_from_the_succeeded_condition(kind, body, outcome, reason) -> None:
    found = ending(kind, body)
    assert found is not None and (found.outcome, found.reason) == (outcome, reason)


def test_a_running_release_has_no_ending() -> None:
    assert ending(WORKLOADROLLOUT, workload_rollout(conditions=succeeded("Unknown", "InProgress"))) is None
    assert ending(LANERELEASE, lane_release()) is None


def test_an_ending_counts_once_and_never_at_first_sight() -> None:
    running = lane_release()
    ended = lane_release("Failed", 0, "FailedChecks", succeeded("False", "FailedChecks"))
    assert new_ending(LANERELEASE, None, ended) is None
    assert new_ending(LANERELEASE, running, ended) is not None
    assert new_ending(LANERELEASE, ended, copy.deepcopy(ended)) is None
    again = lane_release("Failed", 0, "FailedChecks", succeeded("False", "FailedChecks", "2026-12-07T20:00:00Z"))
    assert new_ending(LANERELEASE, lane_release(), again) is not None


def test_the_outcome_counter_counts_promotions_and_roll_backs_by_reason() -> None:
    metrics = Metrics(CollectorRegistry())
    running = workload_rollout(conditions=succeeded("Unknown", "InProgress"))
    promoted = workload_rollout("Healthy", conditions=succeeded("True", "Promoted"))
    metrics.release_outcomes.observe(WORKLOADROLLOUT, running, promoted)
    metrics.release_outcomes.observe(WORKLOADROLLOUT, promoted, promoted)
    metrics.release_outcomes.observe(
        LANERELEASE, lane_release(), lane_release("Failed", 0, "FailedChecks", succeeded("False", "FailedChecks")))
    text = generate_latest(metrics.registry).decode()
    assert ('lanes_release_outcomes_total{kind="WorkloadRollout",name="rollouts-mocka",namespace="team-a",'
            'outcome="promoted",reason="Promoted"} 1.0') in text
    assert ('lanes_release_outcomes_total{kind="LaneRelease",name="canary-lane",namespace="team-a",'
            'outcome="rolled_back",reason="FailedChecks"} 1.0') in text


def test_a_rollout_driven_by_a_lane_release_reports_the_lanes_weight_not_its_own() -> None:
    release = lane_release(weight=30)
    release["status"]["rollouts"] = [{"name": "rollouts-mocka"}]
    found = exposition([(WORKLOADROLLOUT, workload_rollout()), (LANERELEASE, release)])
    assert ({"kind": "WorkloadRollout", "namespace": "team-a", "name": "rollouts-mocka"}, 0.0) \
        in found["lanes_release_weight"]
    assert ({"kind": "LaneRelease", "namespace": "team-a", "name": "canary-lane"}, 30.0) \
        in found["lanes_release_weight"]


def test_an_ended_lane_release_has_no_entry_weight_in_force() -> None:
    ended = lane_release("Failed", weight=20)
    assert read_lanerelease(ended).weight == 0


def test_a_scrape_reads_again_only_the_bodies_that_changed() -> None:
    body = workload_rollout()
    body["metadata"]["resourceVersion"] = "7"
    cache: dict = {}
    [first] = read_releases([(WORKLOADROLLOUT, body)], cache)
    [again] = read_releases([(WORKLOADROLLOUT, body)], cache)
    assert again is first
    moved = workload_rollout("Progressing", 2, "StepUpgrade")
    moved["metadata"]["resourceVersion"] = "8"
    [changed] = read_releases([(WORKLOADROLLOUT, moved)], cache)
    assert (changed.phase, changed.weight) == ("Progressing", 10)
    assert len(cache) == 1
