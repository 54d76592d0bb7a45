"""SwimLaneGroup: the services of one call chain, its gateway, lane header and fallback lane.

The spec is laid out as ASM's ASMSwimLaneGroup, so an existing spec pastes in unchanged; lanes
adds `flavour`, `propagation` and per-service `calls`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import (
    API_VERSION,
    Condition,
    DnsLabel,
    HeaderName,
    Metadata,
    Model,
    RequestMatch,
    ServiceRef,
)

KIND = "SwimLaneGroup"
Flavour = Literal["istio", "asm"]
Propagation = Literal["header", "baggage"]
# `rule-based` is the spelling of ASM's API reference; it is kept as written so echoes match.
RoutingStrategy = Literal["rule_based", "rule-based", "weighted"]


class Gateway(Model):
    """The Istio Gateway ingress routes are bound to."""

    name: DnsLabel
    namespace: DnsLabel = "istio-system"
    type: str | None = None


class WeightedRoutingRule(Model):
    """Under `weighted`, which requests enter the lanes; they are then split by lane weights."""

    hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    request_matches: list[RequestMatch] = Field(default_factory=list)


class IngressRouting(Model):
    """How requests at the gateway are put into lanes."""

    ingress_routing_strategy: RoutingStrategy = "rule_based"
    weighted_routing_rule: WeightedRoutingRule | None = None


class Ingress(Model):
    """The group's entry: the gateway and how it assigns lanes."""

    gateway: Gateway
    ingress_routing: IngressRouting = Field(default_factory=IngressRouting)


class PermissiveModeConfiguration(Model):
    """The lane header, the trace header and the lane that serves what a lane lacks."""

    fallback_target: DnsLabel
    route_header: HeaderName = "x-asm-prefer-tag"
    trace_header: HeaderName | None = None


class GroupService(ServiceRef):
    """A group service; `calls` declares the services it sends requests to."""

    calls: list[str] = Field(default_factory=list)


class SwimLaneGroupSpec(Model):
    """What a SwimLaneGroup declares."""

    ingress: Ingress
    is_permissive: bool = False
    permissive_mode_configuration: PermissiveModeConfiguration
    auto_update: bool = False
    services: list[GroupService] = Field(min_length=1)
    flavour: Flavour = "istio"
    propagation: Propagation = "header"

    @property
    def fallback(self) -> str:
        """The lane that serves every service a request's own lane has no pods of."""
        return self.permissive_mode_configuration.fallback_target

    @property
    def route_header(self) -> str:
        """The header that carries a request's lane from hop to hop."""
        return self.permissive_mode_configuration.route_header


class LaneMembers(Model):
    """Status: the services a lane has ready pods of."""

    name: str
    services: list[str] = Field(default_factory=list)


class SwimLaneGroupStatus(Model):
    """What the operator last did for a group."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    lanes: list[LaneMembers] = Field(default_factory=list)
    generated: int | None = None
    message: str | None = None


class SwimLaneGroup(Model):
    """A lane group (cluster-scoped)."""

    api_version: Literal["lanes.dev/v1alpha1"] = API_VERSION
    kind: Literal["SwimLaneGroup"] = KIND
    metadata: Metadata
    spec: SwimLaneGroupSpec
    status: SwimLaneGroupStatus | None = None

    @property
    def name(self) -> str:
        """The group's name, which generated objects carry in their names and labels."""
        return self.metadata.name
