"""What the page draws, from the live objects: pure, so each part is tested without a cluster.

A group's call graph and the subset serving each lane at each hop are `kubectl lane graph`'s
and `trace`'s facts (`lanes.graph`), read from the live group, its lanes and the lanes with
ready pods the operator keeps in the group's status. Releases are the status verbs' views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from lanes.analysis.queries import builtin_query, render_query
from lanes.api.common import GROUP_LABEL
from lanes.api.errors import InvalidSpec
from lanes.api.load import Document
from lanes.api.observations import Observations
from lanes.api.topology import resolve
from lanes.cli.inputs import describe_error
from lanes.cli.releasestatus import release_view
from lanes.cli.rolloutstatus import rollout_view
from lanes.graph import build_graph, check_graph, walk_hops
from lanes.importers import parse_documents

Body = Mapping[str, Any]
METRICS = ("request-rate", "request-success-rate", "request-duration")


def _name(body: Body) -> str:
    return str((body.get("metadata") or {}).get("name", ""))


def _condition(body: Body, kind: str) -> Mapping[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def observed_ready(group: Body) -> Observations:
    """The lanes with ready pods of each service, as the operator keeps them in the status."""
    ready: dict[str, list[str]] = {}
    for lane in (group.get("status") or {}).get("lanes") or []:
        for service in lane.get("services") or []:
            ready.setdefault(service, []).append(lane.get("name", ""))
    return Observations(ready=ready)


def group_graph(group: Body, lanes: Sequence[Body]) -> dict[str, Any]:
    """One group as the page draws it: services, calls, and each lane's hops.

    A group that does not parse comes back with `errors` in words and no graph, so the page
    says what is wrong instead of drawing nothing.
    """
    name = _name(group)
    ready = _condition(group, "Ready")
    view: dict[str, Any] = {
        "name": name, "ready": ready.get("status", "Unknown"),
        "message": ready.get("message", "the operator has not reconciled this group yet"),
        "errors": [], "findings": [], "nodes": [], "edges": [], "lanes": [], "routes": {},
    }
    own = [lane for lane in lanes
           if ((lane.get("metadata") or {}).get("labels") or {}).get(GROUP_LABEL) == name]
    documents = [Document(f"SwimLaneGroup/{name}", dict(group))]
    documents += [Document(f"SwimLane/{_name(lane)}", dict(lane)) for lane in own]
    observed = observed_ready(group)
    try:
        bundle = parse_documents(documents)
        topology = resolve(bundle.groups[0], bundle.lanes, observed)
    except InvalidSpec as invalid:
        view["errors"] = [describe_error(error) for error in invalid.errors]
        return view
    graph = build_graph(topology, observed)
    view["entry"] = topology.entry
    view["fallback"] = topology.fallback
    view["strict"] = topology.strict
    view["lanes"] = [lane.name for lane in topology.lanes]
    view["findings"] = [finding.message for finding in check_graph(topology, graph)]
    for service in sorted(graph.nodes):
        node = graph.nodes[service]
        view["nodes"].append({
            "id": service, "inGroup": node["in_group"], "lanes": list(node["lanes"]),
            "pods": sorted(observed.lanes_of(service)),
        })
    view["edges"] = [
        {"source": caller, "target": callee, "observedOnly": data["source"] == "observed"}
        for caller, callee, data in sorted(graph.edges(data=True))
    ]
    view["routes"] = {
        lane: [dataclasses.asdict(hop) for hop in walk_hops(topology, graph, lane)]
        for lane in view["lanes"]
    }
    return view


def release_card(body: Body) -> dict[str, Any]:
    """A LaneRelease as `kubectl lane status lanerelease/NAME` sees it."""
    return {"kind": "lanerelease", **dataclasses.asdict(release_view(body))}


def rollout_card(body: Body) -> dict[str, Any]:
    """A WorkloadRollout as `kubectl lane status rollout/NAME` sees it, without its pods."""
    return {"kind": "rollout", **dataclasses.asdict(rollout_view(body, None, None))}


def event_line(body: Body) -> dict[str, Any]:
    """An event of a release, newest last."""
    involved = body.get("involvedObject") or {}
    return {
        "object": f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        "namespace": involved.get("namespace", ""),
        "type": body.get("type", ""), "reason": body.get("reason", ""),
        "message": body.get("message", ""),
        "time": body.get("lastTimestamp") or body.get("eventTime")
        or (body.get("metadata") or {}).get("creationTimestamp") or "",
        "count": body.get("count") or 1,
    }


RELEASE_KINDS = frozenset({"LaneRelease", "WorkloadRollout"})


def by_name(bodies: Sequence[Body]) -> list[Body]:
    """Objects in namespace, then name order, so the page does not reshuffle on a change."""
    return sorted(bodies, key=lambda b: ((b.get("metadata") or {}).get("namespace", ""), _name(b)))


def snapshot(
    groups: Sequence[Body], lanes: Sequence[Body], rollouts: Sequence[Body],
    releases: Sequence[Body], events: Sequence[Body], problems: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything the page shows at one moment, as plain data."""
    shown = [e for e in events if (e.get("involvedObject") or {}).get("kind") in RELEASE_KINDS]
    shown.sort(key=lambda e: event_line(e)["time"])
    return {
        "groups": [group_graph(g, lanes) for g in by_name(groups)],
        "releases": [release_card(r) for r in by_name(releases)],
        "rollouts": [rollout_card(r) for r in by_name(rollouts)],
        "events": [event_line(e) for e in shown[-200:]],
        "problems": list(problems),
    }


def metric_queries(
    service: str, lane: str, source: str, interval: str = "30s", target: str | None = None
) -> dict[str, str]:
    """The PromQL of each of a service's lane lines: request rate, the built-in success rate
    and p99 latency, rendered as the analysis renders them.

    `service` is `namespace/name`; `target` the lane's Deployment (the `istio` source selects
    by workload), by default `name-.*`.

    Raises:
        QueryError: for an unknown source.
    """
    namespace, _, name = service.partition("/")
    variables = {"namespace": namespace, "service": name, "lane": lane,
                 "target": target or f"{name}-.*", "interval": interval}
    success = render_query(builtin_query(source, "request-success-rate"), variables)
    # The rate is the success rate's denominator: the three lines count the same requests.
    denominator = success.split("\n/\n")[1].removesuffix("\n* 100")
    return {
        "request-rate": denominator,
        "request-success-rate": success,
        "request-duration": render_query(builtin_query(source, "request-duration"), variables),
    }
