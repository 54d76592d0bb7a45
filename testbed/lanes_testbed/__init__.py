"""The lanes test bed: a local control plane, a local node, an Envoy mesh, Prometheus and the demos.

Installed for development and tests beside lanes (`make demo`, `make test`); lanes itself never
imports it. Where it is installed, `kubectl lane demo`, `kubectl lane dev` and `kubectl lane wasm`
are added to the CLI through the `lanes.cli` entry point.
"""

from __future__ import annotations

import os
from pathlib import Path


def import_path() -> str:
    """A PYTHONPATH under which a child process imports this very copy of lanes and the test bed."""
    import lanes

    roots = (Path(lanes.__file__).resolve().parent.parent, Path(__file__).resolve().parent.parent)
    return os.pathsep.join(dict.fromkeys(str(root) for root in roots))
