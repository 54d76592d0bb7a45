"""The dashboard's HTTP server: the built page, its data, a live stream and the buttons.

    GET  /                  the page (static/index.html) and /assets/* (built by Vite)
    GET  /api/state         everything the page shows, as JSON
    GET  /api/stream        server-sent events: that JSON again at every change the watches see
    GET  /api/metrics       ?row=NS/NAME,LANE (repeatable): rate, success rate and p99 over time
    POST /api/actions       {"intent", "kind", "namespace", "name"}: the verb's answer, or its
                            refusal (409) in words

A thread per request (the standard library's server), so a page's open stream never holds up
another request. An action must carry the `X-Lanes-Dashboard` header: a browser sends a custom
header cross-origin only after a CORS preflight, which this server never grants, so another
site open in the same browser cannot press the buttons.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from lanes.cli.intents import Refused

from .cluster import ClusterView
from .metrics import lane_series

log = logging.getLogger(__name__)

STATIC = Path(str(files("lanes.dashboard") / "static"))
ACTION_HEADER = "X-Lanes-Dashboard"
KEEPALIVE_S = 15.0
NOT_BUILT = (
    "<!doctype html><title>lanes dashboard</title><p>The dashboard's page is not built in this "
    "copy of lanes. From a clone, run <code>make dashboard</code>; an installed package ships "
    "it built.</p>"
)


class Settings:
    """What the handlers share: the cluster view and where Prometheus is."""

    def __init__(self, cluster: ClusterView, prometheus: str | None, source: str) -> None:
        self.cluster = cluster
        self.prometheus = prometheus
        self.source = source


class Handler(BaseHTTPRequestHandler):
    """One request; the server's `settings` hold the cluster view."""

    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("%s " + format, self.address_string(), *args)

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, data: Any) -> None:
        self.send_body(status, json.dumps(data).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - the base's name
        url = urlparse(self.path)
        settings = self.server.settings
        if url.path == "/api/state":
            self.send_json(200, settings.cluster.snapshot())
        elif url.path == "/api/stream":
            self.stream()
        elif url.path == "/api/metrics":
            self.metrics(parse_qs(url.query))
        else:
            self.static(url.path)

    def do_POST(self) -> None:  # noqa: N802 - the base's name
        if urlparse(self.path).path != "/api/actions":
            self.send_json(404, {"error": f"no such action path {self.path}"})
            return
        if self.headers.get(ACTION_HEADER) is None:
            self.send_json(403, {"error": f"an action needs the {ACTION_HEADER} header"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            asked = json.loads(self.rfile.read(length) or b"{}")
            fields = [str(asked[k]) for k in ("intent", "kind", "namespace", "name")]
        except (ValueError, KeyError, TypeError) as error:
            self.send_json(400, {"error": f"expected intent, kind, namespace and name: {error}"})
            return
        try:
            message = self.server.settings.cluster.act(*fields)
        except Refused as refused:
            self.send_json(409, {"error": str(refused)})
            return
        self.send_json(200, {"message": message})

    def metrics(self, query: dict[str, list[str]]) -> None:
        """Every asked row (`row=NAMESPACE/NAME,LANE`, repeated) in one answer, so a page asks
        once per refresh and its few connections stay free for the stream and the buttons."""
        settings = self.server.settings
        rows = [row.rpartition(",") for row in query.get("row", [])]
        if not rows or any(not service or not lane for service, _, lane in rows):
            self.send_json(400, {"error": "give row=NAMESPACE/NAME,LANE (repeatable)"})
            return
        answers = {}
        for service, _, lane in rows:
            if settings.prometheus is None:
                answers[f"{service},{lane}"] = {
                    "series": {}, "error": "no Prometheus given: start the dashboard with "
                    "--prometheus-url to see each lane's metrics"}
            else:
                answers[f"{service},{lane}"] = lane_series(settings.prometheus, service, lane,
                                                           settings.source)
        self.send_json(200, {"rows": answers})

    def stream(self) -> None:
        """Server-sent events: the whole view at once, then again at each change."""
        cluster = self.server.settings.cluster
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seen = -1
        try:
            while not self.server.stopping.is_set():
                version = cluster.wait_change(seen, KEEPALIVE_S)
                if version == seen:
                    self.wfile.write(b": still here\n\n")
                else:
                    seen = version
                    data = json.dumps(cluster.snapshot())
                    self.wfile.write(f"event: state\ndata: {data}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    def static(self, path: str) -> None:
        relative = "index.html" if path in ("", "/") else path.lstrip("/")
        target = (STATIC / relative).resolve()
        if not target.is_relative_to(STATIC.resolve()) or not target.is_file():
            if relative == "index.html":
                self.send_body(200, NOT_BUILT.encode(), "text/html; charset=utf-8")
            else:
                self.send_json(404, {"error": f"not found: {path}"})
            return
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/javascript":
            kind += "; charset=utf-8"
        self.send_body(200, target.read_bytes(), kind)


class DashboardServer(ThreadingHTTPServer):
    """The server and what its handlers share; `stopping` ends open streams."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: Settings) -> None:
        super().__init__(address, Handler)
        self.settings = settings
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A page closed or reloaded mid-answer is no error; anything else is logged."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        log.exception("answering %s", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def close(self) -> None:
        """Stop serving and end every stream."""
        self.stopping.set()
        self.settings.cluster.stop()
        self.shutdown()
        self.server_close()


def serve(cluster: ClusterView, address: str, port: int, prometheus: str | None,
          source: str) -> DashboardServer:
    """A started server (in a thread of its own); `close()` stops it."""
    server = DashboardServer((address, port), Settings(cluster, prometheus, source))
    threading.Thread(target=server.serve_forever, daemon=True, name="dashboard").start()
    return server

