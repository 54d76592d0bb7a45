"""`kubectl lane render`: the VirtualServices and DestinationRules a group generates, offline."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from lanes.api.observations import Observations
from lanes.render import TraceAffinityModule, render_group
from lanes.render.trace_affinity import DEFAULT_URL

from .inputs import (
    Filename,
    Input,
    ObservedFile,
    per_group,
    read_input,
    read_observations,
    report_invalid_input,
)
from .yamlout import format_documents


class Flavour(str, enum.Enum):
    """The mesh flavour to generate for."""

    istio = "istio"
    asm = "asm"


def render_input(
    given: Input,
    observed: Observations | None,
    flavour: str | None,
    trace_affinity: TraceAffinityModule | None = None,
) -> list[dict[str, Any]]:
    """Every group's generated objects, in input order; all groups' errors are reported.

    Raises:
        InvalidSpec: with the problems of every group that does not render.
    """
    rendered = per_group(
        given,
        lambda group: render_group(group, given.bundle.lanes, observed, flavour, trace_affinity),
    )
    return [obj for objects in rendered for obj in objects]


@report_invalid_input
def render(
    filename: Filename,
    flavour: Annotated[
        Flavour | None,
        typer.Option(help="istio (portable) or asm; default: each group's spec.flavour."),
    ] = None,
    observed: ObservedFile = None,
    trace_affinity_url: Annotated[
        str,
        typer.Option(help="Where proxies fetch the trace-affinity module (groups in trace-ID mode)."),
    ] = DEFAULT_URL,
    trace_affinity_sha256: Annotated[
        str | None,
        typer.Option(help="The module's sha256, which Istio checks (`kubectl lane wasm` prints it)."),
    ] = None,
) -> None:
    """Print the objects every group in the input generates, as multi-document YAML.

    A group in ASM's trace-ID mode (istio flavour) also gets the WasmPlugins that load lanes'
    trace-affinity module.
    """
    given = read_input(filename)
    module = TraceAffinityModule(url=trace_affinity_url, sha256=trace_affinity_sha256 or None)
    objects = render_input(
        given, read_observations(observed), flavour.value if flavour else None, module
    )
    typer.echo(format_documents(objects), nl=False)
