"""Serve the trace-affinity module to the proxies, so the WasmPlugins need no host of their own.

Every replica serves the same file at `MODULE_PATH` (the chart's image carries it), so the
Service in front of the replicas needs no leader. The file is read once at start: the bytes
served are the bytes whose sha256 the WasmPlugins carry, whatever happens to the file later.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


class ModuleServer:
    """`GET MODULE_PATH` (and `HEAD`) on a background thread; everything else is 404."""

    def __init__(self, module: ServedModule):
        content = module.content

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, send_body: bool) -> None:
                found = self.path.split("?", 1)[0] == MODULE_PATH
                body = content if found else b"not found\n"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", CONTENT_TYPE if found else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(send_body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(send_body=False)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((module.address, module.port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="lanes-module", daemon=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.server_address[1]

    def start(self) -> ModuleServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
