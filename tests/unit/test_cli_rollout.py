"""Rollout verbs and the rollout status view, without a cluster: naming, messages, the view."""

from __future__ import annotations

import copy

import pytest
import typer
from rich.console import Console

from lanes.api.workloadrollout import WorkloadRollout
from lanes.cli.intents import done_message, rollout_name
from lanes.cli.main import app
from lanes.cli.rolloutstatus import (
    EXIT_CODES,
    format_rollout,
    outcome_of,
    rollout_view,
    summary_line,
)
from lanes.rollout import template_hash

from .rollout_sim import IMAGE, deployment

V1, V2 = f"{IMAGE}:1.0", f"{IMAGE}:2.0"


def rev(image: str) -> str:
    return template_hash(deployment(image=image)["spec"]["template"])


def live_rollout(
    phase: str = "Paused",
    state: str | None = "StepPaused",
    index: int = 1,
    steps: int = 1,
    succeeded: tuple[str, str] | None = None,
    canary: str | None = None,
) -> dict:
    conditions = []
    if succeeded is not None:
        conditions.append({"type": "Succeeded", "status": succeeded[0], "reason": succeeded[1]})
    return {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "WorkloadRollout",
        "metadata": {"name": "rollouts-mocka", "namespace": "default", "generation": 1, "uid": "u"},
        "spec": {
            "workloadRef": {"name": "mocka-v1"},
            "strategy": {
                "canary": {
                    "steps": [{"replicas": 1}] + [{"replicas": "50%", "pause": {"duration": 30}}] * (steps - 1),
                    "patchPodTemplateMetadata": {"labels": {"ASM_TRAFFIC_TAG": "canary"}},
                }
            },
        },
        "status": {
            "phase": phase,
            "observedGeneration": 1,
            "message": "step 1/1: 1/1 canary pod(s) available; approve to promote",
            "canaryStatus": {
                "stableRevision": rev(V1),
                "canaryRevision": canary,
                "currentStepIndex": index,
                "currentStepState": state,
            },
            "conditions": conditions,
        },
    }


def base(image: str = V1, paused: bool = False) -> dict:
    obj = deployment(image=image)
    obj["spec"]["paused"] = paused
    obj["metadata"]["annotations"] = {"lanes.dev/held-by": "rollouts-mocka"} if paused else {}
    obj["status"] = {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}
    return obj


def pod(name: str, lane: str, canary: bool = False, ready: bool = True) -> dict:
    labels = {"app": "mocka", "ASM_TRAFFIC_TAG": lane}
    if canary:
        labels["lanes.dev/canary"] = "mocka-v1"
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("rollout/rollouts-mocka", "rollouts-mocka"),
        ("workloadrollout/a", "a"),
        ("wro/a", "a"),
        ("WorkloadRollout/a", "a"),
        ("plain", "plain"),
    ],
    ids=["rollout", "full-kind", "short-name", "capitalised", "bare"],
)
def test_rollout_name_accepts_kubectl_spellings(target: str, name: str) -> None:
    assert rollout_name(target) == name


@pytest.mark.parametrize("target", ["deployment/mocka-v1", "rollout/", "swimlanegroup/x"])
def test_rollout_name_refuses_other_kinds(target: str) -> None:
    with pytest.raises(typer.BadParameter, match="expected rollout/NAME"):
        rollout_name(target)


@pytest.mark.parametrize(
    ("index", "steps", "expected"),
    [(1, 1, "step 1/1 approved; the rollout promotes"), (1, 2, "continues to step 2/2")],
    ids=["last-step", "middle-step"],
)
def test_approve_message_says_what_happens_next(index: int, steps: int, expected: str) -> None:
    rollout = WorkloadRollout.model_validate(live_rollout(index=index, steps=steps))
    assert expected in done_message(rollout, "approve")


@pytest.mark.parametrize(
    ("rollout", "base_obj", "outcome"),
    [
        (live_rollout(), base(V2, paused=True), "progressing"),
        (live_rollout("Healthy", None, 0, succeeded=("True", "Promoted")), base(V1), "succeeded"),
        (live_rollout("Healthy", None, 0), base(V1), "succeeded"),
        (live_rollout("Healthy", None, 0, succeeded=("True", "Promoted")), base(V2, True), "progressing"),
        (live_rollout("Healthy", None, 0, succeeded=("False", "RolledBack")), base(V1), "rolled back"),
        (live_rollout("Failed"), base(V2, True), "failed"),
        (live_rollout("Promoting", "Completed"), base(V2), "progressing"),
        (live_rollout("Initial", None, 0), None, "progressing"),
    ],
    ids=[
        "awaiting-approval", "promoted", "never-released", "new-template-pending",
        "rolled-back", "failed", "promoting", "initial",
    ],
)
def test_outcome_decides_the_exit_code(rollout: dict, base_obj: dict | None, outcome: str) -> None:
    assert outcome_of(rollout, base_obj) == outcome


