"""Status of SwimLaneGroups and SwimLanes: conditions, lane members, counts. Pure.

Conditions follow Kubernetes conventions, set as every kind's are (`lanes.rollout.conditions`):
`Ready` answers "are this object's routes in force?" (what `kubectl wait --for=condition=Ready`
waits on), `Degraded` says something needs attention even when routes are in force. `lastTransitionTime` moves only when a condition's
status flips, so a status rewrite with equal content is recognised as no change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lanes.api.errors import FieldError
from lanes.render.observe import lane_services
from lanes.rollout.conditions import READY, condition

from .plan import CONFLICT, GroupPlan

DEGRADED = "Degraded"
SERVICES_NOT_FOUND = "ServicesNotFound"


def set_condition(previous: Sequence[Mapping[str, Any]], type_: str, status: bool, reason: str,
                  message: str, generation: int | None, now: str) -> dict[str, Any]:
    """A condition, keeping the previous lastTransitionTime when its status is unchanged."""
    return condition(previous, type_, "True" if status else "False", reason, message,
                     generation, now)


def describe(errors: Sequence[FieldError]) -> str:
    """Errors on one line each joined by `; `, naming object and field."""
    return "; ".join(str(e) for e in errors)


def _pair(
    previous: Sequence[Mapping[str, Any]],
    generation: int | None,
    now: str,
    ready: tuple[bool, str, str],
    degraded: tuple[bool, str, str],
) -> list[dict[str, Any]]:
    return [
        set_condition(previous, READY, *ready, generation, now),
        set_condition(previous, DEGRADED, *degraded, generation, now),
    ]


def _dropped_message(dropped: Mapping[str, Sequence[str]]) -> str:
    fields = "; ".join(f"{obj}: {', '.join(paths)}" for obj, paths in sorted(dropped.items()))
    return f"the installed CRDs do not declare, and the API server drops: {fields}"


def group_status(
    plan: GroupPlan,
    previous: Mapping[str, Any] | None,
    now: str,
    *,
    generated: int | None = None,
    dropped: Mapping[str, Sequence[str]] | None = None,
    failure: str | None = None,
) -> dict[str, Any]:
    """The status a group should have after a reconcile.

    Args:
        plan: the reconcile's plan.
        previous: the status the group has now (None when it has none).
        now: the timestamp to use for transitions.
        generated: how many objects the group has in force, when they were synced.
        dropped: fields the installed CRDs prune, by object.
        failure: why writing failed, when it did.
    """
    previous = previous or {}
    old = previous.get("conditions") or []
    if not plan.valid:
        message = describe(plan.errors)
        reason = plan.reason
        conditions = _pair(old, plan.generation, now, (False, reason, message), (True, reason, message))
    elif failure is not None:
        conditions = _pair(old, plan.generation, now, (False, "ApplyFailed", failure), (True, "ApplyFailed", failure))
    elif plan.aside:
        message = (f"lanes set aside: {describe([e for errors in plan.aside.values() for e in errors])}"
                   f"; the other lanes' routes are in force ({generated} generated objects)")
        conditions = _pair(old, plan.generation, now, (False, "InvalidSpec", message),
                           (True, "InvalidSpec", message))
    else:
        ready = (True, "RoutesInForce", f"{generated} generated objects in force")
        if plan.absent:
            degraded = (True, SERVICES_NOT_FOUND, describe(plan.absent))
        elif dropped:
            degraded = (True, "FieldsPruned", _dropped_message(dropped))
        else:
            degraded = (False, "AsExpected", "")
        conditions = _pair(old, plan.generation, now, ready, degraded)
    if plan.observed is not None:
        members = lane_services(plan.observed)
        lanes = [{"name": name, "services": members.get(name, [])} for name in plan.lane_names]
    else:
        lanes = list(previous.get("lanes") or [])
    in_force = plan.generation if plan.valid and failure is None else previous.get("generationInForce")
    return {
        "observedGeneration": plan.generation,
        "generationInForce": in_force,
        "conditions": conditions,
        "lanes": lanes,
        "generated": generated if generated is not None else previous.get("generated"),
        "message": conditions[0]["message"] or None,
    }


def lane_status(
    plan: GroupPlan,
    lane: Mapping[str, Any],
    now: str,
    *,
    failure: str | None = None,
) -> dict[str, Any]:
    """The status a lane of a planned group should have."""
    metadata = lane.get("metadata") or {}
    name = metadata.get("name", "")
    generation = metadata.get("generation")
    previous = lane.get("status") or {}
    old = previous.get("conditions") or []
    own = plan.errors_of("SwimLane", name)
    aside = plan.aside.get(name)
    if aside:
        kept = ("its last valid spec stays in force" if name in plan.kept
                else "its routes are not rendered")
        message = f"{describe(aside)}; set aside: {kept}, the group's other lanes go on"
        state = (False, "InvalidSpec", message), (True, "InvalidSpec", message)
    elif own:
        message = describe(own)
        state = (False, "InvalidSpec", message), (True, "InvalidSpec", message)
    elif not plan.valid and plan.reason == CONFLICT:
        message = f"group {plan.name} holds back its routes: {describe(plan.errors)}"
        state = (False, CONFLICT, message), (True, CONFLICT, message)
    elif not plan.valid:
        message = f"group {plan.name} is invalid: {describe(plan.errors)}"
        state = (False, "GroupInvalid", message), (True, "GroupInvalid", message)
    elif failure is not None:
        state = (False, "ApplyFailed", failure), (True, "ApplyFailed", failure)
    else:
        state = (True, "RoutesInForce", f"routes of group {plan.name} in force"), (False, "AsExpected", "")
    if plan.observed is not None:
        services = lane_services(plan.observed).get(name, [])
    else:
        services = list(previous.get("services") or [])
    rendered = plan.valid and failure is None and not aside
    return {
        "observedGeneration": generation,
        "conditions": _pair(old, generation, now, *state),
        "services": services,
        "specInForce": lane.get("spec") if rendered else previous.get("specInForce"),
    }


def orphan_lane_status(lane: Mapping[str, Any], group: str, now: str) -> dict[str, Any]:
    """The status of a lane whose `swimlane-group` label names no existing group."""
    metadata = lane.get("metadata") or {}
    generation = metadata.get("generation")
    old = (lane.get("status") or {}).get("conditions") or []
    message = f"group {group} does not exist"
    return {
        "observedGeneration": generation,
        "conditions": _pair(old, generation, now, (False, "GroupNotFound", message), (True, "GroupNotFound", message)),
        "services": [],
    }


def _compact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def same_status(new: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether writing `new` would leave `live` as it is (None values mean absent)."""
    live = dict(live or {})
    live_view = {k: live.get(k) for k in new}
    return _compact(dict(new)) == _compact(live_view)
