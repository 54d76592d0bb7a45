"""Pure rendering: (group, lanes, what is observed) -> the VirtualServices and DestinationRules.

Output is plain dicts in a stable order (gateway objects, then each service's VirtualService,
then each service's DestinationRule, services sorted by `namespace/name`), every object labelled
with its owner so the operator can diff, apply and prune what a group owns. The mesh flavour
(`istio`, the default, or `asm`) decides the shape; see `Flavour`.
"""

from __future__ import annotations

from collections.abc import Sequence

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import Topology, resolve

from . import sticky
from .asm import AsmFlavour
from .base import Flavour, gc_paused
from .istio import IstioFlavour
from .trace_affinity import TraceAffinityModule, trace_id_mode, wasm_plugins

FLAVOURS: dict[str, Flavour] = {f.name: f for f in (IstioFlavour(), AsmFlavour())}
DEFAULT_FLAVOUR = "istio"

__all__ = [
    "DEFAULT_FLAVOUR",
    "FLAVOURS",
    "Flavour",
    "TraceAffinityModule",
    "flavour_for",
    "managed_selector",
    "object_key",
    "owner_selector",
    "render_group",
    "render_service",
    "render_topology",
    "trace_id_mode",
]


def flavour_for(name: str | None) -> Flavour:
    """The flavour called `name` (`istio` when None).

    Raises:
        ValueError: for an unknown name.
    """
    try:
        return FLAVOURS[name or DEFAULT_FLAVOUR]
    except KeyError:
        known = ", ".join(sorted(FLAVOURS))
        raise ValueError(f"unknown flavour {name!r} (known: {known})") from None


def _flavour_of(topology: Topology, flavour: str | None) -> Flavour:
    try:
        return flavour_for(flavour or topology.group.spec.flavour)
    except ValueError as exc:
        raise InvalidSpec(
            [FieldError("SwimLaneGroup", topology.group.name, "spec.flavour", str(exc))]
        ) from None


def render_group(
    group: SwimLaneGroup,
    lanes: Sequence[SwimLane],
    observed: Observations | None = None,
    flavour: str | None = None,
    trace_affinity: TraceAffinityModule | None = None,
) -> list[dict]:
    """All generated objects, in a stable order. flavour None = group.spec.flavour.

    Raises:
        InvalidSpec: naming each object and field that keeps the group from rendering.
    """
    with gc_paused():
        return render_topology(resolve(group, list(lanes), observed), flavour, trace_affinity)


def render_topology(
    topology: Topology,
    flavour: str | None = None,
    trace_affinity: TraceAffinityModule | None = None,
) -> list[dict]:
    """All generated objects of an already resolved group, in a stable order.

    With `trace_affinity`, a group of the istio flavour in ASM's trace-ID mode also gets the
    WasmPlugins that load the module (last, after the DestinationRules); ASM's own proxies
    do this themselves, so the asm flavour never gets them. A lane entry with
    `sessionAffinity` is decided per user by the same module at the gateway (`sticky`), and
    per request where there is no module to do it (no `trace_affinity`, the asm flavour, a
    weighted ingress).

    Raises:
        InvalidSpec: naming each object and field that keeps the group from rendering.
    """
    chosen = _flavour_of(topology, flavour)
    with_module = trace_affinity is not None and chosen.name == DEFAULT_FLAVOUR
    if not with_module or not sticky.supported(topology):
        topology = sticky.without_sticky_entry(topology)
    objects = chosen.render(topology)
    if trace_affinity is not None and chosen.name == DEFAULT_FLAVOUR:
        objects += wasm_plugins(topology, trace_affinity, chosen.owner_labels(topology.group.name))
        objects += sticky.entry_plugins(topology, trace_affinity,
                                        chosen.owner_labels(topology.group.name))
    return objects


def render_service(topology: Topology, service: str, flavour: str | None = None) -> list[dict]:
    """Just the mesh VirtualService + DestinationRule of one service (`namespace/name`).

    For re-rendering after one observation changed, without touching the other services.

    Raises:
        InvalidSpec: when `service` is not in the group, or the group cannot render.
    """
    return _flavour_of(topology, flavour).render_service(topology, service)


def object_key(obj: dict) -> tuple[str, str, str, str]:
    """An object's identity for diffing: (API group, kind, namespace, name).

    The version is left out, so the same object read back at another served version matches.
    """
    api_version = obj.get("apiVersion", "")
    api_group = api_version.rpartition("/")[0]
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    return (api_group, obj.get("kind", ""), namespace, metadata.get("name", ""))


def owner_selector(group_name: str, flavour: str | None = None) -> dict[str, str]:
    """The labels selecting every object generated for one group in a flavour.

    Raises:
        ValueError: for an unknown flavour.
    """
    return flavour_for(flavour).owner_labels(group_name)


def managed_selector(flavour: str | None = None) -> dict[str, str]:
    """The labels selecting every object a flavour generates, for any group.

    Raises:
        ValueError: for an unknown flavour.
    """
    return flavour_for(flavour).managed_labels()
