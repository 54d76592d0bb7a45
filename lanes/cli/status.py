"""`kubectl lane status [GROUP]`: what is in force on the live cluster, group -> lanes -> services.

Built in two steps so the formatting is testable without a cluster: `group_view` turns the
live objects into a plain view (pure), `format_group` draws it as a rich tree (pure).
Which lane's pods serve a service is read from the live DestinationRule's subsets, the routes
actually in force, and lane membership from the group's status, which the operator keeps.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from lanes.api.common import GROUP_LABEL
from lanes.cli.console import make_console
from lanes.render.names import fqdn

from .intents import release_name
from .releasestatus import show_release
from .rolloutstatus import show_rollout


@dataclass(frozen=True)
class ServiceRoute:
    """One service as seen from one lane: does the lane have pods, and which subset serves it."""

    service: str
    has_pods: bool
    served_by: str | None


@dataclass(frozen=True)
class LaneView:
    """A lane, its selector, its entry rules and each group service's route."""

    name: str
    selector: dict[str, str]
    fallback: bool
    ingress: list[str] = field(default_factory=list)
    services: list[ServiceRoute] = field(default_factory=list)


@dataclass(frozen=True)
class GroupView:
    """A group as `status` shows it."""

    name: str
    flavour: str
    fallback: str
    header: str
    ready: str
    reason: str
    message: str
    degraded: str
    generated: int
    lanes: list[LaneView] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _subsets(generated: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict]]:
    """DestinationRule subsets by the host they route: each subset's name and labels."""
    return {
        (o.get("spec") or {}).get("host", ""): {
            s.get("name"): dict(s.get("labels") or {}) for s in (o.get("spec") or {}).get("subsets") or []
        }
        for o in generated
        if o.get("kind") == "DestinationRule"
    }


def _ingress(lane: Mapping[str, Any]) -> list[str]:
    rules = []
    for rule in (lane.get("spec") or {}).get("ingressRules") or []:
        match = rule.get("match") or {}
        parts = []
        uri = match.get("uri") or {}
        for how, value in uri.items():
            parts.append(f"uri {how} {value}")
        for header, test in (match.get("headers") or {}).items():
            for how, value in (test or {}).items():
                parts.append(f"{header} {how} {value}")
        host = ((rule.get("route") or {}).get("destination") or {}).get("host", "?")
        state = "" if rule.get("online", True) else " (offline)"
        rules.append(f"{' & '.join(parts) or 'all requests'} -> {host}{state}")
    weight = (lane.get("spec") or {}).get("ingressWeight")
    if weight and weight.get("weight"):
        rules.append(f"{weight['weight']}% of weighted requests")
    return rules


def group_view(
    group: Mapping[str, Any], lanes: Sequence[Mapping[str, Any]], generated: Sequence[Mapping[str, Any]]
) -> GroupView:
    """The view of one group from its live body, its lanes and its generated objects."""
    name = group["metadata"]["name"]
    spec, status = group.get("spec") or {}, group.get("status") or {}
    pmc = spec.get("permissiveModeConfiguration") or {}
    fallback = pmc.get("fallbackTarget", "") if spec.get("isPermissive") else ""
    keys = [f"{s.get('namespace') or 'default'}/{s.get('name')}" for s in spec.get("services") or []]
    members = {m.get("name"): set(m.get("services") or []) for m in status.get("lanes") or []}
    subsets = _subsets(generated)
    own = sorted(
        (l for l in lanes if ((l.get("metadata") or {}).get("labels") or {}).get(GROUP_LABEL) == name),
        key=lambda l: (l["metadata"]["name"] != fallback, l["metadata"]["name"]),
    )
    views = []
    for lane in own:
        lane_name = lane["metadata"]["name"]
        selector = dict((lane.get("spec") or {}).get("labelSelector") or {})
        routes = []
        for key in sorted(keys):
            present = subsets.get(fqdn(key), {})
            # A lane's subset selecting other pods than the lane's is its fallback subset.
            own_pods = present.get(lane_name) == selector
            served = lane_name if own_pods else fallback if fallback in present else None
            routes.append(ServiceRoute(key, key in members.get(lane_name, set()), served))
        views.append(LaneView(lane_name, selector, lane_name == fallback, _ingress(lane), routes))
    ready, degraded = _condition(status, "Ready"), _condition(status, "Degraded")
    problems = [degraded.get("message", "")] if degraded.get("status") == "True" else []
    return GroupView(
        name=name,
        flavour=spec.get("flavour", "istio"),
        fallback=fallback,
        header=pmc.get("routeHeader", "x-asm-prefer-tag"),
        ready=ready.get("status", "Unknown"),
        reason=ready.get("reason", "NotReconciled"),
        message=ready.get("message", "the operator has not reconciled this group yet"),
        degraded=degraded.get("status", "Unknown"),
        generated=len(generated),
        lanes=views,
        problems=problems,
    )