def test_exit_codes_tell_success_failure_and_progress_apart() -> None:
    assert EXIT_CODES["succeeded"] == 0
    assert EXIT_CODES["failed"] == EXIT_CODES["rolled back"] == 1
    assert EXIT_CODES["progressing"] == 2


def test_outcome_waits_for_the_operator_to_see_a_new_spec() -> None:
    rollout = live_rollout("Healthy", None, 0, succeeded=("True", "Promoted"))
    rollout["metadata"]["generation"] = 2
    assert outcome_of(rollout, base(V1)) == "progressing"


def test_view_shows_steps_workloads_and_lane_membership() -> None:
    canary = base(V2)
    canary["metadata"]["name"] = "mocka-v1-canary"
    pods = [
        pod("mocka-v1-abc", "base"),
        pod("mocka-v1-canary-def", "canary", canary=True),
        {**pod("gone", "base"), "metadata": {**pod("gone", "base")["metadata"], "deletionTimestamp": "x"}},
    ]
    view = rollout_view(live_rollout(canary=rev(V2)), base(V2, paused=True), canary, pods)
    assert [(s.index, s.state, s.pause) for s in view.steps] == [(1, "StepPaused", "until approved")]
    assert [(w.role, w.image, w.paused, w.held_by) for w in view.workloads] == [
        ("base", V2, True, "rollouts-mocka"),
        ("canary", V2, False, None),
    ]
    assert [(p.name, p.role, p.lane, p.ready) for p in view.pods] == [
        ("mocka-v1-abc", "base", "ASM_TRAFFIC_TAG=base", True),
        ("mocka-v1-canary-def", "canary", "ASM_TRAFFIC_TAG=canary", True),
    ]
    console = Console(width=160, record=True)
    console.print(format_rollout(view))
    text = console.export_text()
    for expected in ("workloadrollout/rollouts-mocka", "Paused", "held by rollouts-mocka",
                     "ASM_TRAFFIC_TAG=canary", "until approved", "release: progressing",
                     f"stable {rev(V1)} → canary {rev(V2)}"):
        assert expected in text


def test_steps_before_the_current_one_are_done_and_after_it_pending() -> None:
    rollout = live_rollout("Progressing", "StepUpgrade", index=2, steps=3)
    states = [s.state for s in rollout_view(rollout, base(), None).steps]
    assert states == ["done", "StepUpgrade", "pending"]
    promoting = live_rollout("Promoting", "Completed", index=3, steps=3)
    assert {s.state for s in rollout_view(promoting, base(), None).steps} == {"done"}


def test_summary_line_for_watching_without_a_terminal() -> None:
    canary = copy.deepcopy(base(V2))
    canary["metadata"]["name"] = "mocka-v1-canary"
    view = rollout_view(live_rollout(), base(V2, True), canary)
    assert summary_line(view) == (
        "Paused step 1/1 StepPaused canary 1/1: step 1/1: 1/1 canary pod(s) available; approve to promote"
    )


def test_every_rollout_verb_is_offered() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--help"])
    for verb in ("approve", "undo", "pause", "resume"):
        assert verb in result.stdout
    refused = CliRunner().invoke(app, ["approve", "deployment/mocka-v1"], env={"COLUMNS": "200"})
    assert refused.exit_code != 0
    assert "expected rollout/NAME" in refused.output


def test_view_shows_traffic_steps_and_the_last_analysis_check() -> None:
    rollout = live_rollout("Progressing", "StepPaused", index=1, steps=2)
    canary_spec = rollout["spec"]["strategy"]["canary"]
    canary_spec["steps"] = [
        {"replicas": 1, "traffic": "20%", "matches": [{"headers": [{"name": "x-canary", "value": "1"}]}]},
        {"replicas": 1, "pause": {}},
    ]
    canary_spec["analysis"] = {"interval": "30s", "threshold": 5, "metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}}]}
    rollout["status"]["analysis"] = {
        "phase": "Halted", "checks": 2, "failedChecks": 1,
        "metrics": [{"name": "request-success-rate", "value": 88.2, "range": ">= 99", "ok": False}],
        "message": "Halt advancement: request-success-rate 88.2% < 99% (failed checks 1/5)",
    }
    view = rollout_view(rollout, base(V2, True), None)
    assert [(s.traffic, s.pause) for s in view.steps] == [
        ("20% + matches", "when a check passes"),
        ("-", "until approved (after a passing check)"),
    ]
    console = Console(width=160, record=True)
    console.print(format_rollout(view))
    text = console.export_text()
    for expected in ("analysis: Halted, 2 check(s), failed 1/5", "request-success-rate", "88.2",
                     ">= 99", "Halt advancement: request-success-rate 88.2% < 99%"):
        assert expected in text, expected
    assert "analysis Halted failed 1 (request-success-rate 88.2)" in summary_line(view)
