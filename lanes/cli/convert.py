"""`kubectl lane convert`: ASM swimlane, Kruise, Flagger and Argo Rollouts manifests rewritten
as lanes.dev."""

from __future__ import annotations

import sys
from typing import Any

import typer

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


@report_invalid_input
def convert(filename: Filename) -> None:
    """Print the input with ASM, Kruise, Flagger and Argo Rollouts kinds as lanes.dev kinds.

    Where a converted document will behave differently (an ASM group routing otherwise, a
    Flagger or Argo field lanes does itself), a note goes to stderr.
    """
    documents = read_documents(filename)
    if not documents:
        raise invalid_file(filename, "holds no YAML documents")
    converted = convert_all(documents)
    for doc in documents:
        for note in conversion_notes(doc.body, [d.body for d in documents]):
            kind, name = doc.body.get("kind"), (doc.body.get("metadata") or {}).get("name")
            print(f"note: {doc.source}: {kind}/{name}: {note}", file=sys.stderr)
    typer.echo(format_documents(converted), nl=False)
