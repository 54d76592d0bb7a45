"""Observations from what the cluster shows: which lanes have ready pods of each group service.

Pure: the operator hands in the Services' selectors and the pods it watches, so the same
function serves the operator, the CLI and tests, and membership is decided in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import lanes_of_group

_ENDED_PHASES = {"Succeeded", "Failed"}


@dataclass(frozen=True)
class PodView:
    """The part of a pod that membership depends on."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = False


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """Reduce a pod object to its namespace, name, labels and readiness.

    A pod counts as ready only while its Ready condition is True and it is not terminating:
    a pod being deleted still reports Ready until its containers stop, yet Kubernetes takes
    it out of Service endpoints at once, and so must its lane's subset.
    """
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    ready_condition = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )
    ready = (
        ready_condition
        and not metadata.get("deletionTimestamp")
        and status.get("phase") not in _ENDED_PHASES
    )
    return PodView(
        namespace=metadata.get("namespace") or "default",
        name=metadata.get("name") or "",
        labels=dict(metadata.get("labels") or {}),
        ready=bool(ready),
    )


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Whether an equality selector matches labels; an empty selector selects no pods.

    A Service without a selector has hand-managed endpoints, so none of its pods can be
    attributed to a lane.
    """
    if not selector:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


def lane_label_keys(lanes: Iterable[SwimLane]) -> frozenset[str]:
    """The label keys lane selectors use: a pod carrying none of them is in no lane."""
    return frozenset(key for lane in lanes for key in lane.spec.label_selector)


def observe(
    group: SwimLaneGroup,
    lanes: Iterable[SwimLane],
    services: Mapping[str, Mapping[str, str] | None],
    pods: Iterable[PodView | Mapping[str, Any]],
) -> Observations:
    """Which lanes of `group` have ready pods of each group service.

    Args:
        group: the lane group.
        lanes: lanes of any group; those not joining `group` are ignored.
        services: Service selector by service key (`namespace/name`); a missing key means
            the Service does not exist, so no pod belongs to it.
        pods: pod objects or PodViews, from any namespace.

    Returns:
        Observations whose `ready` lists, for every group service, the lanes with at least
        one ready pod of it, fallback lane first and then by name.
    """
    fallback = group.spec.fallback
    own = sorted(lanes_of_group(group, list(lanes)), key=lambda l: (l.name != fallback, l.name))
    views = [p if isinstance(p, PodView) else pod_view(p) for p in pods]
    ready_pods = [p for p in views if p.ready]
    result: dict[str, list[str]] = {}
    for key in sorted({s.key for s in group.spec.services}):
        namespace = key.split("/", 1)[0]
        selector = services.get(key)
        members = [
            p for p in ready_pods if p.namespace == namespace and selects(selector, p.labels)
        ]
        result[key] = [
            lane.name
            for lane in own
            if any(selects(lane.spec.label_selector, p.labels) for p in members)
        ]
    return Observations(ready=result)


def lane_services(observed: Observations) -> dict[str, list[str]]:
    """Invert observations: for each lane, the services it has ready pods of, sorted."""
    found: dict[str, list[str]] = {}
    for service in sorted(observed.ready):
        for lane in observed.ready[service]:
            found.setdefault(lane, []).append(service)
    return found
