"""`kubectl lane convert`: ASM swimlane, Kruise, Flagger and Argo Rollouts manifests rewritten
as lanes.dev."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Annotated, Any

import typer

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.load import Document, read_documents
from lanes.importers import conversion_notes, convert_documents, parse_documents

from .inputs import Filename, invalid_file, report_invalid_input
from .yamlout import format_documents


def convert_all(documents: list[Document]) -> list[dict[str, Any]]:
    """Each document converted (or passed through), after checking the lanes.dev ones parse.

    Raises:
        InvalidSpec: naming every converted object and field that lanes would reject.
    """
    converted = convert_documents(documents)
    parse_documents(converted)
    return [doc.body for doc in converted]


Strict = Annotated[
    bool,
    typer.Option("--strict", help="Refuse (exit 2) wherever a note would say the converted "
                                  "documents behave otherwise than the originals."),
]


def notes_of(documents: list[Document]) -> list[FieldError]:
    """Every conversion note, as the object and field it is about and what differs."""
    inputs = [d.body for d in documents]
    found = []
    for doc in documents:
        kind = str(doc.body.get("kind"))
        name = str((doc.body.get("metadata") or {}).get("name"))
        for note in conversion_notes(doc.body, inputs):
            path, sep, message = note.partition(": ")
            if not sep or " " in path:
                path, message = "", note
            found.append(FieldError(kind, name, path, message, doc.source))
    return found


@report_invalid_input
def convert(filename: Filename, strict: Strict = False) -> None:
    """Print the input with ASM, Kruise, Flagger and Argo Rollouts kinds as lanes.dev kinds.

    Where a converted document will behave differently (an ASM group routing otherwise, a
    Flagger or Argo field lanes does otherwise or not at all), a note goes to stderr; with
    `--strict` each note is an error instead, for pipelines that must not change behaviour.
    """
    documents = read_documents(filename)
    if not documents:
        raise invalid_file(filename, "holds no YAML documents")
    converted = convert_all(documents)
    notes = notes_of(documents)
    if strict and notes:
        raise InvalidSpec([replace(n, path=n.path or "(document)") for n in notes])
    for note in notes:
        where = f"{note.path}: " if note.path else ""
        print(f"note: {note.source}: {note.kind}/{note.name}: {where}{note.message}", file=sys.stderr)
    typer.echo(format_documents(converted), nl=False)
