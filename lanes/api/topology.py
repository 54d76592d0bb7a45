"""A group resolved with its lanes: checked across objects, lanes ordered, membership decided.

Rendering and the call graph both start from a Topology, so they agree on which lanes serve
which service and on the entry service.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .common import service_key
from .errors import FieldError, InvalidSpec
from .observations import Observations, TrafficStep
from .swimlane import SwimLane
from .swimlanegroup import SwimLaneGroup


@dataclass(frozen=True)
class Topology:
    """The resolved group: lanes fallback-first, and for each service the lanes serving it.

    In strict mode lanes are in name order and every lane serves every service.
    """

    group: SwimLaneGroup
    lanes: tuple[SwimLane, ...]
    members: dict[str, tuple[str, ...]]
    entry: str | None
    traffic: dict[str, TrafficStep] = field(default_factory=dict)

    @property
    def fallback(self) -> str | None:
        """The fallback lane's name; None in strict mode."""
        return self.group.spec.fallback

    @property
    def strict(self) -> bool:
        """Whether the group is in strict mode (no fallback; hops follow the caller's lane)."""
        return self.group.spec.strict

    @property
    def services(self) -> tuple[str, ...]:
        """Group service keys, sorted."""
        return tuple(self.members)

    @property
    def ingress_lanes(self) -> tuple[SwimLane, ...]:
        """Lanes in the order the gateway tries their rules: the fallback last.

        The fallback lane's rules are often the broadest (all of `/`), so trying them first
        would shadow every other lane's rules. Strict mode has no fallback: name order.
        """
        if self.strict:
            return self.lanes
        return self.lanes[1:] + self.lanes[:1]

    def lane(self, name: str) -> SwimLane:
        """A lane of the group by name."""
        return next(lane for lane in self.lanes if lane.name == name)

    def reobserve(self, service: str, ready: list[str]) -> Topology:
        """This topology after the lanes with ready pods of one service changed to `ready`.

        Membership follows resolve(): observations count only with autoUpdate in permissive
        mode, and the fallback always serves. Lets the operator re-render one service without
        resolving the group.
        """
        if self.strict or not self.group.spec.auto_update or service not in self.members:
            return self
        members = dict(self.members)
        members[service] = _serving([lane.name for lane in self.lanes], self.fallback, ready)
        return replace(self, members=members)

    def traffic_step(self, service: str) -> TrafficStep | None:
        """The traffic step of a service's release, while its lane serves the service.

        A lane's entry step (`enter`) holds whether or not the lane has pods of the entry
        service: the requests it tags reach the fallback's pods there and the lane's after.
        """
        step = self.traffic.get(service)
        if step is None or (not step.enter and step.lane not in self.members.get(service, ())):
            return None
        return step

    def serving(self, service: str, lane: str) -> str:
        """The lane whose pods serve `service` for a request in `lane`: its own, or the fallback.

        In strict mode always its own: a lane without ready pods of a service answers 503
        rather than send the request to another lane.
        """
        if self.strict or lane in self.members.get(service, ()):
            return lane
        return self.fallback


def _serving(names: list[str], fallback: str, ready: list[str]) -> tuple[str, ...]:
    """The lanes serving a service by observation: the fallback and those with ready pods."""
    present = set(ready)
    return tuple(n for n in names if n == fallback or n in present)


def lanes_of_group(group: SwimLaneGroup, lanes: list[SwimLane]) -> list[SwimLane]:
    """The lanes that join `group` by their `swimlane-group` label."""
    return [lane for lane in lanes if lane.group == group.name]


