"""Read manifest files for what installing them must wait for."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml


def crd_names(paths: Iterable[Path]) -> list[str]:
    """Names of the CustomResourceDefinitions in YAML files, in file order."""
    names = []
    for path in paths:
        with Path(path).open() as stream:
            for document in yaml.safe_load_all(stream):
                if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                    names.append(document["metadata"]["name"])
    return names


def manifest_files(directory: Path) -> list[Path]:
    """YAML files of a directory, sorted so installs are repeatable; none if it is absent."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())