_READY_STYLE = {"True": "green", "False": "red"}


def format_group(view: GroupView) -> Tree:
    """A group as a tree: lanes, then each service with its pods and the subset serving it."""
    title = Text(view.name, style="bold")
    title.append(f"  Ready={view.ready}", style=_READY_STYLE.get(view.ready, "yellow"))
    title.append(f" ({view.reason}: {view.message})" if view.message else f" ({view.reason})", style="dim")
    mode = f"fallback {view.fallback}" if view.fallback else "strict mode (no fallback)"
    title.append(
        f"\n{view.flavour} flavour, {mode}, lane header {view.header}, "
        f"{view.generated} generated objects",
        style="dim",
    )
    tree = Tree(title)
    for problem in view.problems:
        tree.add(Text(f"degraded: {problem}", style="yellow"))
    for lane in view.lanes:
        label = Text(f"lane {lane.name}", style="bold cyan")
        if lane.fallback:
            label.append(" (fallback)", style="cyan")
        selector = ",".join(f"{k}={v}" for k, v in sorted(lane.selector.items()))
        label.append(f"  pods: {selector}", style="dim")
        branch = tree.add(label)
        for rule in lane.ingress:
            branch.add(Text(f"enters by {rule}", style="magenta"))
        for route in lane.services:
            line = Text(route.service)
            line.append("  ● pods" if route.has_pods else "  ○ no pods", style="green" if route.has_pods else "dim")
            if route.served_by is None:
                line.append("  -> no route in force", style="red")
            elif route.served_by == lane.name:
                line.append(f"  -> subset {route.served_by}", style="green")
            else:
                line.append(f"  -> falls back to {route.served_by}", style="yellow")
            branch.add(line)
    return tree


def format_groups(views: Sequence[GroupView]) -> RenderableType:
    """Several groups, one tree each."""
    if not views:
        return Text("no lane groups", style="dim")
    return Group(*(format_group(v) for v in views))


def views_to_json(views: Sequence[GroupView]) -> str:
    """The views as JSON, for scripts."""
    return json.dumps([dataclasses.asdict(v) for v in views], indent=2)


class Output(str, enum.Enum):
    """How to print."""

    tree = "tree"
    json = "json"


def read_views(kubeconfig: str | None, context: str | None, name: str | None) -> list[GroupView]:
    """Read groups, lanes and generated objects from the live cluster.

    Raises:
        LookupError: when `name` names no group.
    """
    # The kubernetes client loads only when a verb talks to a cluster, so the offline verbs
    # (render, trace, graph, convert) start without it.
    from lanes.kube.apply import list_owned
    from lanes.kube.connect import connect
    from lanes.kube.kinds import SWIMLANE, SWIMLANEGROUP
    from lanes.kube.lanesapi import LanesApi
    from lanes.kube.objects import Objects
    from lanes.kube.ownership import owners

    api = connect(kubeconfig, context)
    try:
        lanes_api, objects = LanesApi(api), Objects(api)
        groups = lanes_api.list_kind(SWIMLANEGROUP)
        if name is not None:
            groups = [g for g in groups if g["metadata"]["name"] == name]
            if not groups:
                raise LookupError(f"SwimLaneGroup/{name}: not found")
        lanes = lanes_api.list_kind(SWIMLANE)
        return [
            group_view(g, lanes, list_owned(objects, owners(g["metadata"]["name"])))
            for g in sorted(groups, key=lambda g: g["metadata"]["name"])
        ]
    finally:
        api.close()


def status(
    group: Annotated[str | None, typer.Argument(help="The lane group; all groups when left out.")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="tree or json.")] = Output.tree,
    kubeconfig: Annotated[str | None, typer.Option(help="Kubeconfig file; default: $KUBECONFIG or ~/.kube/config.")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context to use.")] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of rollout/NAME or lanerelease/NAME.")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="rollout/NAME, lanerelease/NAME: redraw until the release ends.")
    ] = False,
) -> None:
    """Show lane groups (or `rollout/NAME`) on the live cluster: lanes, pods and routes in force.

    For rollout/NAME and lanerelease/NAME the exit code: 0 succeeded, 1 failed or rolled
    back, 2 in progress.
    """
    release = release_name(group) if group is not None else None
    if release is not None:
        raise typer.Exit(
            show_release(
                release, namespace=namespace, watch=watch, kubeconfig=kubeconfig, context=context
            )
        )
    if group is not None and group.startswith(("rollout/", "workloadrollout/", "wro/")):
        raise typer.Exit(
            show_rollout(
                group, namespace=namespace, watch=watch, kubeconfig=kubeconfig, context=context
            )
        )
    try:
        views = read_views(kubeconfig, context, group)
    except LookupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if output is Output.json:
        typer.echo(views_to_json(views))
    else:
        make_console().print(format_groups(views))
