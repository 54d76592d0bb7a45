"""Plan one group's reconcile from raw objects: parse, observe, render. Pure.

Kept apart from the handlers so the whole decision (which objects, or why none) is a function
of its inputs that unit tests drive without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lanes.api.common import GROUP_LABEL
from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.load import parse_object
from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.render import FLAVOURS, owner_selector, render_group
from lanes.render.observe import PodView, observe


@dataclass(frozen=True)
class Inputs:
    """What the operator has seen of one group: raw bodies, Service selectors and pods."""

    group: Mapping[str, Any]
    lanes: Sequence[Mapping[str, Any]] = ()
    services: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    pods: Sequence[PodView] = ()


@dataclass
class GroupPlan:
    """The outcome of planning: desired objects, or the errors that keep routes as they are."""

    name: str
    generation: int | None
    group: SwimLaneGroup | None = None
    lanes: list[SwimLane] = field(default_factory=list)
    lane_names: list[str] = field(default_factory=list)
    observed: Observations | None = None
    desired: list[dict] | None = None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """True when the group rendered; False means no route may change."""
        return self.desired is not None

    def errors_of(self, kind: str, name: str) -> list[FieldError]:
        """The errors naming one object."""
        return [e for e in self.errors if e.kind == kind and e.name == name]


def owners(name: str) -> list[tuple[str, dict[str, str]]]:
    """Owner selectors of a group in every flavour, each with the API version to list at.

    Cleanup and pruning look in all flavours, so changing a group's flavour removes the
    objects of the old one.
    """
    return [(f.api_version, owner_selector(name, f.name)) for f in FLAVOURS.values()]


def lane_bodies_of(name: str, lanes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The lane bodies that join group `name` by label, sorted by name."""
    joined = [
        lane for lane in lanes
        if ((lane.get("metadata") or {}).get("labels") or {}).get(GROUP_LABEL) == name
    ]
    return sorted(joined, key=lambda lane: lane["metadata"]["name"])


def plan_group(inputs: Inputs) -> GroupPlan:
    """Parse the group and its lanes, observe lane membership and render the desired objects.

    Any parse, cross-object or render error leaves `desired` None, so the caller keeps the
    objects generated before; every error is kept so status can name them all.
    """
    metadata = inputs.group.get("metadata") or {}
    plan = GroupPlan(name=metadata.get("name", ""), generation=metadata.get("generation"))
    errors: list[FieldError] = []
    try:
        plan.group = parse_object(dict(inputs.group))
    except InvalidSpec as exc:
        errors.extend(exc.errors)
    for body in lane_bodies_of(plan.name, inputs.lanes):
        plan.lane_names.append(body["metadata"]["name"])
        try:
            plan.lanes.append(parse_object(dict(body)))
        except InvalidSpec as exc:
            errors.extend(exc.errors)
    if plan.group is not None:
        plan.observed = observe(plan.group, plan.lanes, inputs.services, inputs.pods)
    if errors or plan.group is None:
        plan.errors = errors
        return plan
    try:
        plan.desired = render_group(plan.group, plan.lanes, plan.observed)
    except InvalidSpec as exc:
        plan.errors = list(exc.errors)
    return plan
