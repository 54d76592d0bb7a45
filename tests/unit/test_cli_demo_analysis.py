"""The analysis demo's pure pieces: check lines, outcomes, the load's tally and the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from lanes_testbed.cli.analysisstory import (
    ANALYSIS,
    PROMOTED,
    ROLLED_BACK,
    STEPS,
    Tally,
    analysis_patch,
    check_key,
    format_check,
    format_load,
    format_outcome,
    hop_ips,
    missing,
    release_outcome,
    release_started,
)

from .test_cli import invoke

BASE_ANSWER = ("-> mocka(version: v1, ip: 127.0.0.2)-> mockb(version: v2, ip: 127.0.0.3)"
               "-> mockc(version: v1, ip: 127.0.0.4)")
CANARY_FAILURE = "-> mocka(version: v1, ip: 127.0.0.2)-> mockb(version: v2, ip: 127.0.0.9) injected failure"


def rollout(phase: str = "Progressing", analysis: dict[str, Any] | None = None,
            conditions: list[dict[str, str]] | None = None, step: int = 1) -> dict[str, Any]:
    """A rollouts-mockb object as the API server returns it, with the demo's steps and analysis."""
    status: dict[str, Any] = {"phase": phase, "canaryStatus": {"currentStepIndex": step},
                              "conditions": conditions or []}
    if analysis is not None:
        status["analysis"] = analysis
    return {"metadata": {"name": "rollouts-mockb"},
            "spec": analysis_patch()["spec"], "status": status}


def check(checks: int, value: float | None, ok: bool, *, step: int = 1, failed: int = 0,
          phase: str = "Passed") -> dict[str, Any]:
    return {"phase": phase, "checks": checks, "failedChecks": failed, "step": step,
            "lastCheckTime": f"2026-01-01T00:00:{checks:02d}+00:00",
            "metrics": [{"name": "request-success-rate", "value": value, "range": ">= 99", "ok": ok}]}


def test_the_patch_gives_mockb_traffic_steps_and_the_e2e_analysis() -> None:
    canary = analysis_patch()["spec"]["strategy"]["canary"]
    assert canary["steps"] == STEPS == [{"replicas": 1, "traffic": "20%"}, {"replicas": 1}]
    assert canary["analysis"] == ANALYSIS
    assert (ANALYSIS["interval"], ANALYSIS["threshold"]) == ("2s", 4)


def test_a_check_line_shows_its_step_traffic_values_and_failed_count() -> None:
    line = format_check(rollout(analysis=check(2, 100.0, True, failed=1)))
    assert line == ("check 2  step 1/2  traffic 20%  request-success-rate 100 (>= 99) ok  "
                    "failed 1/4  Passed")
    line = format_check(rollout(analysis=check(3, 55.371, False, step=2, failed=2, phase="Halted")))
    assert line == ("check 3  step 2/2  traffic 0%  request-success-rate 55.37 (>= 99) FAIL  "
                    "failed 2/4  Halted")


def test_a_check_without_values_says_so_and_falls_back_to_the_current_step() -> None:
    found = check(1, None, False, failed=1, phase="Halted")
    del found["step"]
    line = format_check(rollout(analysis=found, step=2))
    assert "step 2/2" in line and "request-success-rate no value (>= 99) FAIL" in line


def test_a_new_check_is_one_whose_count_or_time_changed() -> None:
    assert check_key(rollout()) is None
    assert check_key(rollout(analysis={"checks": 0})) is None
    first = check_key(rollout(analysis=check(1, 100.0, True)))
    assert first == (1, "2026-01-01T00:00:01+00:00")
    assert check_key(rollout(analysis=check(2, 100.0, True))) != first


