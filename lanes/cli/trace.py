"""`kubectl lane trace`: which lane a request gets and which version serves each hop, offline."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from lanes.graph import Hop, Route, Trace, build_graph, check_graph, explain

from .console import make_console
from .inputs import (
    Filename,
    GroupName,
    ObservedFile,
    invalid_option,
    read_input,
    read_observations,
    report_invalid_input,
    resolve_all,
    select_group,
    warn,
)


class Output(str, enum.Enum):
    """How to print a trace."""

    tree = "tree"
    json = "json"


def parse_headers(raw: list[str]) -> dict[str, str]:
    """`-H 'name: value'` options (curl's syntax) as a dict with lower-case names.

    Raises:
        InvalidSpec: naming the option that is not `name: value`.
    """
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise invalid_option("-H", f"{item!r}: expected 'name: value'")
        headers[name.strip().lower()] = value.strip()
    return headers


def describe_hop(hop: Hop, lane: str) -> Text:
    """One hop as a line: the service, the subset serving it, and why when it is not the lane."""
    line = Text(hop.service, style="bold")
    if hop.subset is None:
        line.append("  not lane-routed (outside the group)", style="yellow")
    else:
        line.append("  → ")
        line.append(hop.subset, style="red" if hop.fallback else "green")
    if hop.fallback:
        line.append(f"  fallback: no {lane} pods", style="red")
    if hop.via and hop.subset is not None:
        line.append(f"  via {hop.via}, which must forward the lane header", style="yellow")
    return line


def describe_gateway(route: Route) -> str:
    """How the gateway put the request into the route's lane."""
    if route.weight is not None:
        return f"gateway → lane {route.lane} ({route.weight}% by weight)"
    return f"gateway → lane {route.lane} (rule {route.rule})"


def format_route(route: Route) -> Tree:
    """A route as a tree of calls under the gateway."""
    tree = Tree(Text(describe_gateway(route), style="bold cyan"))
    branches: dict[str, Tree] = {}
    for hop in route.hops:
        parent = branches[hop.caller] if hop.caller else tree
        branches[hop.service] = parent.add(describe_hop(hop, route.lane))
    return tree


def format_trace(trace: Trace) -> RenderableType:
    """A trace for the terminal: the request, each route as a call tree, then the notes."""
    shown = "  ".join(f"{name}: {value}" for name, value in trace.headers.items())
    parts: list[RenderableType] = [
        Text(f"group {trace.group} ({trace.strategy}): request {trace.path}  {shown}".rstrip())
    ]
    parts.extend(format_route(route) for route in trace.routes)
    parts.extend(Text(f"note: {note}", style="yellow") for note in trace.notes)
    return Group(*parts)


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """A trace as plain data for `-o json`."""
    data = dataclasses.asdict(trace)
    data["routed"] = trace.routed
    return data


@report_invalid_input
def trace(
    filename: Filename,
    header: Annotated[
        list[str] | None,
        typer.Option("-H", "--header", help="A request header, 'name: value'; repeatable."),
    ] = None,
    path: Annotated[str, typer.Option("--path", help="The request path.")] = "/",
    observed: ObservedFile = None,
    group: GroupName = None,
    output: Annotated[Output, typer.Option("-o", "--output", help="tree or json.")] = Output.tree,
) -> None:
    """Show the lane a request gets at the gateway and the subset serving each hop."""
    headers = parse_headers(header or [])
    given = read_input(filename)
    observations = read_observations(observed)
    topology = select_group(resolve_all(given, observations), group)
    graph = build_graph(topology, observations)
    result = explain(topology, graph, headers, path)
    for finding in check_graph(topology, graph):
        warn(str(finding))
    if output is Output.json:
        typer.echo(json.dumps(trace_to_dict(result), indent=2))
    else:
        make_console().print(format_trace(result))
