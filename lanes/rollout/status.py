"""Status helpers: timestamps, conditions, and what a phase means."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lanes.api.common import Condition
from lanes.api.errors import FieldError
from lanes.api.workloadrollout import CanaryStep, WorkloadRollout, WorkloadRolloutStatus

PROGRESSING = "Progressing"
SUCCEEDED = "Succeeded"
METRICS_AVAILABLE = "MetricsAvailable"
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


def find_condition(conditions: Sequence[Condition], kind: str) -> Condition | None:
    """The condition of one type, if set."""
    return next((c for c in conditions if c.type == kind), None)


def set_condition(
    conditions: Sequence[Condition],
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Conditions with one set; `lastTransitionTime` moves only when its status changes."""
    old = find_condition(conditions, kind)
    changed = old is None or old.status != status
    new = Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=timestamp(now) if changed else old.last_transition_time,
    )
    out = [c for c in conditions if c.type != kind]
    out.append(new)
    return sorted(out, key=lambda c: c.type)


INVALID_SPEC = "InvalidSpec"


def invalid_status(
    status: Mapping[str, Any] | None, errors: Sequence[FieldError], generation: int | None, now: datetime
) -> dict[str, Any]:
    """The status of a rollout whose spec the API server stored but lanes cannot read (a value
    the schema lets through, like `replicas: -1`): what it held before, with `Progressing`
    False naming every broken field, so the owner sees what to fix and nothing is rolled.

    Raw dicts, since the stored status may not parse either."""
    status = dict(status or {})
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    old = next((c for c in conditions if c.get("type") == PROGRESSING), None)
    changed = old is None or old.get("status") != "False"
    condition = {
        "type": PROGRESSING,
        "status": "False",
        "reason": INVALID_SPEC,
        "message": "; ".join(f"{e.path}: {e.message}" for e in errors),
        "observedGeneration": generation,
        "lastTransitionTime": timestamp(now) if changed else old.get("lastTransitionTime"),
    }
    others = [c for c in conditions if c.get("type") != PROGRESSING]
    status["conditions"] = sorted([*others, condition], key=lambda c: str(c.get("type")))
    return status
