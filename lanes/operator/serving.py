"""The operator's own small HTTP endpoints (metrics and health, the served module), each on a
background thread: an endpoint says only how it answers a path."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

Answer = tuple[int, str, bytes]
"""Status code, content type and body."""


class BackgroundServer:
    """Answers `GET` (and, with `head`, `HEAD`) by `answer(path)`, quietly, on its own thread."""

    def __init__(self, host: str, port: int, answer: Callable[[str], Answer], name: str,
                 head: bool = False):
        class Handler(BaseHTTPRequestHandler):
            def _reply(self, send_body: bool) -> None:
                code, ctype, body = answer(self.path)
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._reply(send_body=True)

            if head:
                def do_HEAD(self) -> None:  # noqa: N802
                    self._reply(send_body=False)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for a free one)."""
        return self.server.server_address[1]

    def start(self) -> Self:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
