"""ASM's `fallback` on a user's gateway route, as routing plain Istio honours.

ASM's custom-VirtualService entry has the user route a request to a lane's subset of a service
with a `fallback` target, the fallback lane's subset, used while the lane has no endpoints.
Plain Istio has no such field (its schema prunes it), and a subset with no endpoints answers
503. Istio has no other way to say "this subset, or that one when it has no endpoints":
outlier detection and locality failover move requests between endpoints of one subset, and
only when there are some; retries go to the same subset. lanes already knows which lanes have
ready pods of each service, so the group's `fallbackSubsets` gives every lane a subset of every
service, one selecting the fallback lane's pods while the lane has none. The route stays as the
user wrote it and reaches the fallback's pods, still tagged with its lane, as on ASM.

A `fallback` is honoured so when its target is the fallback lane's subset of the same service,
of a permissive group among the documents converted with it, and the routed subset is one of
that group's lanes: the conversion then drops the field and turns `fallbackSubsets` on. Any
other target (another service, another subset) has no such equivalent and is only noted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lanes.api.common import GROUP_LABEL, service_key

from .common import Body, as_mapping

ASM_GROUP = ("istio.alibabacloud.com", "ASMSwimLaneGroup")
LANES_GROUP = ("lanes.dev", "SwimLaneGroup")
LANE_KINDS = {("istio.alibabacloud.com", "ASMSwimLane"), ("lanes.dev", "SwimLane")}


def _kind(doc: Mapping[str, Any]) -> tuple[str, str]:
    return (str(doc.get("apiVersion", "")).split("/")[0], str(doc.get("kind", "")))


def _name(doc: Mapping[str, Any]) -> str:
    return str(as_mapping(doc.get("metadata")).get("name", ""))


def _fallbacks(doc: Mapping[str, Any]) -> Iterator[tuple[int, int, dict, dict]]:
    """(route index, destination index, destination, fallback target) of each `fallback`."""
    for i, route in enumerate(as_mapping(doc.get("spec")).get("http") or []):
        for j, weighted in enumerate(as_mapping(route).get("route") or []):
            weighted = as_mapping(weighted)
            if "fallback" in weighted:
                target = as_mapping(as_mapping(weighted["fallback"]).get("target"))
                yield i, j, as_mapping(weighted.get("destination")), target


def _group_of(
    destination: Mapping[str, Any], target: Mapping[str, Any], namespace: str,
    inputs: Sequence[Mapping[str, Any]],
) -> Mapping[str, Any] | None:
    """The permissive group among `inputs` whose fallback `target` is for `destination`."""
    host = str(destination.get("host", ""))
    key = service_key(host, namespace)
    if service_key(str(target.get("host", "")), namespace) != key:
        return None
    port = as_mapping(target.get("port")).get("number")
    if port is not None and port != as_mapping(destination.get("port")).get("number"):
        return None
    for group in inputs:
        if _kind(group) not in (ASM_GROUP, LANES_GROUP):
            continue
        spec = as_mapping(group.get("spec"))
        permissive = as_mapping(spec.get("permissiveModeConfiguration"))
        services = {service_key(str(s.get("name", "")), str(s.get("namespace") or "default"))
                    for s in spec.get("services") or [] if isinstance(s, dict)}
        lanes = {
            _name(lane) for lane in inputs
            if _kind(lane) in LANE_KINDS
            and as_mapping(as_mapping(lane.get("metadata")).get("labels")).get(GROUP_LABEL) == _name(group)
        }
        if (spec.get("isPermissive") is True and key in services
                and permissive.get("fallbackTarget") == target.get("subset")
                and destination.get("subset") in lanes):
            return group
    return None


def _honoured(doc: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], str]:
    """Each honoured `fallback` of a VirtualService, by (route, destination): its group's name."""
    namespace = str(as_mapping(doc.get("metadata")).get("namespace") or "default")
    found = {}
    for i, j, destination, target in _fallbacks(doc):
        group = _group_of(destination, target, namespace, inputs)
        if group is not None:
            found[(i, j)] = _name(group)
    return found


def honours_fallbacks(group: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a VirtualService among `inputs` has a `fallback` that `group`'s subsets honour."""
    name = _name(group)
    return any(
        name in _honoured(doc, inputs).values()
        for doc in inputs if doc.get("kind") == "VirtualService"
    )


def without_honoured_fallbacks(doc: Body, inputs: Sequence[Mapping[str, Any]]) -> Body:
    """The VirtualService without the `fallback` fields its group's subsets honour."""
    honoured = _honoured(doc, inputs)
    if not honoured:
        return doc
    http = []
    for i, route in enumerate(doc["spec"]["http"]):
        destinations = [
            {k: v for k, v in weighted.items() if k != "fallback"} if (i, j) in honoured else weighted
            for j, weighted in enumerate(route.get("route") or [])
        ]
        http.append({**route, "route": destinations} if "route" in route else route)
    return {**doc, "spec": {**doc["spec"], "http": http}}


def fallback_notes(doc: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Say how each `fallback` of a VirtualService is honoured, or that it cannot be."""
    honoured = _honoured(doc, inputs)
    notes = []
    for i, j, destination, target in _fallbacks(doc):
        path = f"spec.http[{i}].route[{j}].fallback"
        group = honoured.get((i, j))
        if group is not None and _lanes_group_without_subsets(group, inputs):
            notes.append(
                f"{path}: ASM's extension, dropped (plain Istio has none); set "
                f"spec.fallbackSubsets: true on SwimLaneGroup {group} so that lane "
                f"{destination.get('subset')}'s subset of {destination.get('host')} selects the "
                f"fallback lane {target.get('subset')}'s pods while it has none"
            )
        elif group is not None:
            notes.append(
                f"{path}: ASM's extension, dropped (plain Istio has none) and honoured by "
                f"group {group}'s fallbackSubsets: while lane {destination.get('subset')} has no "
                f"pods of {destination.get('host')}, its subset selects the fallback lane "
                f"{target.get('subset')}'s pods, and the request keeps its lane after that hop"
            )
        else:
            notes.append(
                f"{path}: ASM's extension, which plain Istio does not have: its API server "
                "refuses the object (or, without strict field validation, drops the field, and a "
                "request to a subset with no pods gets 503); on plain Istio route it with a "
                "lane's ingressRules instead, which send it to the lane's subset where the lane "
                "has pods and to the fallback lane's otherwise"
            )
    return notes


def _lanes_group_without_subsets(name: str, inputs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether `name` is a lanes.dev group (passed through as written) without fallbackSubsets."""
    return any(
        _kind(doc) == LANES_GROUP and _name(doc) == name
        and as_mapping(doc.get("spec")).get("fallbackSubsets") is not True
        for doc in inputs
    )
