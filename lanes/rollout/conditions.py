"""Kubernetes-style status conditions, set one way for every kind lanes writes. Pure.

`lastTransitionTime` moves only when a condition's status flips, so a status rewritten with
equal content is recognised as no change. The planners keep conditions as `Condition` models
(`set_condition`), the operator's group and lane status as wire dicts (`condition`); both go
through `condition`, and `invalid_status` is the status of any kind whose spec lanes cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from lanes.api.common import Condition
from lanes.api.errors import FieldError

from .status import timestamp

PROGRESSING = "Progressing"
SUCCEEDED = "Succeeded"
READY = "Ready"
METRICS_AVAILABLE = "MetricsAvailable"
INVALID_SPEC = "InvalidSpec"
WORKLOAD_NOT_FOUND = "WorkloadNotFound"
NOT_FOUND = (WORKLOAD_NOT_FOUND,)
"""Reasons of a condition that says a reference names no object; each gets an event once."""


def condition(
    previous: Sequence[Mapping[str, Any]],
    kind: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> dict[str, Any]:
    """One condition as written on the wire, keeping the previous `lastTransitionTime` when
    its status is unchanged."""
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
    out: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def put_condition(
    previous: Sequence[Mapping[str, Any]], kind: str, status: str, reason: str, message: str,
    generation: int | None, now: str,
) -> list[dict[str, Any]]:
    """Wire conditions with one set, sorted by type."""
    new = condition(previous, kind, status, reason, message, generation, now)
    others = [c for c in previous if c.get("type") != kind]
    return sorted([*others, new], key=lambda c: str(c.get("type")))


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
    """Conditions with one set, sorted by type."""
    old = [c.to_wire() for c in conditions if c.type == kind]
    new = Condition.model_validate(
        condition(old, kind, status, reason, message, generation, timestamp(now))
    )
    return sorted([*(c for c in conditions if c.type != kind), new], key=lambda c: c.type)


def invalid_status(
    status: Mapping[str, Any] | None,
    errors: Sequence[FieldError],
    generation: int | None,
    now: datetime,
    kind: str = PROGRESSING,
    with_message: bool = False,
) -> dict[str, Any]:
    """The status of an object whose spec the API server stored but lanes cannot read (a value
    the schema lets through, like `replicas: -1`): what it held before, with condition `kind`
    False naming every broken field, so the owner sees what to fix and nothing is rolled.

    Raw dicts, since the stored status may not parse either. `with_message` also puts the
    errors in `message` and stamps `observedGeneration`, as the kinds whose status has them.
    """
    out = dict(status or {})
    conditions = [c for c in out.get("conditions") or [] if isinstance(c, Mapping)]
    message = "; ".join(f"{e.path}: {e.message}" for e in errors)
    out["conditions"] = put_condition(conditions, kind, "False", INVALID_SPEC, message,
                                      generation, timestamp(now))
    if with_message:
        out["message"] = message
        if generation is not None:
            out["observedGeneration"] = generation
    return out


def newly_missing(
    old: Sequence[Condition], new: Sequence[Condition]
) -> list[tuple[str, str]]:
    """(reason, message) of each condition of `new` that says a reference names no object
    (`NOT_FOUND`) and that `old` did not say already: the events to post, once each."""
    said = {(c.type, c.reason, c.message) for c in old}
    return [(c.reason, c.message) for c in new
            if c.reason in NOT_FOUND and (c.type, c.reason, c.message) not in said]
