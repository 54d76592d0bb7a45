"""SwimLane: one lane of a group, laid out as ASM's ASMSwimLane.

A lane joins its group by the label `swimlane-group: <group>`; its `labelSelector` says which
pods are in it; its ingress rules or weight say which requests enter it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import GROUP_LABEL, Condition, Model, RequestMatch, Resource, ServiceRef

KIND = "SwimLane"


class Destination(Model):
    """The entry service of a rule: a group service's host, optionally a port."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)


class RuleRoute(Model):
    """Where a matching request goes: the lane's version of this service."""

    destination: Destination


class IngressRule(Model):
    """A gateway rule that puts matching requests into this lane (`rule_based`)."""

    name: str = Field(min_length=1)
    online: bool = True
    hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    match: RequestMatch = Field(default_factory=RequestMatch)
    route: RuleRoute


class WeightDestination(Model):
    """The entry service under `weighted`; ASM writes `{}` when it is the rules' destination."""

    host: str | None = None
    subset: str | None = None


class IngressWeight(Model):
    """This lane's share, in percent, of the requests the group's weighted rule matches."""

    destination: WeightDestination = Field(default_factory=WeightDestination)
    weight: int = Field(default=0, ge=0, le=100)


class SwimLaneSpec(Model):
    """What a SwimLane declares."""

    label_selector: dict[str, str] = Field(min_length=1)
    ingress_rules: list[IngressRule] = Field(default_factory=list)
    ingress_weight: IngressWeight | None = None
    services: list[ServiceRef] = Field(default_factory=list)


class SwimLaneStatus(Model):
    """What the operator last saw of a lane; `specInForce` is the spec its routes were last
    rendered from, which stay in force while an edit that makes the lane invalid is set aside."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    spec_in_force: SwimLaneSpec | None = None


class SwimLane(Resource[SwimLaneSpec, SwimLaneStatus]):
    """A lane (cluster-scoped)."""

    kind: Literal["SwimLane"] = KIND

    @property
    def name(self) -> str:
        """The lane's name, which is also its subset name and its header value."""
        return self.metadata.name

    @property
    def group(self) -> str | None:
        """The group this lane joins, from its `swimlane-group` label."""
        return self.metadata.labels.get(GROUP_LABEL)
