"""Read YAML documents from files, and lanes.dev's own kinds into checked models.

Foreign kinds (ASM, Kruise, Flagger, Argo) are converted by `lanes.importers` before they get
here; `parse_own` never converts, so the operator, reading its own kinds from the cluster,
parses them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .alertprovider import AlertProvider
from .analysis import MetricTemplate
from .common import GROUP
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
    "AlertProvider": AlertProvider,
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
    alert_providers: list[AlertProvider] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)


def api_group(doc: Mapping[str, Any]) -> str:
    """The API group of a document's apiVersion (`""` for the core group)."""
    api_version = str(doc.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


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


def parse_own(body: dict[str, Any], source: str | None = None) -> BaseModel:
    """One lanes.dev object as its model; a foreign kind is refused, not converted.

    Raises:
        InvalidSpec: naming the object and each field that is wrong.
    """
    kind = str(body.get("kind", ""))
    name = str((body.get("metadata") or {}).get("name", "(unnamed)"))
    model = MODELS.get(kind)
    if model is None:
        raise InvalidSpec([FieldError(kind or "(no kind)", name, "kind", "not a lanes.dev kind", source)])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidSpec(from_validation_error(exc, kind, name, source)) from exc


parse_object = parse_own
"""The operator's name for `parse_own`."""


def bundle_documents(documents: list[Document]) -> Bundle:
    """Sort lanes.dev documents into a Bundle, other groups' kept as is, collecting every
    error before raising; foreign kinds are to be converted first (`lanes.importers`).

    Raises:
        InvalidSpec: with all problems of all documents.
    """
    bundle = Bundle()
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
            obj = parse_own(body, doc.source)
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
        elif isinstance(obj, AlertProvider):
            bundle.alert_providers.append(obj)
    if errors:
        raise InvalidSpec(errors)
    return bundle


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