@pytest.mark.parametrize(
    ("phase", "conditions", "expected"),
    [
        ("Progressing", [{"type": "Succeeded", "status": "True", "reason": "Promoted"}], None),
        ("Healthy", [], None),
        ("Healthy", [{"type": "Succeeded", "status": "True", "reason": "Promoted"}], PROMOTED),
        ("Healthy", [{"type": "Succeeded", "status": "False", "reason": "AnalysisFailed"}], ROLLED_BACK),
        ("Failed", [{"type": "Succeeded", "status": "False", "reason": "ProgressDeadlineExceeded"}],
         ("False", "ProgressDeadlineExceeded")),
    ],
    ids=["in-progress", "no-condition", "promoted", "rolled-back", "failed"],
)
def test_a_release_ends_when_the_rollout_settles_with_a_succeeded_condition(
    phase: str, conditions: list[dict[str, str]], expected: tuple[str, str] | None
) -> None:
    assert release_outcome(rollout(phase, conditions=conditions)) == expected


def test_a_release_has_started_once_the_rollout_leaves_healthy() -> None:
    assert release_started(rollout("Progressing"))
    assert release_started(rollout("Paused"))
    assert not release_started(rollout("Healthy"))


def test_outcomes_read_as_the_demo_prints_them() -> None:
    done = rollout("Healthy", analysis=check(3, 100.0, True, failed=1))
    assert format_outcome("healthy", PROMOTED, done).plain == (
        "healthy release: promoted by its metrics (3 checks, 1 failed)")
    done["status"]["message"] = "rolled back: analysis failed 4 check(s)"
    assert format_outcome("failing", ROLLED_BACK, done).plain == (
        "failing release: rolled back by its metrics (3 checks, 1 failed): "
        "rolled back: analysis failed 4 check(s)")
    assert format_outcome("healthy", None, rollout()).plain.startswith("healthy release: did not end")


def test_an_error_counts_against_base_unless_an_untagged_request_went_through_a_canary() -> None:
    tally = Tally()
    tally.record("canary", 500, CANARY_FAILURE)
    tally.record("untagged", 500, CANARY_FAILURE)
    tally.record("base", 200, BASE_ANSWER)
    assert tally.base_errors == []
    tally.record("base", 0, "no answer: refused")
    tally.record("untagged", 503, "no healthy upstream")
    assert tally.base_errors == ["base: HTTP 0 no answer: refused", "untagged: HTTP 503 no healthy upstream"]
    tally.settle({"127.0.0.9"})
    assert len(tally.base_errors) == 2
    assert format_load(tally) == ("requests through the gateway: 1 canary (1 errors), 2 base "
                                  "(1 errors), 2 untagged (2 errors); 2 base errors")


def test_untagged_errors_wait_for_the_canaries_the_watcher_saw_later() -> None:
    tally = Tally()
    tally.record("untagged", 500, CANARY_FAILURE)
    tally.settle(set())
    assert len(tally.base_errors) == 1
    assert "127.0.0.9" in tally.base_errors[0]
    later = Tally()
    later.record("untagged", 500, CANARY_FAILURE)
    later.settle({"127.0.0.1", "127.0.0.9"})
    assert later.base_errors == []


def test_hop_ips_are_read_from_an_answer() -> None:
    assert hop_ips(BASE_ANSWER) == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}
    assert hop_ips("no answer: refused") == set()


def test_the_verdict_names_what_did_not_happen() -> None:
    served = Tally(sent={"base": 3})
    assert missing(PROMOTED, ROLLED_BACK, served) == []
    wrong = missing(None, PROMOTED, Tally(sent={"base": 3}, base_errors=["base: HTTP 503 x"]))
    assert wrong == [
        "the healthy release was not promoted by its metrics (saw no outcome)",
        "the failing release did not roll back by itself (saw ('True', 'Promoted'))",
        "1 request on base got an error, first: base: HTTP 503 x",
    ]
    assert missing(PROMOTED, ROLLED_BACK, Tally()) == ["no request was sent through the gateway"]


def test_an_unknown_story_or_an_offline_or_asm_analysis_is_refused_before_anything_starts() -> None:
    result = invoke("demo", "--story", "flagger")
    assert result.exit_code == 2
    assert "'flagger' is not one of chain, analysis" in result.stderr
    result = invoke("demo", "--story", "analysis", "--offline")
    assert result.exit_code == 2
    assert "runs live only" in result.stderr
    for story in ("analysis", "chain"):
        result = invoke("demo", "--story", story, "--flavour", "asm")
        assert result.exit_code == 2
        assert "the local mesh is open-source Istio, and the asm flavour's routes" in result.stderr
