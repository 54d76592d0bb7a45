"""`kubectl lane convert`: ASM swimlane and Kruise Rollout manifests rewritten as lanes.dev."""

from __future__ import annotations

import sys
from typing import Any

import typer

from lanes.api.convert import conversion_notes, convert_document
from lanes.api.load import Document, parse_documents, read_documents

from .inputs import Filename, invalid_file, report_invalid_input
from .yamlout import format_documents


def convert_all(documents: list[Document]) -> list[dict[str, Any]]:
    """Each document converted (or passed through), after checking the lanes.dev ones parse.

    Raises:
        InvalidSpec: naming every converted object and field that lanes would reject.
    """
    converted = [Document(doc.source, convert_document(doc.body)) for doc in documents]
    parse_documents(converted)
    return [doc.body for doc in converted]


@report_invalid_input
def convert(filename: Filename) -> None:
    """Print the input with ASMSwimLaneGroup, ASMSwimLane and Rollout as lanes.dev kinds.

    Where a converted group will route differently from ASM, a note goes to stderr.
    """
    documents = read_documents(filename)
    if not documents:
        raise invalid_file(filename, "holds no YAML documents")
    converted = convert_all(documents)
    for doc in documents:
        for note in conversion_notes(doc.body):
            kind, name = doc.body.get("kind"), (doc.body.get("metadata") or {}).get("name")
            print(f"note: {doc.source}: {kind}/{name}: {note}", file=sys.stderr)
    typer.echo(format_documents(converted), nl=False)