def validate(group: SwimLaneGroup, lanes: list[SwimLane]) -> list[FieldError]:
    """Every cross-object problem of a group and its lanes; types were checked on parsing."""
    errors: list[FieldError] = []
    spec = group.spec
    gname = group.name

    def group_error(path: str, message: str) -> None:
        errors.append(FieldError("SwimLaneGroup", gname, path, message))

    def lane_error(lane: SwimLane, path: str, message: str) -> None:
        errors.append(FieldError("SwimLane", lane.name, path, message))

    keys = [s.key for s in spec.services]
    for key, count in Counter(keys).items():
        if count > 1:
            group_error(f"spec.services[{keys.index(key)}]", f"service {key} is listed {count} times")
    group_keys = set(keys)

    names = [lane.name for lane in lanes]
    errors.extend(_mode_errors(group, names))

    seen_selectors: dict[tuple, str] = {}
    for lane in lanes:
        selector = tuple(sorted(lane.spec.label_selector.items()))
        if not selector:
            lane_error(lane, "spec.labelSelector", "must select pods by at least one label")
        elif selector in seen_selectors:
            lane_error(
                lane,
                "spec.labelSelector",
                f"selects the same pods as lane {seen_selectors[selector]!r}",
            )
        else:
            seen_selectors[selector] = lane.name

        lane_keys = [s.key for s in lane.spec.services]
        listed: set[str] = set()
        for i, key in enumerate(lane_keys):
            if key not in group_keys:
                lane_error(lane, f"spec.services[{i}]", f"{key} is not a service of group {gname!r}")
            elif key in listed:
                lane_error(lane, f"spec.services[{i}]", f"service {key} is listed twice")
            listed.add(key)
        if not spec.is_permissive and lane_keys:
            # A strict lane that lists no services holds them all, as ASM's console writes it.
            missing = sorted(group_keys - set(lane_keys))
            if missing:
                lane_error(
                    lane,
                    "spec.services",
                    "in strict mode (isPermissive: false) a lane must list every group "
                    f"service; missing {', '.join(missing)}",
                )

        for i, rule in enumerate(lane.spec.ingress_rules):
            host = rule.route.destination.host
            if service_key(host) not in group_keys:
                lane_error(
                    lane,
                    f"spec.ingressRules[{i}].route.destination.host",
                    f"{host} is not a service of group {gname!r}",
                )

    if spec.ingress.ingress_routing.ingress_routing_strategy == "weighted":
        total = 0
        for lane in lanes:
            weight = lane.spec.ingress_weight
            if weight is None:
                continue
            total += weight.weight
            host = weight.destination.host
            if host and service_key(host) not in group_keys:
                lane_error(
                    lane,
                    "spec.ingressWeight.destination.host",
                    f"{host} is not a service of group {gname!r}",
                )
        if total > 100:
            group_error(
                "spec.ingress.ingressRouting",
                f"lane weights add up to {total}; under weighted routing they may add up to 100 "
                "at most",
            )
        elif spec.strict and total != 100:
            group_error(
                "spec.ingress.ingressRouting",
                f"lane weights add up to {total}; in strict mode there is no fallback lane to "
                "take the rest, so under weighted routing they must add up to 100",
            )
    return errors


def _mode_errors(group: SwimLaneGroup, names: list[str]) -> list[FieldError]:
    """What the lane mode requires of the fallback setting, against the group's lane names."""
    spec = group.spec
    config = spec.permissive_mode_configuration
    target = config.fallback_target if config is not None else None
    path = "spec.permissiveModeConfiguration"

    def error(field: str, message: str) -> FieldError:
        return FieldError("SwimLaneGroup", group.name, field, message)

    if spec.strict:
        if target is not None:
            return [error(
                f"{path}.fallbackTarget",
                "strict mode (isPermissive: false or unset) has no fallback lane; set "
                "isPermissive: true for a fallback, or remove fallbackTarget",
            )]
        return []
    if config is None:
        return [error(path, "required in permissive mode (isPermissive: true); "
                            "set fallbackTarget to the lane that serves what a lane lacks")]
    if target is None:
        return [error(f"{path}.fallbackTarget", "required in permissive mode (isPermissive: true)")]
    if target not in names:
        known = ", ".join(sorted(names)) or "none"
        return [error(f"{path}.fallbackTarget",
                      f"lane {target!r} is not a lane of this group (lanes: {known})")]
    return []


def entry_service(group: SwimLaneGroup, lanes: list[SwimLane]) -> str | None:
    """The service the gateway sends requests to: the lanes' rule or weight destination."""
    for lane in lanes:
        weight = lane.spec.ingress_weight
        if weight is not None and weight.destination.host:
            return service_key(weight.destination.host)
    for lane in lanes:
        for rule in lane.spec.ingress_rules:
            return service_key(rule.route.destination.host)
    return None


