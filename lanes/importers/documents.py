"""Files of mixed kinds as lanes.dev objects: foreign documents converted, then parsed.

What `kubectl lane` reads with `-f` may hold ASM, Kruise, Flagger or Argo kinds beside
lanes.dev's own; every reader of files goes through here, so each converts them alike.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.load import Bundle, Document, bundle_documents, parse_own, read_documents

from .registry import convert, convert_document


def convert_documents(documents: list[Document]) -> list[Document]:
    """Every document converted to lanes.dev where it is a foreign kind, in input order.

    Argo Rollouts find the AnalysisTemplates they name among the same documents; a document
    that becomes several keeps its source for each.

    Raises:
        InvalidSpec: with every field of every document that does not convert.
    """
    inputs = [doc.body for doc in documents]
    converted: list[Document] = []
    errors: list[FieldError] = []
    for doc in documents:
        try:
            converted.extend(Document(doc.source, body) for body in convert(doc.body, inputs))
        except InvalidSpec as exc:
            errors.extend(e if e.source else replace(e, source=doc.source) for e in exc.errors)
    if errors:
        raise InvalidSpec(errors)
    return converted


def parse_documents(documents: list[Document]) -> Bundle:
    """Documents of any kind lanes reads, converted and sorted into a Bundle.

    Raises:
        InvalidSpec: with all problems of all documents.
    """
    return bundle_documents(convert_documents(documents))


def parse_object(body: dict[str, Any], source: str | None = None) -> BaseModel:
    """One lanes.dev object, or a foreign one converted, as its model.

    Raises:
        InvalidSpec: naming the object and each field that is wrong.
    """
    return parse_own(convert_document(body), source)


def load(path: Path) -> Bundle:
    """Read, convert and parse every document under `path`."""
    return parse_documents(read_documents(path))
