"""Read lanes.dev (and ASM / Kruise / Flagger / Argo) documents from YAML files into checked models."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .analysis import MetricTemplate
from .common import GROUP
from .convert import api_group, convert_document, convert_into
from .convert_argo import analysis_templates
from .errors import FieldError, InvalidSpec, from_validation_error
from .lanerelease import LaneRelease
from .observations import Observations
from .swimlane import SwimLane
from .swimlanegroup import SwimLaneGroup
from .workloadrollout import WorkloadRollout

MODELS: dict[str, type[BaseModel]] = {
    "SwimLaneGroup": SwimLaneGroup,
    "SwimLane": SwimLane,
    "WorkloadRollout": WorkloadRollout,
    "MetricTemplate": MetricTemplate,
    "LaneRelease": LaneRelease,
}


@dataclass(frozen=True)
class Document:
    """A YAML document and where it came from (`file` or `file#N` for the N-th document)."""

    source: str
    body: dict[str, Any]


@dataclass
class Bundle:
    """Everything read from a set of files, lanes.dev kinds parsed and the rest kept as is."""

    groups: list[SwimLaneGroup] = field(default_factory=list)
    lanes: list[SwimLane] = field(default_factory=list)
    rollouts: list[WorkloadRollout] = field(default_factory=list)
    templates: list[MetricTemplate] = field(default_factory=list)
    releases: list[LaneRelease] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)


def yaml_files(path: Path) -> list[Path]:
    """A file, or the YAML files of a directory in name order."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"})
    return [path]


def read_documents(path: Path) -> list[Document]:
    """Every non-empty YAML document under `path`.

    Raises:
        InvalidSpec: when a file is missing, is not YAML, or holds something other than objects.
    """
    if not path.exists():
        raise InvalidSpec([FieldError("File", str(path), "(file)", "no such file or directory")])
    documents = []
    for file in yaml_files(path):
        try:
            bodies = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            raise InvalidSpec(
                [FieldError("File", str(file), "(file)", "is not UTF-8 text")]
            ) from exc
        except OSError as exc:
            raise InvalidSpec([FieldError("File", str(file), "(file)", exc.strerror or str(exc))]) from exc
        except yaml.YAMLError as exc:
            message = " ".join(str(exc).split())
            raise InvalidSpec([FieldError("File", str(file), "(yaml)", message)]) from exc
        except RecursionError as exc:
            raise InvalidSpec([FieldError("File", str(file), "(yaml)", "nested too deeply")]) from exc
        bodies = [b for b in bodies if b is not None]
        for i, body in enumerate(bodies):
            source = f"{file}#{i + 1}" if len(bodies) > 1 else str(file)
            if not isinstance(body, dict):
                raise InvalidSpec(
                    [FieldError("File", str(file), f"document {i + 1}", "is not a mapping")]
                )
            for field in ("metadata", "spec"):
                if field in body and not isinstance(body[field], dict | None):
                    # Every reader of a document looks into these two; a string there is a typo.
                    raise InvalidSpec(
                        [FieldError("File", str(file), f"document {i + 1}", f"{field} is not a mapping")]
                    )
            documents.append(Document(source, body))
    return documents


def convert_documents(documents: list[Document]) -> list[Document]:
    """Every document converted to lanes.dev where it is a foreign kind, in input order.

    Argo Rollouts find the AnalysisTemplates they name among the same documents; a document
    that becomes several keeps its source for each.

    Raises:
        InvalidSpec: with every field of every document that does not convert.
    """
    templates = analysis_templates(doc.body for doc in documents)
    converted: list[Document] = []
    errors: list[FieldError] = []
    for doc in documents:
        try:
            converted.extend(Document(doc.source, body) for body in convert_into(doc.body, templates))
        except InvalidSpec as exc:
            errors.extend(e if e.source else replace(e, source=doc.source) for e in exc.errors)
    if errors:
        raise InvalidSpec(errors)
    return converted


def parse_object(body: dict[str, Any], source: str | None = None) -> BaseModel:
    """One lanes.dev object (or an ASM / Kruise one, converted) as its model.

    Raises:
        InvalidSpec: naming the object and each field that is wrong.
    """
    body = convert_document(body)
    kind = str(body.get("kind", ""))
    name = str((body.get("metadata") or {}).get("name", "(unnamed)"))
    model = MODELS.get(kind)
    if model is None:
        raise InvalidSpec([FieldError(kind or "(no kind)", name, "kind", "not a lanes.dev kind", source)])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidSpec(from_validation_error(exc, kind, name, source)) from exc


def parse_documents(documents: list[Document]) -> Bundle:
    """Sort documents into a Bundle, collecting every error before raising.

    Raises:
        InvalidSpec: with all problems of all documents.
    """
    bundle = Bundle()
    documents = convert_documents(documents)
    errors: list[FieldError] = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for doc in documents:
        body = doc.body
        if api_group(body) != GROUP:
            bundle.others.append(body)
            continue
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
        # A lane's name is its own only within its group, as ASM names lanes per group.
        key = (
            str(body.get("kind", "")),
            str(meta.get("name", "")),
            str(meta.get("namespace", "")),
            str(labels.get("swimlane-group", "")),
        )
        if key in seen:
            # Later documents would silently replace earlier ones; a copy-paste slip, refuse it.
            errors.append(
                FieldError(
                    key[0],
                    key[1],
                    "metadata.name",
                    f"defined twice: in {seen[key]} and in {doc.source}",
                    doc.source,
                )
            )
            continue
        seen[key] = doc.source
        try:
            obj = parse_object(body, doc.source)
        except InvalidSpec as exc:
            errors.extend(exc.errors)
            continue
        if isinstance(obj, SwimLaneGroup):
            bundle.groups.append(obj)
        elif isinstance(obj, SwimLane):
            bundle.lanes.append(obj)
        elif isinstance(obj, WorkloadRollout):
            bundle.rollouts.append(obj)
        elif isinstance(obj, MetricTemplate):
            bundle.templates.append(obj)
        elif isinstance(obj, LaneRelease):
            bundle.releases.append(obj)
    if errors:
        raise InvalidSpec(errors)
    return bundle


def load(path: Path) -> Bundle:
    """Read and parse every document under `path`."""
    return parse_documents(read_documents(path))


def load_observations(path: Path) -> Observations:
    """Read an observations file (`ready:` lanes per service, `edges:` observed calls).

    Raises:
        InvalidSpec: when the file is missing or malformed.
    """
    documents = read_documents(path)
    body = documents[0].body if documents else {}
    try:
        return Observations.model_validate(body)
    except ValidationError as exc:
        raise InvalidSpec(from_validation_error(exc, "Observations", path.name, str(path))) from exc
