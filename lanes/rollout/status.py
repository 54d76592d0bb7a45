"""Status helpers: timestamps, steps, and what a phase means (conditions are in `conditions`)."""

from __future__ import annotations

from datetime import UTC, datetime

from lanes.api.workloadrollout import CanaryStep, WorkloadRollout, WorkloadRolloutStatus

IN_STEPS = ("Progressing", "Paused", "Failed")
IN_PROGRESS = (*IN_STEPS, "Promoting", "RollingBack")


def utc(now: datetime) -> datetime:
    """A datetime in UTC; a naive one is taken to be UTC already."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def timestamp(now: datetime) -> str:
    """RFC 3339 with second precision, as Kubernetes writes `metav1.Time`."""
    return utc(now).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """A timestamp written by `timestamp` (or any ISO 8601 one), or None."""
    if not value:
        return None
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def status_of(rollout: WorkloadRollout) -> WorkloadRolloutStatus:
    """The rollout's status, or the empty one a new rollout starts from."""
    return rollout.status or WorkloadRolloutStatus()


def current_step(rollout: WorkloadRollout, index: int) -> CanaryStep:
    """Step `index` (1-based); an index past the end (steps were removed) is the last step."""
    steps = rollout.spec.strategy.canary.steps
    return steps[min(max(index, 1), len(steps)) - 1]


def step_count(rollout: WorkloadRollout) -> int:
    """How many steps the rollout has."""
    return len(rollout.spec.strategy.canary.steps)
