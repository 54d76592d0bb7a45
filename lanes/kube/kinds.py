"""The resources lanes reads and writes, by API group, version and plural."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lanes.api.common import GROUP, VERSION

ISTIO_GROUP = "networking.istio.io"


@dataclass(frozen=True)
class Kind:
    """One resource as the REST API addresses it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """`group/version`, or just `version` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def crd_name(self) -> str:
        """The name of the CustomResourceDefinition serving it."""
        return f"{self.plural}.{self.group}"

    def at(self, version: str) -> Kind:
        """The same resource addressed at another served version."""
        return replace(self, version=version)


SWIMLANEGROUP = Kind(GROUP, VERSION, "swimlanegroups", "SwimLaneGroup", namespaced=False)
SWIMLANE = Kind(GROUP, VERSION, "swimlanes", "SwimLane", namespaced=False)
VIRTUALSERVICE = Kind(ISTIO_GROUP, "v1", "virtualservices", "VirtualService", namespaced=True)
DESTINATIONRULE = Kind(ISTIO_GROUP, "v1", "destinationrules", "DestinationRule", namespaced=True)
WORKLOADROLLOUT = Kind(GROUP, VERSION, "workloadrollouts", "WorkloadRollout", namespaced=True)
LANERELEASE = Kind(GROUP, VERSION, "lanereleases", "LaneRelease", namespaced=True)
GENERATED = (VIRTUALSERVICE, DESTINATIONRULE)
# Loads the trace-affinity module for groups in ASM's trace-ID mode; listed at its own version
# whatever flavour's networking version the VirtualServices are listed at.
WASMPLUGIN = Kind("extensions.istio.io", "v1alpha1", "wasmplugins", "WasmPlugin", namespaced=True)

_BY_KIND = {
    k.kind: k for k in (SWIMLANEGROUP, SWIMLANE, VIRTUALSERVICE, DESTINATIONRULE, WASMPLUGIN)
}


def kind_of(obj: dict[str, Any]) -> Kind:
    """The resource of an object, at the version its apiVersion names.

    Raises:
        KeyError: for a kind lanes does not handle.
    """
    base = _BY_KIND[obj["kind"]]
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    if group != base.group:
        raise KeyError(f"{obj.get('apiVersion')} {obj['kind']} is not a kind lanes handles")
    return base.at(version)


M = TypeVar("M", bound=BaseModel)


def parse_all(bodies: Iterable[Mapping[str, Any]], model: type[M]) -> list[M]:
    """The bodies that parse; one that does not is reported on its own object, and holds
    nothing for the others."""
    parsed = []
    for body in bodies:
        try:
            parsed.append(model.model_validate(dict(body)))
        except ValidationError:
            continue
    return parsed