def shared_services(groups: Iterable[SwimLaneGroup]) -> list[FieldError]:
    """A service listed by more than one group: an error on each group after the first.

    A service belongs to one group, since a group routes the whole of each of its services;
    two would give the mesh two configurations for one host.
    """
    errors = []
    holder: dict[str, str] = {}
    for group in groups:
        for i, service in enumerate(group.spec.services):
            first = holder.setdefault(service.key, group.name)
            if first != group.name:
                errors.append(FieldError(
                    "SwimLaneGroup", group.name, f"spec.services[{i}]",
                    f"service {service.key} already belongs to SwimLaneGroup {first}; "
                    "a service belongs to one group",
                ))
    return errors


def resolve(
    group: SwimLaneGroup, lanes: list[SwimLane], observed: Observations | None = None
) -> Topology:
    """Check a group with its lanes and decide which lanes serve each service.

    With `autoUpdate` and observations, the lanes that have ready pods of a service serve it;
    otherwise each lane's declared `services` do. The fallback lane always serves every
    service, so its subset always exists. In strict mode every lane serves every service
    (each must list them all), whatever is observed: routes stay put, and a lane without
    ready pods of a service answers 503 for it instead of sending its requests elsewhere.

    Observed traffic steps are kept for services of the group whose step names a lane other
    than the fallback (permissive mode only: strict mode has no untagged requests to split).

    Raises:
        InvalidSpec: with every problem found.
    """
    own = lanes_of_group(group, lanes)
    errors = validate(group, own)
    if errors:
        raise InvalidSpec(errors)
    fallback = group.spec.fallback
    ordered = sorted(own, key=lambda lane: (lane.name != fallback, lane.name))
    keys = sorted(s.key for s in group.spec.services)
    use_observed = group.spec.auto_update and observed is not None
    names = [lane.name for lane in ordered]
    members: dict[str, tuple[str, ...]] = {}
    if group.spec.strict:
        members = {key: tuple(names) for key in keys}
    elif use_observed:
        for key in keys:
            members[key] = _serving(names, fallback, observed.lanes_of(key))
    else:
        declared = {lane.name: {s.key for s in lane.spec.services} for lane in ordered}
        for key in keys:
            members[key] = tuple(n for n in names if n == fallback or key in declared[n])
    traffic = {}
    if observed is not None and not group.spec.strict:
        traffic = {
            key: step for key, step in observed.traffic.items()
            if key in members and step.lane in names and step.lane != fallback
        }
    return Topology(
        group=group, lanes=tuple(ordered), members=members,
        entry=entry_service(group, ordered), traffic=traffic,
    )


@dataclass(frozen=True, slots=True)
class Weighted:
    """One lane's share of weighted ingress traffic and the service it enters."""

    lane: str
    weight: int
    service: str


def weighted_shares(topology: Topology) -> list[Weighted]:
    """Each lane's weighted share, lanes with weight 0 left out, the rest given to the fallback.

    In strict mode the weights add up to 100 (checked on resolving), so no rest is left.

    Raises:
        InvalidSpec: when no lane names the service weighted traffic enters.
    """
    group = topology.group
    fallback = group.spec.fallback
    entry = topology.entry
    shares = []
    others = 0
    fallback_service = entry
    for lane in topology.lanes:
        weight = lane.spec.ingress_weight
        host = weight.destination.host if weight is not None else None
        service = service_key(host) if host else entry
        if lane.name == fallback:
            fallback_service = service
            continue
        if weight is None or weight.weight == 0:
            continue
        if service is None:
            raise _no_entry(group.name)
        shares.append(Weighted(lane.name, weight.weight, service))
        others += weight.weight
    if others < 100 and fallback is not None:
        if fallback_service is None:
            raise _no_entry(group.name)
        shares.insert(0, Weighted(fallback, 100 - others, fallback_service))
    return shares


def _no_entry(group: str) -> InvalidSpec:
    return InvalidSpec(
        [
            FieldError(
                "SwimLaneGroup",
                group,
                "spec.ingress.ingressRouting",
                "weighted routing needs an entry service: set a lane's "
                "spec.ingressWeight.destination.host or an ingress rule's destination",
            )
        ]
    )
