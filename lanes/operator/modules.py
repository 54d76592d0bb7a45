"""Serve the trace-affinity module to the proxies, so the WasmPlugins need no host of their own.

Every replica serves the same file at `MODULE_PATH` (the chart's image carries it), so the
Service in front of the replicas needs no leader. The file is read once at start: the bytes
served are the bytes whose sha256 the WasmPlugins carry, whatever happens to the file later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .serving import Answer, BackgroundServer

MODULE_PATH = "/wasm/trace-affinity.wasm"
CONTENT_TYPE = "application/wasm"


@dataclass(frozen=True)
class ServedModule:
    """The module's bytes, and where this replica serves them."""

    content: bytes
    port: int
    address: str = "0.0.0.0"

    @property
    def sha256(self) -> str:
        """The hex digest Istio's WasmPlugin `sha256` checks the fetched module against."""
        return hashlib.sha256(self.content).hexdigest()


def load_module(path: Path | str, port: int, address: str = "0.0.0.0") -> ServedModule:
    """Read the module to serve.

    Raises:
        ValueError: the file is missing, unreadable, or not a WebAssembly module.
    """
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    if not content.startswith(b"\0asm"):
        raise ValueError(f"{path}: not a WebAssembly module (no \\0asm header)")
    return ServedModule(content, port, address)


def served_url(host: str, port: int) -> str:
    """The URL proxies fetch the served module at, `host` being the name they reach it by."""
    return f"http://{host}:{port}{MODULE_PATH}"


class ModuleServer(BackgroundServer):
    """`GET MODULE_PATH` (and `HEAD`) on a background thread; everything else is 404."""

    def __init__(self, module: ServedModule):
        content = module.content

        def answer(path: str) -> Answer:
            if path.split("?", 1)[0] == MODULE_PATH:
                return 200, CONTENT_TYPE, content
            return 404, "text/plain", b"not found\n"

        super().__init__(module.address, module.port, answer, "lanes-module", head=True)
