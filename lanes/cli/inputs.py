"""What every offline verb shares: reading `-f` input and observations, and failing cleanly.

A verb computes its whole output before printing anything, so bad input leaves stdout empty
and a pipe such as `kubectl lane render -f dir | kubectl apply -f -` never applies half a set.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.load import Bundle, load_observations, read_documents
from lanes.api.observations import Observations
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import Topology, resolve, shared_services
from lanes.importers import convert_documents, parse_documents

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

BAD_INPUT = 2
FILE = "File"
OPTION = "Option"

Filename = Annotated[
    Path,
    typer.Option(
        "-f",
        "--filename",
        help="A YAML file or a directory of them (lanes.dev, ASM, Kruise, Flagger or Argo kinds).",
        show_default=False,
    ),
]
ObservedFile = Annotated[
    Path | None,
    typer.Option(
        "--observed",
        help="An observations file: `ready:` lanes per service and observed call `edges:`.",
        show_default=False,
    ),
]
GroupName = Annotated[
    str | None,
    typer.Option("--group", "-g", help="The lane group to use when the input has several."),
]


def warn(message: str) -> None:
    """A note for the user on stderr, which never mixes into the YAML or JSON on stdout."""
    print(f"warning: {message}", file=sys.stderr)


_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
"""What `str.splitlines` breaks a line at: escaped, so text from a user's file never splits
an error's line in two."""


def one_line(text: str) -> str:
    """`text` with every line break written as its escape (`\\x85`)."""
    return "".join(c.encode("unicode_escape").decode() if c in _LINE_BREAKS else c for c in text)


def describe_error(error: FieldError) -> str:
    """One error as a line: `file: Kind/name: field: message`, shorter for files and options."""
    if error.kind == FILE:
        where = "" if error.path.startswith("(") else f"{error.path}: "
        return one_line(f"{error.name}: {where}{error.message}")
    if error.kind == OPTION:
        return one_line(f"{error.name}: {error.message}")
    return one_line(str(error))


def report_invalid_input(command: Callable[P, R]) -> Callable[P, R]:
    """Turn InvalidSpec into its lines on stderr and exit code 2, with nothing on stdout."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InvalidSpec as exc:
            for error in exc.errors:
                print(f"error: {describe_error(error)}", file=sys.stderr)
            raise typer.Exit(BAD_INPUT) from exc

    return run


def invalid_file(path: Path, message: str) -> InvalidSpec:
    """An InvalidSpec about a whole input file or directory."""
    return InvalidSpec([FieldError(FILE, str(path), "(input)", message)])


def invalid_option(option: str, message: str) -> InvalidSpec:
    """An InvalidSpec about a command-line option's value."""
    return InvalidSpec([FieldError(OPTION, option, "", message)])


@dataclass(frozen=True)
class Input:
    """The objects read with `-f`, and the document each came from."""

    path: Path
    bundle: Bundle
    sources: dict[tuple[str, str], str]

    def source_of(self, error: FieldError) -> str:
        """The document the erring object came from, or the `-f` path when it is not known."""
        return self.sources.get((error.kind, error.name), str(self.path))

    @contextmanager
    def locating(self) -> Iterator[None]:
        """Name the source document of every error raised inside that does not name one.

        Cross-object checks see models, not files; this points their errors back at the file.
        """
        try:
            yield
        except InvalidSpec as exc:
            located = [
                error if error.source else replace(error, source=self.source_of(error))
                for error in exc.errors
            ]
            raise InvalidSpec(located) from exc


def read_input(path: Path) -> Input:
    """The objects under `-f`, which must hold at least one SwimLaneGroup."""
    documents = read_documents(path)
    bundle = parse_documents(documents)
    if not bundle.groups:
        raise invalid_file(path, "holds no SwimLaneGroup (or ASMSwimLaneGroup)")
    sources = {}
    for document in convert_documents(documents):
        body = document.body
        name = str((body.get("metadata") or {}).get("name", ""))
        sources[(str(body.get("kind", "")), name)] = document.source
    known = {group.name for group in bundle.groups}
    for lane in bundle.lanes:
        if lane.group is None:
            warn(f"SwimLane/{lane.name}: metadata.labels.swimlane-group: missing; left out")
        elif lane.group not in known:
            warn(
                f"SwimLane/{lane.name}: metadata.labels.swimlane-group: "
                f"{lane.group!r} is not a group in {path}; the lane is left out"
            )
    return Input(path, bundle, sources)


def read_observations(path: Path | None) -> Observations | None:
    """The observations file given with `--observed`, if any."""
    return load_observations(path) if path is not None else None


def per_group(given: Input, make: Callable[[SwimLaneGroup], T]) -> list[T]:
    """`make` applied to every group of the input, in input order.

    Raises:
        InvalidSpec: with every group's errors, and one for each service that more than one
            group lists.
    """
    results: list[T] = []
    errors: list[FieldError] = []
    for group in given.bundle.groups:
        try:
            with given.locating():
                results.append(make(group))
        except InvalidSpec as exc:
            errors.extend(exc.errors)
    errors.extend(replace(e, source=given.source_of(e)) for e in shared_services(given.bundle.groups))
    if errors:
        raise InvalidSpec(errors)
    return results


def resolve_all(given: Input, observed: Observations | None) -> list[Topology]:
    """Every group of the input resolved with its lanes; all groups' errors are reported."""
    return per_group(given, lambda group: resolve(group, given.bundle.lanes, observed))


def select_group(topologies: list[Topology], name: str | None) -> Topology:
    """The one group a verb works on: the named one, or the only one."""
    names = [t.group.name for t in topologies]
    if name is not None:
        for topology in topologies:
            if topology.group.name == name:
                return topology
        groups = ", ".join(names)
        raise invalid_option("--group", f"{name!r} is not a group in the input (groups: {groups})")
    if len(topologies) > 1:
        raise invalid_option("--group", f"the input holds groups {', '.join(names)}; pick one")
    return topologies[0]
