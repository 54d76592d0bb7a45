"""Pieces shared by every lanes.dev kind: the model base, object metadata, matches, conditions."""

from __future__ import annotations

import re
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

GROUP = "lanes.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
GROUP_LABEL = "swimlane-group"

_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Model(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected.

    Rejecting unknown fields turns a typo such as `fallbackTraget` into an error that names it,
    instead of a silently ignored setting.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict:
        """The object as it is written in YAML: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _header_name(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid HTTP header name (lower-case token characters only)"
        )
    return value


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a valid DNS label (lower-case a-z, 0-9 and '-')")
    return value


def _dns_name(value: str) -> str:
    if len(value) > 253 or not _DNS_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid object name (a DNS subdomain: lower-case a-z, 0-9, '-', '.')"
        )
    return value


HeaderName = Annotated[
    str,
    AfterValidator(_header_name),
    WithJsonSchema({"type": "string", "pattern": _HEADER_NAME.pattern}),
]
DnsLabel = Annotated[
    str,
    AfterValidator(_dns_label),
    WithJsonSchema({"type": "string", "maxLength": 63, "pattern": _DNS_LABEL.pattern}),
]

DnsName = Annotated[
    str,
    AfterValidator(_dns_name),
    WithJsonSchema({"type": "string", "maxLength": 253, "pattern": _DNS_NAME.pattern}),
]


class Metadata(Model):
    """The part of ObjectMeta the planners read; everything else passes through untouched."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")


class StringMatch(Model):
    """Istio's StringMatch: exactly one of exact, prefix or regex."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> StringMatch:
        given = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a string match needs exactly one of exact, prefix or regex")
        return self


class RequestMatch(Model):
    """One request match: a uri and header matches, all of which must hold."""

    uri: StringMatch | None = None
    headers: dict[HeaderName, StringMatch] = Field(default_factory=dict)


class ClusterRef(Model):
    """The cluster a service lives in (ASM multi-cluster); carried, not used for routing."""

    id: str | None = None
    name: str | None = None


class ServiceRef(Model):
    """A Kubernetes Service taking part in a lane group."""

    name: DnsLabel
    namespace: DnsLabel = "default"
    cluster: ClusterRef | None = None

    @property
    def key(self) -> str:
        """The service's identity in the graph and in observations: `namespace/name`."""
        return f"{self.namespace}/{self.name}"

    @property
    def host(self) -> str:
        """The fully qualified host Istio routes on."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"


class Condition(Model):
    """A Kubernetes-style status condition."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str | None = None


Spec = TypeVar("Spec", bound=BaseModel)
Status = TypeVar("Status", bound=BaseModel)


class Resource(Model, Generic[Spec, Status]):
    """Base of the four kinds, written as `apiVersion`, `kind`, `metadata`, `spec`, `status`.

    A kind names its `kind` (a Literal, so a document of another kind is refused) and its spec
    and status models; the order of the fields, and so of a written document, stays this one.
    """

    api_version: Literal["lanes.dev/v1alpha1"] = API_VERSION
    kind: str
    metadata: Metadata
    spec: Spec
    status: Status | None = None


def service_key(host: str, default_namespace: str = "default") -> str:
    """The `namespace/name` key for a host written as `name`, `name.ns`, `ns/name` or an FQDN."""
    if "/" in host:
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{default_namespace}/{parts[0]}"
    return f"{parts[1]}/{parts[0]}"
