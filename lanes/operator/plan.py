"""Plan one group's reconcile from raw objects: parse, observe, render. Pure.

Kept apart from the handlers so the whole decision (which objects, or why none) is a function
of its inputs that unit tests drive without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lanes.api.errors import FieldError, InvalidSpec, from_validation_error
from lanes.api.lanerelease import LaneRelease
from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane, SwimLaneSpec
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.workloadrollout import WorkloadRollout
from lanes.kube.kinds import parse_all
from lanes.kube.ownership import lane_group_of
from lanes.render import TraceAffinityModule, render_group
from lanes.render.names import fqdn
from lanes.render.observe import PodView, observe
from lanes.rollout.lanerelease import driven_rollouts, entry_steps
from lanes.rollout.traffic import traffic_steps


CONFLICT = "Conflict"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Inputs:
    """What the operator has seen of one group: raw bodies, Service selectors and pods.

    `others` are the bodies of the other groups; `held` maps a service key to the groups
    (this one included) whose routes for that service are in force now, which the operator
    reads from the DestinationRules in the cluster; `rollouts` are the WorkloadRollouts in the
    group's namespaces, whose traffic steps split the services' untagged requests;
    `releases` the LaneReleases there, whose entry weight puts untagged requests into a lane
    at the gateway (the rollouts they drive then have no traffic step of their own).
    """

    group: Mapping[str, Any]
    lanes: Sequence[Mapping[str, Any]] = ()
    services: Mapping[str, Mapping[str, str] | None] = field(default_factory=dict)
    pods: Sequence[PodView] = ()
    others: Sequence[Mapping[str, Any]] = ()
    held: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rollouts: Sequence[Mapping[str, Any]] = ()
    releases: Sequence[Mapping[str, Any]] = ()
    # Where proxies fetch the trace-affinity module; None: no WasmPlugins are generated.
    trace_affinity: TraceAffinityModule | None = None
    # VirtualServices and DestinationRules lanes did not generate that route a group service.
    foreign: Sequence[str] = ()


@dataclass
class GroupPlan:
    """The outcome of planning: desired objects, or the errors that keep routes as they are.

    `absent` names the services the group lists that do not exist (`spec.services[i]`):
    nothing is generated for them until they do, while the others' routes are in force.
    `aside` holds the lanes set aside (`set_aside`) with their errors, `kept` those of them
    whose last valid spec (`status.specInForce`) stays in force.
    """

    name: str
    generation: int | None
    group: SwimLaneGroup | None = None
    lanes: list[SwimLane] = field(default_factory=list)
    lane_names: list[str] = field(default_factory=list)
    observed: Observations | None = None
    desired: list[dict] | None = None
    errors: list[FieldError] = field(default_factory=list)
    reason: str = "InvalidSpec"
    foreign: list[str] = field(default_factory=list)
    absent: list[FieldError] = field(default_factory=list)
    aside: dict[str, list[FieldError]] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)

    @property
    def valid(self) -> bool:
        """True when the group rendered; False means no route may change."""
        return self.desired is not None

    def errors_of(self, kind: str, name: str) -> list[FieldError]:
        """The errors naming one object."""
        return [e for e in self.errors if e.kind == kind and e.name == name]




def service_keys(group: Mapping[str, Any]) -> frozenset[str]:
    """The `namespace/name` keys a group body lists, read leniently (it may be invalid)."""
    keys = set()
    for service in (group.get("spec") or {}).get("services") or []:
        if isinstance(service, Mapping) and service.get("name"):
            keys.add(f"{service.get('namespace') or 'default'}/{service['name']}")
    return frozenset(keys)


def parse_own(model: type[M], body: Mapping[str, Any]) -> M:
    """One of lanes' own kinds read from the cluster, as its model: never converted, since
    only files may hold ASM, Kruise, Flagger or Argo documents.

    Raises:
        InvalidSpec: naming the object and each field that is wrong.
    """
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        name = str((body.get("metadata") or {}).get("name", "(unnamed)"))
        raise InvalidSpec(from_validation_error(exc, model.__name__, name)) from exc


def _seniority(body: Mapping[str, Any]) -> tuple[str, str]:
    metadata = body.get("metadata") or {}
    return str(metadata.get("creationTimestamp") or ""), str(metadata.get("name") or "")


def listed_elsewhere(group: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The services of `group` that another group lists too."""
    mine = service_keys(group)
    return frozenset(k for other in others for k in service_keys(other) & mine)


