"""The one interface every mesh flavour implements, and the order objects come out in."""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import Topology

from .facts import Facts, facts_of
from .names import label_value
from .settings import with_settings


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small, acyclic dicts.

    A 10,000-service render allocates about a million dicts; each allocation burst triggers
    collections that scan everything alive and find nothing to free, which more than doubles
    the render time. Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Flavour(ABC):
    """How one mesh flavour turns a Topology into VirtualServices and DestinationRules.

    Subclasses build the ingress objects and each service's pair from precomputed Facts; this
    class fixes the output order (ingress, then every VirtualService, then every
    DestinationRule, services sorted by key) so every flavour's output diffs stably.
    """

    name: ClassVar[str]
    api_version: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]] = ("VirtualService", "DestinationRule")
    weighted_entry: ClassVar[bool] = False
    """Whether the flavour renders a lane release's entry weight at the gateway."""

    def entry_route(self, group: SwimLaneGroup) -> tuple[str, str] | None:
        """The (namespace, name) of the gateway VirtualService carrying the group's entry
        weight; None for a flavour without weighted entry."""
        return None

    def entered_weight(self, route: dict, group: SwimLaneGroup, lane: str) -> int | None:
        """The share of untagged requests the live `entry_route` object puts into `lane`."""
        return None

    managed: ClassVar[dict[str, str]]
    """The labels every object of this flavour carries, whatever its group."""
    group_label: ClassVar[str]
    """The label naming the group an object was generated for."""

    def owner_labels(self, group: str) -> dict[str, str]:
        """The labels marking an object as generated for `group`; also its selector."""
        return {**self.managed, self.group_label: label_value(group)}

    def managed_labels(self) -> dict[str, str]:
        """The labels every object of this flavour carries, whatever its group."""
        return dict(self.managed)

    @abstractmethod
    def ingress(self, facts: Facts) -> list[dict]:
        """The VirtualServices bound to the group's gateway."""

    @abstractmethod
    def mesh(self, facts: Facts) -> Callable[[str], tuple[dict, dict]]:
        """A function giving one service's mesh VirtualService and DestinationRule.

        Values shared by every service (labels, name prefix, lane matches) are computed once
        when it is made, which is what keeps a 10,000-service render fast.
        """

    def networking_object(
        self, kind: str, name: str, namespace: str, labels: dict[str, str], spec: dict
    ) -> dict:
        """One object of this flavour's Istio API version, carrying its own copy of `labels`."""
        return {
            "apiVersion": self.api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": spec,
        }

    def gateway_route(self, facts: Facts, name: str, namespace: str, hosts: list[str],
                      http: list[dict]) -> dict:
        """A VirtualService bound to the group's ingress gateway."""
        gateway = facts.topology.group.spec.ingress.gateway
        spec = {"gateways": [f"{gateway.namespace}/{gateway.name}"], "hosts": hosts, "http": http}
        return self.networking_object(
            "VirtualService", name, namespace, self.owner_labels(facts.group), spec
        )

    def render(self, topology: Topology) -> list[dict]:
        """Every object of the group, in a stable order."""
        facts = facts_of(topology)
        virtual_services = self.ingress(facts)
        destination_rules = []
        pair = self.mesh(facts)
        with gc_paused():
            for service in topology.members:
                vs, dr = pair(service)
                virtual_services.append(vs)
                destination_rules.append(dr)
        return with_settings(virtual_services + destination_rules, topology.group.spec.services)

    def render_ingress(self, topology: Topology) -> list[dict]:
        """Just the gateway-bound objects."""
        return with_settings(self.ingress(facts_of(topology)), topology.group.spec.services)

    def render_service(self, topology: Topology, service: str) -> list[dict]:
        """Just one service's VirtualService and DestinationRule.

        Raises:
            InvalidSpec: when `service` is not a service of the group.
        """
        if service not in topology.members:
            raise InvalidSpec(
                [
                    FieldError(
                        "SwimLaneGroup",
                        topology.group.name,
                        "spec.services",
                        f"{service} is not a service of this group",
                    )
                ]
            )
        return with_settings(self.mesh(facts_of(topology))(service), topology.group.spec.services)
