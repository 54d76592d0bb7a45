"""A rollout the API server stored but lanes cannot read gets a condition naming each field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from lanes.api.errors import from_validation_error
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout.conditions import INVALID_SPEC, invalid_status

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def rollout(replicas: object) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "WorkloadRollout",
        "metadata": {"name": "r", "namespace": "default", "generation": 3},
        "spec": {
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mocka-v1"},
            "strategy": {"canary": {"steps": [{"replicas": replicas}]}},
        },
    }


def errors_of(body: dict):
    with pytest.raises(ValidationError) as raised:
        WorkloadRollout.model_validate(body)
    return from_validation_error(raised.value, "WorkloadRollout", "r")


def test_the_condition_names_the_field_and_keeps_the_rest_of_status() -> None:
    status = invalid_status({"phase": "Healthy", "conditions": [{"type": "Succeeded", "status": "True"}]},
                            errors_of(rollout(-1)), 3, NOW)
    assert status["phase"] == "Healthy"
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "False" and progressing["reason"] == INVALID_SPEC
    assert "spec.strategy.canary.steps[0].replicas" in progressing["message"]
    assert progressing["observedGeneration"] == 3
    assert [c["type"] for c in status["conditions"]] == ["Progressing", "Succeeded"]


def test_the_same_errors_again_give_the_same_status() -> None:
    errors = errors_of(rollout(-1))
    first = invalid_status(None, errors, 3, NOW)
    again = invalid_status(first, errors, 3, NOW.replace(year=2027))
    assert again == first
