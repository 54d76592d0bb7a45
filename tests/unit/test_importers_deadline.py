"""kubectl lane convert: Flagger's `progressDeadlineSeconds` and Argo's `progressDeadlineAbort`
become the WorkloadRollout's own progress deadline, which rolls a late canary back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from .test_cli import invoke
from .test_cli_convert_progressive import ARGO, FLAGGER, converted, documents, parsed, refused, write


def canary(**spec: Any) -> dict[str, Any]:
    """The podinfo Canary with `spec` merged in."""
    doc = copy.deepcopy(documents(FLAGGER)[0])
    doc["spec"].update(spec)
    return doc


def rollout(**spec: Any) -> list[dict[str, Any]]:
    """The checkout Rollout (and the templates beside it) with `spec` merged into the Rollout."""
    docs = copy.deepcopy(documents(ARGO))
    docs[0]["spec"].update(spec)
    return docs


def deadline_of(tmp_path: Path, docs: list[dict[str, Any]]) -> tuple[int | None, str]:
    """The converted WorkloadRollout's progress deadline, as the model reads it, and the notes."""
    result = invoke("convert", "-f", write(tmp_path, docs))
    assert result.exit_code == 0, result.output
    [model], _ = parsed(list(converted(write(tmp_path, docs))))
    return model.spec.progress_deadline_seconds, result.stderr


def test_a_flagger_deadline_becomes_the_rollouts_own(tmp_path: Path) -> None:
    deadline, notes = deadline_of(tmp_path, [canary(progressDeadlineSeconds=60)])
    assert deadline == 60
    assert "progressDeadlineSeconds" not in notes


def test_a_flagger_canary_without_one_gets_none(tmp_path: Path) -> None:
    assert deadline_of(tmp_path, [canary()])[0] is None


@pytest.mark.parametrize("value", [0, -1, "10m", True], ids=["zero", "negative", "text", "bool"])
def test_a_flagger_deadline_that_is_not_seconds_is_refused(tmp_path: Path, value: Any) -> None:
    [line] = refused(tmp_path, [canary(progressDeadlineSeconds=value)])
    assert "Canary/podinfo: spec.progressDeadlineSeconds: " in line
    assert "positive number of seconds" in line


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"progressDeadlineAbort": True, "progressDeadlineSeconds": 90}, 90),
        ({"progressDeadlineAbort": True}, 600),
        ({"progressDeadlineAbort": False, "progressDeadlineSeconds": 90}, None),
        ({}, None),
    ],
    ids=["abort-with-seconds", "abort-argo-default", "no-abort", "neither"],
)
def test_argo_aborts_on_its_deadline_only_with_progress_deadline_abort(
    tmp_path: Path, spec: dict[str, Any], expected: int | None
) -> None:
    deadline, notes = deadline_of(tmp_path, rollout(**spec))
    assert deadline == expected
    assert "spec.progressDeadlineAbort:" not in notes


def test_an_argo_deadline_without_abort_is_dropped_with_a_note(tmp_path: Path) -> None:
    notes = deadline_of(tmp_path, rollout(progressDeadlineSeconds=90))[1]
    assert "Rollout/checkout: spec.progressDeadlineSeconds: dropped; without " \
           "progressDeadlineAbort" in notes


def test_an_argo_abort_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    [line] = refused(tmp_path, rollout(progressDeadlineAbort="yes"))
    assert "Rollout/checkout: spec.progressDeadlineAbort: 'yes': must be true or false" in line
