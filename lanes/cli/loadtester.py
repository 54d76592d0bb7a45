"""`kubectl lane loadtester`: a load tester answering Flagger's webhook protocol.

A WorkloadRollout's `rollout` webhook pointed here starts load on the canary while the
analysis checks it, as Flagger's load tester does for a Canary, but without running shell
commands: a payload whose metadata has `cmd` is refused, and the load is described by the
fields `lanes.cli.loadgen` checks (url, rps, duration, concurrency, headers, method).

    POST /               Flagger's payload; starts the load for (namespace, name), 200 at once
    POST /gate/approve   200: a confirm gate that always lets the release go on
    POST /gate/halt      403: a confirm gate that always holds it
    GET  /status         the loads, with the requests sent and the errors counted
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import typer

from .loadgen import LoadError, Loads, parse_load

log = logging.getLogger("lanes.loadtester")

MAX_BODY = 64 * 1024
CMD_REFUSED = "commands are not run; give url, rps, duration"


class BadPayload(ValueError):
    """A request the load tester turns away with 400; the message says why."""


class LoadTesterServer(ThreadingHTTPServer):
    """The HTTP server, holding the loads it started."""

    daemon_threads = True

    def __init__(self, address: str, port: int, loads: Loads | None = None) -> None:
        super().__init__((address, port), LoadTesterHandler)
        self.loads = loads or Loads()

    @property
    def port(self) -> int:
        """The port bound (useful when asked for port 0)."""
        return int(self.server_address[1])

    def server_close(self) -> None:
        """Stop the loads too: no load outlives the server that started it."""
        self.loads.stop_all()
        super().server_close()


def start_load(loads: Loads, payload: Any) -> str:
    """Start the load a webhook payload describes; the line answered. BadPayload if it cannot."""
    if not isinstance(payload, dict):
        raise BadPayload("the payload is not a JSON object")
    name, namespace = payload.get("name"), payload.get("namespace")
    if not isinstance(name, str) or not name:
        raise BadPayload("name: missing; Flagger's payload names the rollout")
    if not isinstance(namespace, str) or not namespace:
        raise BadPayload("namespace: missing; Flagger's payload names the rollout's namespace")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, dict):
        raise BadPayload("metadata: not an object")
    if "cmd" in metadata:
        raise BadPayload(CMD_REFUSED)
    try:
        spec = parse_load(metadata)
    except LoadError as error:
        raise BadPayload(str(error)) from None
    loads.start(namespace, name, spec)
    return f"load started for {namespace}/{name}: {spec.rps} rps for {spec.duration}"


class LoadTesterHandler(BaseHTTPRequestHandler):
    """Routes the load tester's few paths; anything else is 404."""

    server: LoadTesterServer
    GATES = {"/gate/approve": (200, "approved"), "/gate/halt": (403, "halted")}

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """`/` starts a load; the gates answer as their names say."""
        try:
            body = self._body()
        except BadPayload as error:
            self._answer(400, str(error))
            return
        if self.path in self.GATES:
            self._answer(*self.GATES[self.path])
        elif self.path == "/":
            self._hook(body)
        else:
            self._answer(404, f"no such path {self.path}")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """`/status`: the loads as JSON."""
        if self.path == "/status":
            self._json(200, {"loads": self.server.loads.snapshot()})
        else:
            self._answer(404, f"no such path {self.path}")

    def _hook(self, body: bytes) -> None:
        try:
            payload = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._answer(400, "the payload is not JSON")
            return
        try:
            self._answer(200, start_load(self.server.loads, payload))
        except BadPayload as error:
            self._answer(400, str(error))

    def _body(self) -> bytes:
        """The request body, refused when larger than any webhook payload needs."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadPayload("Content-Length is not a number") from None
        if not 0 <= length <= MAX_BODY:
            raise BadPayload(f"the payload is larger than {MAX_BODY} bytes")
        return self.rfile.read(length)

    def _answer(self, status: int, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode())

    def _json(self, status: int, document: Any) -> None:
        self._send(status, "application/json", json.dumps(document).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's naming
        """Requests go to the debug log: the info log keeps one line per load."""
        log.debug("%s %s", self.address_string(), format % args)


def loadtester(
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks one.")] = 8080,
) -> None:
    """Answer Flagger-style webhooks by generating the load they describe (never commands)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per load, not per request
    try:
        server = LoadTesterServer(address, port)
    except OSError as error:
        typer.echo(f"error: cannot listen on {address}:{port}: {error.strerror or error}", err=True)
        raise typer.Exit(1) from None
    log.info("load tester listening on http://%s:%d/", address, server.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
