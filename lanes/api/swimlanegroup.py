"""SwimLaneGroup: the services of one call chain, its gateway, lane header and lane mode.

The spec is laid out as ASM's ASMSwimLaneGroup, so an existing spec pastes in unchanged; lanes
adds `flavour`, `propagation`, `fallbackSubsets` and per-service `calls`.

ASM's two lane modes are kept: permissive (`isPermissive: true`), where a lane may hold some
of the services and a request falls back to the fallback lane for the rest, following the lane
header it carries; and strict (`isPermissive: false` or unset), where every lane holds every
service, each hop is routed by the calling pod's own lane labels, and nothing falls back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from .analysis import Duration
from .common import Condition, DnsLabel, HeaderName, Model, RequestMatch, Resource, ServiceRef

KIND = "SwimLaneGroup"
DEFAULT_ROUTE_HEADER = "x-asm-prefer-tag"
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
    """The lane header, the trace header and the lane that serves what a lane lacks.

    `fallbackTarget` is required in permissive mode and has no meaning in strict mode (checked
    with the lanes, so the error names the mode); the lane header applies to both.
    """

    fallback_target: DnsLabel | None = None
    route_header: HeaderName = DEFAULT_ROUTE_HEADER
    trace_header: HeaderName | None = None


IstioObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A part of an Istio object written as Istio's own API has it (checked by Istio, not here)."""


class Retries(Model):
    """Istio's HTTPRetry: how often, and on what, a failed request to the service is retried."""

    attempts: int = Field(ge=0)
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None


class RouteSettings(Model):
    """The service's own VirtualService HTTP route settings, as Istio's HTTPRoute has them.

    lanes writes the service's routes, one per lane; these settings go on every one of them
    (and on the gateway's routes to the service), so taking a service over keeps them.
    `headers` are applied before lanes' own: the lane header a route sets always wins.
    """

    retries: Retries | None = None
    timeout: Duration | None = None
    cors_policy: IstioObject | None = None
    headers: IstioObject | None = None
    fault: IstioObject | None = None
    mirror: IstioObject | None = None
    mirror_percentage: IstioObject | None = None


class GroupService(ServiceRef):
    """A group service; `calls` declares the services it sends requests to.

    `http` and `trafficPolicy` are the settings the service's own VirtualService and
    DestinationRule had (Istio's HTTPRoute fields, and its TrafficPolicy: TLS mode, connection
    pool, outlier detection, load balancer); lanes applies them on every lane's route and
    subset of the service.
    """

    calls: list[str] = Field(default_factory=list)
    http: RouteSettings | None = None
    traffic_policy: IstioObject | None = None


_PERMISSIVE = "has(self.isPermissive) && self.isPermissive"
_FALLBACK = "has(self.permissiveModeConfiguration) && has(self.permissiveModeConfiguration.fallbackTarget)"


class SwimLaneGroupSpec(Model):
    """What a SwimLaneGroup declares."""

    # The lane mode's rules for the fallback, checked by the API server too (CEL).
    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!({_PERMISSIVE}) || ({_FALLBACK})",
                    "message": "permissive mode (isPermissive: true) needs "
                    "permissiveModeConfiguration.fallbackTarget, the lane that serves what a "
                    "lane lacks",
                },
                {
                    "rule": f"({_PERMISSIVE}) || !({_FALLBACK})",
                    "message": "strict mode (isPermissive: false or unset) has no fallback lane; "
                    "set isPermissive: true, or remove permissiveModeConfiguration.fallbackTarget",
                },
            ]
        },
    )

    ingress: Ingress
    is_permissive: bool = False
    permissive_mode_configuration: PermissiveModeConfiguration | None = None
    auto_update: bool = False
    services: list[GroupService] = Field(min_length=1)
    flavour: Flavour = "istio"
    propagation: Propagation = "header"
    fallback_subsets: bool = False

    @property
    def strict(self) -> bool:
        """Strict mode: every lane holds every service and hops follow the caller's lane."""
        return not self.is_permissive

    @property
    def fallback(self) -> str | None:
        """The lane that serves every service a request's own lane has no pods of.

        None in strict mode, which has no fallback.
        """
        if self.strict or self.permissive_mode_configuration is None:
            return None
        return self.permissive_mode_configuration.fallback_target

    @property
    def route_header(self) -> str:
        """The header that carries a request's lane from hop to hop (set at the gateway)."""
        config = self.permissive_mode_configuration
        return config.route_header if config is not None else DEFAULT_ROUTE_HEADER


class LaneMembers(Model):
    """Status: the services a lane has ready pods of."""

    name: str
    services: list[str] = Field(default_factory=list)


class SwimLaneGroupStatus(Model):
    """What the operator last did for a group; `generationInForce` is the generation whose
    routes were last put in force (an invalid lane is set aside only while the group itself has
    not changed since)."""

    observed_generation: int | None = None
    generation_in_force: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    lanes: list[LaneMembers] = Field(default_factory=list)
    generated: int | None = None
    message: str | None = None


class SwimLaneGroup(Resource[SwimLaneGroupSpec, SwimLaneGroupStatus]):
    """A lane group (cluster-scoped)."""

    kind: Literal["SwimLaneGroup"] = KIND

    @property
    def name(self) -> str:
        """The group's name, which generated objects carry in their names and labels."""
        return self.metadata.name
