"""`kubectl lane render`: the VirtualServices and DestinationRules a group generates, offline."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from lanes.api.observations import Observations
from lanes.render import render_group

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
    given: Input, observed: Observations | None, flavour: str | None
) -> list[dict[str, Any]]:
    """Every group's generated objects, in input order; all groups' errors are reported.

    Raises:
        InvalidSpec: with the problems of every group that does not render.
    """
    rendered = per_group(
        given, lambda group: render_group(group, given.bundle.lanes, observed, flavour)
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
) -> None:
    """Print the objects every group in the input generates, as multi-document YAML."""
    given = read_input(filename)
    objects = render_input(given, read_observations(observed), flavour.value if flavour else None)
    typer.echo(format_documents(objects), nl=False)
