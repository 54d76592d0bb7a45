"""Find or build Helm, which the chart test renders `charts/lanes` with.

Helm is built from its Go module at the release pinned in testbed/lanes_testbed/helm/go.mod and cached
beside the control-plane binaries; a `helm` already on PATH is not used, so every machine
tests the chart with the same release.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

from lanes_testbed.binaries import cache_root
from lanes_testbed.gobuild import cached_tool

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
    return cached_tool(
        cache_root(),
        "helm",
        version,
        MODULE_DIR,
        PACKAGE,
        f"-s -w -X helm.sh/helm/v3/internal/version.version={version}",
        f"Helm {version}",
        progress,
    )