def conflicts(group: SwimLaneGroup, body: Mapping[str, Any], inputs: Inputs) -> list[FieldError]:
    """The services of a group that another group holds, each naming that group.

    A service belongs to one group, since each group routes the whole of it. It is held by
    the group whose routes for it are in force (the one created first, should two have
    some); when none has any, by the group created first among those listing it, a group
    being deleted letting go at once.
    """
    seniority = {group.name: _seniority(body)}
    listing: dict[str, set[str]] = {}
    for other in inputs.others:
        name = (other.get("metadata") or {}).get("name", "")
        seniority[name] = _seniority(other)
        if not (other.get("metadata") or {}).get("deletionTimestamp"):
            for key in service_keys(other):
                listing.setdefault(key, set()).add(name)
    errors = []
    for i, service in enumerate(group.spec.services):
        routed = inputs.held.get(service.key, frozenset())
        candidates = routed or {group.name, *listing.get(service.key, ())}
        holder = min(candidates, key=lambda name: seniority.get(name, ("", name)))
        if holder == group.name:
            continue
        how = "is routed by" if routed else "belongs to"
        since = "" if routed else ", created earlier"
        errors.append(FieldError(
            "SwimLaneGroup", group.name, f"spec.services[{i}]",
            f"service {service.key} {how} SwimLaneGroup {holder}{since}; a service belongs to one group",
        ))
    return errors








