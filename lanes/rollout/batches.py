"""Batch arithmetic, as OpenKruise Rollout does it: how many canary pods a step wants, and
whether the step's pods count as ready."""

from __future__ import annotations

import math

from lanes.api.workloadrollout import CanaryStep


def scaled_value(value: int | str, total: int, round_up: bool = True) -> int:
    """An int-or-percent against a total (Kubernetes' `GetScaledValueFromIntOrPercent`)."""
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def step_replicas(step: CanaryStep, base_replicas: int) -> int:
    """Canary pods one step runs (Kruise's `CalculateBatchReplicas`).

    A percentage is of the base Deployment's replicas, rounded up, so any non-zero percent of a
    non-empty base gives at least one pod. Like Kruise, a step never asks for more pods than
    the base has.
    """
    wanted = scaled_value(step.replicas, base_replicas)
    return max(0, min(wanted, base_replicas))


def is_batch_ready(
    desired: int, updated: int, available: int, failure_threshold: int | str | None = None
) -> bool:
    """Whether a batch is ready (Kruise's `IsBatchReady`).

    All `desired` pods must exist on the new template; `failure_threshold` of them (a count, or
    a percentage of the updated pods) may be unavailable, but never all of them.
    """
    if updated < desired:
        return False
    tolerated = scaled_value(failure_threshold, updated) if failure_threshold is not None else 0
    if available + tolerated < desired:
        return False
    return not (desired > 0 and available == 0)
