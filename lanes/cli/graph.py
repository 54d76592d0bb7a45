"""`kubectl lane graph`: the services of each group, their calls and the lanes serving them."""

from __future__ import annotations

import enum
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import networkx as nx
import typer

from lanes.api.topology import Topology
from lanes.graph import build_graph, check_graph

from .inputs import (
    BAD_INPUT,
    Filename,
    ObservedFile,
    read_input,
    read_observations,
    report_invalid_input,
    resolve_all,
    warn,
)

NEEDS_PROGRAM = 1
Drawing = tuple[Topology, nx.DiGraph]


class Format(str, enum.Enum):
    """The drawing formats; png is made from dot by Graphviz."""

    mermaid = "mermaid"
    dot = "dot"
    png = "png"


def gateway_name(topology: Topology) -> str:
    """The group's gateway as `namespace/name`."""
    gateway = topology.group.spec.ingress.gateway
    return f"{gateway.namespace}/{gateway.name}"


def describe_service(graph: nx.DiGraph, service: str) -> str:
    """What a node says under its name: the lanes serving it, or that it is outside the group."""
    node = graph.nodes[service]
    if not node["in_group"]:
        return "outside the group"
    return "lanes: " + ", ".join(node["lanes"])


def mermaid_id(*parts: str) -> str:
    """A node id Mermaid accepts, unique per group."""
    return re.sub(r"[^A-Za-z0-9_]", "_", "__".join(parts))


def format_mermaid(drawings: list[Drawing]) -> str:
    """A Mermaid flowchart: one subgraph per group, observed-only calls dotted."""
    lines = ["flowchart LR"]
    outside: list[str] = []
    for topology, graph in drawings:
        group = topology.group.name
        lines.append(f'  subgraph {mermaid_id(group)}["group {group}"]')
        gateway = mermaid_id(group, "gateway")
        lines.append(f'    {gateway}(["gateway {gateway_name(topology)}"])')
        for service in sorted(graph.nodes):
            node = mermaid_id(group, service)
            lines.append(f'    {node}["{service}<br/>{describe_service(graph, service)}"]')
            if not graph.nodes[service]["in_group"]:
                outside.append(node)
        if topology.entry:
            lines.append(f"    {gateway} --> {mermaid_id(group, topology.entry)}")
        for caller, callee in sorted(graph.edges):
            observed_only = graph.edges[caller, callee]["source"] == "observed"
            arrow = "-.->|observed|" if observed_only else "-->"
            lines.append(f"    {mermaid_id(group, caller)} {arrow} {mermaid_id(group, callee)}")
        lines.append("  end")
    if outside:
        lines.append("  classDef outside stroke-dasharray: 4 4")
        lines.append(f"  class {','.join(outside)} outside")
    return "\n".join(lines) + "\n"


def dot_quote(text: str) -> str:
    """A Graphviz ID in double quotes; newlines become Graphviz's `\\n`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_dot(drawings: list[Drawing]) -> str:
    """A Graphviz digraph: one cluster per group, observed-only calls dashed."""
    lines = ["digraph lanes {", "  rankdir=LR;", "  node [shape=box];"]
    for topology, graph in drawings:
        group = topology.group.name
        gateway = dot_quote(f"{group}/gateway")
        lines.append(f"  subgraph {dot_quote('cluster_' + group)} {{")
        lines.append(f"    label={dot_quote('group ' + group)};")
        gateway_label = dot_quote(f"gateway\n{gateway_name(topology)}")
        lines.append(f"    {gateway} [label={gateway_label}, shape=oval];")
        for service in sorted(graph.nodes):
            label = dot_quote(f"{service}\n{describe_service(graph, service)}")
            style = "" if graph.nodes[service]["in_group"] else ", style=dashed"
            lines.append(f"    {dot_quote(f'{group}/{service}')} [label={label}{style}];")
        lines.append("  }")
        if topology.entry:
            lines.append(f"  {gateway} -> {dot_quote(f'{group}/{topology.entry}')};")
        for caller, callee in sorted(graph.edges):
            attrs = ' [style=dashed, label="observed"]'
            if graph.edges[caller, callee]["source"] == "declared":
                attrs = ""
            edge = f"{dot_quote(f'{group}/{caller}')} -> {dot_quote(f'{group}/{callee}')}"
            lines.append(f"  {edge}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_png(dot: str) -> bytes:
    """A PNG of a dot graph, drawn by Graphviz's `dot`.

    Raises:
        FileNotFoundError: when `dot` is not on PATH.
    """
    program = shutil.which("dot")
    if program is None:
        raise FileNotFoundError("dot")
    result = subprocess.run(
        [program, "-Tpng"], input=dot.encode(), capture_output=True, check=True
    )
    return result.stdout


def write_png(dot: str, output: Path) -> None:
    """Draw `dot` into `output`, exiting with a clear message when Graphviz cannot."""
    try:
        output.write_bytes(draw_png(dot))
    except FileNotFoundError:
        print(
            "error: --format png needs Graphviz's `dot` program, which is not on PATH; install "
            "Graphviz (e.g. `apt-get install graphviz` or `brew install graphviz`) or use "
            "--format dot",
            file=sys.stderr,
        )
        raise typer.Exit(NEEDS_PROGRAM) from None
    except subprocess.CalledProcessError as exc:
        print(f"error: dot failed: {exc.stderr.decode(errors='replace').strip()}", file=sys.stderr)
        raise typer.Exit(NEEDS_PROGRAM) from None


@report_invalid_input
def graph(
    filename: Filename,
    drawing: Annotated[
        Format, typer.Option("--format", help="mermaid, dot or png.")
    ] = Format.mermaid,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write to this file instead of stdout (png needs it)."),
    ] = None,
    observed: ObservedFile = None,
) -> None:
    """Draw each group's services, the calls between them and the lanes serving each."""
    if drawing is Format.png and output is None:
        print("error: --format png writes a binary image; give a file with -o", file=sys.stderr)
        raise typer.Exit(BAD_INPUT)
    given = read_input(filename)
    observations = read_observations(observed)
    drawings = [(t, build_graph(t, observations)) for t in resolve_all(given, observations)]
    for topology, call_graph in drawings:
        for finding in check_graph(topology, call_graph):
            warn(f"group {topology.group.name}: {finding}")
    text = format_mermaid(drawings) if drawing is Format.mermaid else format_dot(drawings)
    if drawing is Format.png and output is not None:
        write_png(text, output)
    elif output is not None:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)