def lane_bodies_of(name: str, lanes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The lane bodies that join group `name` by label, sorted by name."""
    joined = [
        lane for lane in lanes if lane_group_of(lane) == name
    ]
    return sorted(joined, key=lambda lane: lane["metadata"]["name"])


def _traffic(plan: GroupPlan, inputs: Inputs) -> dict:
    """Every traffic step in force: the rollouts' own, then the lane releases' entry steps,
    which replace the steps of the rollouts they drive."""
    releases = parse_all(inputs.releases, LaneRelease)
    driven = {
        (r.metadata.namespace or "default", name) for r in releases for name in driven_rollouts(r)
    }
    rollouts = [
        r for r in parse_all(inputs.rollouts, WorkloadRollout)
        if (r.metadata.namespace or "default", r.metadata.name) not in driven
    ]
    steps = traffic_steps(plan.group, plan.lanes, inputs.services, inputs.pods, rollouts)
    steps.update(entry_steps(plan.group, plan.lanes, releases))
    return steps


def plan_group(inputs: Inputs) -> GroupPlan:
    """Parse the group and its lanes, observe lane membership and render the desired objects.

    Any parse, cross-object or render error, or a service another group holds, leaves
    `desired` None, so the caller keeps the objects generated before; every error is kept so
    status can name them all.
    """
    metadata = inputs.group.get("metadata") or {}
    plan = GroupPlan(name=metadata.get("name", ""), generation=metadata.get("generation"),
                     foreign=list(inputs.foreign))
    errors: list[FieldError] = []
    try:
        plan.group = parse_own(SwimLaneGroup, inputs.group)
    except InvalidSpec as exc:
        errors.extend(exc.errors)
    for body in lane_bodies_of(plan.name, inputs.lanes):
        plan.lane_names.append(body["metadata"]["name"])
        try:
            plan.lanes.append(parse_own(SwimLane, body))
        except InvalidSpec as exc:
            errors.extend(exc.errors)
    if plan.group is not None:
        observed = observe(plan.group, plan.lanes, inputs.services, inputs.pods)
        steps = _traffic(plan, inputs)
        plan.observed = observed.model_copy(update={"traffic": steps}) if steps else observed
    if errors or plan.group is None:
        plan.errors = errors
        return plan
    held = conflicts(plan.group, inputs.group, inputs)
    current, seen = list(plan.lanes), plan.observed
    first: list[FieldError] | None = None
    while True:
        try:
            desired = render_group(
                plan.group, plan.lanes, plan.observed, trace_affinity=inputs.trace_affinity
            )
            break
        except InvalidSpec as exc:
            first = exc.errors if first is None else first
            lanes = set_aside(plan, exc.errors, current, inputs)
            if lanes is None:
                plan.lanes, plan.observed, plan.aside, plan.kept = current, seen, {}, set()
                plan.errors = [*first, *held]
                return plan
            plan.lanes = lanes
            observed = observe(plan.group, plan.lanes, inputs.services, inputs.pods)
            steps = _traffic(plan, inputs)
            plan.observed = observed.model_copy(update={"traffic": steps}) if steps else observed
    if held:
        plan.errors, plan.reason = held, CONFLICT
    else:
        plan.absent = absent_services(plan.group, inputs.services)
        plan.desired = without_services(desired, {s.key for s in plan.group.spec.services
                                                  if s.key not in inputs.services})
    return plan


def spec_in_force(body: Mapping[str, Any]) -> SwimLaneSpec | None:
    """The spec a lane's routes were last rendered from, as its status records it."""
    recorded = ((body.get("status") or {}).get("specInForce"))
    if not recorded:
        return None
    try:
        return SwimLaneSpec.model_validate(recorded)
    except ValidationError:
        return None


def set_aside(
    plan: GroupPlan, errors: Sequence[FieldError], current: Sequence[SwimLane], inputs: Inputs
) -> list[SwimLane] | None:
    """The lanes to render once those the errors name are set aside, or None when the errors
    hold the whole group back.

    A lane is set aside when its own edit made it invalid: every error names a lane, the group
    has not changed since its routes were last in force (`generationInForce`), and the lane's
    spec differs from the one in force. Its last valid spec then stays in force; a lane with
    none (a new one), or whose last valid spec fails too, is not rendered at all. Anything else
    (an error of the group, a lane broken by the group's own edit) holds every route back as
    before, so one team's lane never freezes the others' route changes, and a group edit never
    half applies.
    """
    names = {lane.name for lane in plan.lanes}
    named = [e for e in errors if e.kind == "SwimLane" and e.name in names]
    status = inputs.group.get("status") or {}
    if not named or len(named) != len(errors) or plan.group is None:
        return None
    if status.get("generationInForce") != plan.group.metadata.generation:
        return None
    bodies = {b["metadata"]["name"]: b for b in inputs.lanes}
    declared = {lane.name: lane for lane in current}
    bad = {e.name for e in named}
    lanes = []
    for lane in plan.lanes:
        if lane.name not in bad:
            lanes.append(lane)
            continue
        plan.aside.setdefault(lane.name, [e for e in named if e.name == lane.name])
        previous = spec_in_force(bodies.get(lane.name, {}))
        if previous is not None and previous == declared[lane.name].spec:
            return None
        if previous is not None and lane.name not in plan.kept:
            plan.kept.add(lane.name)
            lanes.append(lane.model_copy(update={"spec": previous}))
        else:
            plan.kept.discard(lane.name)
    return lanes


def absent_services(group: SwimLaneGroup, services: Mapping[str, Any]) -> list[FieldError]:
    """The services a group lists that do not exist, each naming its field."""
    return [
        FieldError("SwimLaneGroup", group.name, f"spec.services[{i}]",
                   f"Service {service.key} not found; nothing is generated for it until it exists")
        for i, service in enumerate(group.spec.services) if service.key not in services
    ]


def without_services(desired: list[dict], keys: set[str]) -> list[dict]:
    """The generated objects less those of the services `keys` (their VirtualServices and
    DestinationRules); the gateway's routes stay."""
    if not keys:
        return desired
    hosts = {fqdn(key) for key in keys}
    short = {(key.split("/", 1)[0], key.split("/", 1)[1]) for key in keys}

    def names_one(host: str, namespace: str | None) -> bool:
        return host in hosts or (namespace, host) in short

    def of_absent(obj: dict) -> bool:
        spec, namespace = obj.get("spec") or {}, (obj.get("metadata") or {}).get("namespace")
        if obj.get("kind") == "DestinationRule":
            return names_one(str(spec.get("host", "")), namespace)
        if obj.get("kind") == "VirtualService" and not spec.get("gateways"):
            found = spec.get("hosts") or []
            return bool(found) and all(names_one(str(h), namespace) for h in found)
        return False

    return [obj for obj in desired if not of_absent(obj)]
