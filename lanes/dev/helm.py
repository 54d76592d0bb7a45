"""Find or build Helm, which the chart test renders `charts/lanes` with.

Helm is built from its Go module at the release pinned in lanes/dev/helm/go.mod and cached
beside the control-plane binaries; a `helm` already on PATH is not used, so every machine
tests the chart with the same release.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from lanes.dev.binaries import cache_root
from lanes.dev.gobuild import go_build

MODULE_DIR = Path(__file__).parent / "helm"
PACKAGE = "helm.sh/helm/v3/cmd/helm"


def pinned_version(go_mod: Path = MODULE_DIR / "go.mod") -> str:
    """The Helm release our go.mod requires."""
    match = re.search(r"^\s*helm\.sh/helm/v3\s+(v\S+)", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{go_mod} does not require helm.sh/helm/v3")
    return match.group(1)


def ensure_helm(progress: TextIO | None = sys.stderr) -> Path:
    """Return the pinned Helm executable, building it first if needed (about 2 minutes cold)."""
    version = pinned_version()
    directory = cache_root() / f"helm-{version}"
    binary = directory / "helm"
    if os.access(binary, os.X_OK):
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    with (cache_root() / f"helm-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.access(binary, os.X_OK):
            partial = directory / f".helm.{os.getpid()}"
            try:
                go_build(
                    MODULE_DIR,
                    partial,
                    f"-s -w -X helm.sh/helm/v3/internal/version.version={version}",
                    what=f"Helm {version}",
                    log_path=directory / "build.log",
                    progress=progress,
                    package=PACKAGE,
                )
                partial.replace(binary)
            finally:
                partial.unlink(missing_ok=True)
    return binary
