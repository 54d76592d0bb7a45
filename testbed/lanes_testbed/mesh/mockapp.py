"""The mock-chain sample service: answers with its own name and calls the next service.

A stand-in for ASM's `go-http-sample` image, so the story runs on local processes. Run it as
`python -m lanes_testbed.mesh.mockapp` (or `samples/mock-chain/app/mock.py`), configured by env:

    app, version      the name and version it reports (version: see `version_of`)
    LANES_IMAGE       the image it stands in for; its tag decides the version (1.0 -> v1)
    upstream_url      the service to call on every request, e.g. http://mockb:8000/
    POD_IP, PORT      where it listens (default 127.0.0.1:8000); POD_IP is also reported,
                      and upstream calls leave from it, so the mesh knows the calling pod
    OUTBOUND_ADDRESS  the pod's sidecar address: upstream calls connect there, at the port
                      the URL names, with the URL's Host (what iptables capture does in a pod)
    HTTP_PROXY        a proxy to send upstream calls through instead (http_proxy too)
    route_header      lane header to forward (default x-asm-prefer-tag)
    trace_header      request id header to forward (default my-request-id)
    forward           what is passed on upstream, comma-separated (default trace):
                        lane     the route_header
                        trace    the trace_header
                        context  W3C traceparent and baggage
                      or `none`, for an app that passes nothing on, as one relying on the
                      mesh's strict lane mode (lanes chosen by the calling pod) may. The
                      default is what ASM asks of applications in its trace-ID mode; `lane`
                      suits header mode without a trace header, `context` baggage mode
    fail_percent      share of requests answered 500, 0-100 (default 0)
    latency_ms        delay added to every answer (default 0)
    drain_ms          how long it keeps serving after SIGTERM (default 1000), as a pod's preStop
                      sleep does, so requests routed before the mesh drops it still succeed

W3C `traceparent` and `baggage` are carried with OpenTelemetry's propagators; with only the
API installed no spans are recorded, and the incoming context is passed on unchanged.
A setting that cannot be read (such as an unknown word in `forward`) stops the app at start
with a message naming it.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SAMPLE_IMAGE = "go-http-sample"
_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
_TAG = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.\d+)?$")
FORWARDABLE = ("lane", "trace", "context")
DEFAULT_FORWARD = "trace"


def forward_of(text: str) -> frozenset[str]:
    """The `forward` setting: which of lane, trace and context are passed on upstream.

    Raises:
        ValueError: a word is not one of lane, trace, context, or `none` is combined.
    """
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == ["none"]:
        return frozenset()
    unknown = [w for w in words if w not in FORWARDABLE]
    if unknown or not words:
        got = ", ".join(repr(w) for w in unknown) if unknown else "nothing"
        raise ValueError(
            f"forward={text!r}: expected a comma-separated list of {', '.join(FORWARDABLE)}"
            f" or none; got {got}"
        )
    return frozenset(words)


def version_of_image(image: str) -> str:
    """The version a sample image reports: tag `1.0` -> `v1`, `2.0` -> `v2`, `2.1` -> `v2.1`.

    Raises:
        ValueError: the image has no numeric tag, so its version cannot be known.
    """
    name = image.rsplit("/", 1)[-1].split("@", 1)[0]
    tag = name.split(":", 1)[1] if ":" in name else ""
    found = _TAG.match(tag)
    if not found:
        raise ValueError(f"image {image!r} has no version tag like :1.0")
    major, minor = found.group(1), found.group(2)
    return f"v{major}" if minor in (None, "0") else f"v{major}.{minor}"


@dataclass(frozen=True)
class Settings:
    """The service's configuration, read once from the environment."""

    app: str
    version: str
    ip: str
    port: int = 8000
    upstream_url: str | None = None
    proxy: str | None = None
    outbound: str | None = None
    route_header: str = "x-asm-prefer-tag"
    trace_header: str = "my-request-id"
    forward: frozenset[str] = frozenset({DEFAULT_FORWARD})
    fail_percent: float = 0.0
    latency_ms: float = 0.0
    drain_ms: float = 1000.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from env vars named as in the module docstring.

        Raises:
            ValueError: a setting cannot be read: `forward` names something the app cannot
                pass on, the image has no version tag, or a number is not one.
        """
        return cls(
            app=env.get("app", "mock"),
            version=version_of(env),
            ip=env.get("POD_IP", "127.0.0.1"),
            port=int(env.get("PORT", "8000")),
            upstream_url=env.get("upstream_url") or None,
            proxy=env.get("HTTP_PROXY") or env.get("http_proxy") or None,
            outbound=env.get("OUTBOUND_ADDRESS") or None,
            route_header=env.get("route_header", "x-asm-prefer-tag"),
            trace_header=env.get("trace_header", "my-request-id"),
            forward=forward_of(env.get("forward", DEFAULT_FORWARD)),
            fail_percent=float(env.get("fail_percent", "0") or 0),
            latency_ms=float(env.get("latency_ms", "0") or 0),
            drain_ms=float(env.get("drain_ms", "1000") or 0),
        )

    def line(self) -> str:
        return f"-> {self.app}(version: {self.version}, ip: {self.ip})"


def version_of(env: Mapping[str, str]) -> str:
    """The image tag wins over the `version` env var, as in the real sample.

    The real image has its version built in: the story's Deployments keep `version: v1` in
    their env when the image moves to 2.0, and the pods then report v2.
    """
    if env.get("LANES_IMAGE"):
        return version_of_image(env["LANES_IMAGE"])
    return env.get("version") or "v1"


class Upstream:
    """Calls the upstream service over one kept-alive connection per server thread.

    With an `outbound` address (the pod's sidecar) the connection goes there, at the URL's
    port, and the Host header names the service, as a captured connection reaches a sidecar's
    outbound listener. Through a proxy the request line carries the absolute URL instead.
    Connections leave from `source_ip` (the pod's own).
    """

    def __init__(self, url: str, proxy: str | None, source_ip: str | None = None,
                 outbound: str | None = None) -> None:
        self.url = url
        self.source_address = (source_ip, 0) if source_ip else None
        target = urllib.parse.urlsplit(url)
        self.authority = target.netloc
        if outbound:
            proxy = None
            self.connect_to = (outbound, target.port or 80)
        else:
            via = urllib.parse.urlsplit(proxy) if proxy else target
            self.connect_to = (via.hostname or "127.0.0.1", via.port or 80)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        self.request_target = url if proxy else path
        self._local = threading.local()

    def get(self, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """GET the upstream; one retry on a fresh connection if a kept-alive one went stale."""
        for attempt in (1, 2):
            conn = self._connection(fresh=attempt == 2)
            try:
                conn.request(
                    "GET", self.request_target, headers={"Host": self.authority, **headers}
                )
                response = conn.getresponse()
                body = response.read()
                if response.will_close:
                    conn.close()
                    self._local.conn = None
                return response.status, body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connection(self, fresh: bool) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            conn = http.client.HTTPConnection(
                *self.connect_to, timeout=30, source_address=self.source_address
            )
            self._local.conn = conn
        return conn


class MockHandler(BaseHTTPRequestHandler):
    """Any GET: own line, then the upstream's answer; errors upstream become a 502."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, each answer on a kept-alive
    # connection waits for the peer's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    settings: Settings
    upstream: Upstream | None

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        settings = self.settings
        if self.path == "/healthz":
            return self._answer(200, b"ok")
        if settings.latency_ms:
            time.sleep(settings.latency_ms / 1000)
        if settings.fail_percent and random.random() * 100 < settings.fail_percent:
            return self._answer(500, f"{settings.line()} injected failure".encode())
        own = settings.line().encode()
        if self.upstream is None:
            return self._answer(200, own)
        try:
            status, body = self.upstream.get(self._forwarded_headers())
        except OSError as error:
            return self._answer(502, own + f" -> upstream error: {error}".encode())
        return self._answer(200 if status < 400 else 502, own + body)

    def _forwarded_headers(self) -> dict[str, str]:
        settings = self.settings
        out: dict[str, str] = {}
        for word, name in (("lane", settings.route_header), ("trace", settings.trace_header)):
            value = self.headers.get(name)
            if word in settings.forward and value is not None:
                out[name] = value
        if "context" in settings.forward:
            _PROPAGATOR.inject(out, context=_PROPAGATOR.extract(self.headers))
        return out

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class MockServer(ThreadingHTTPServer):
    """A threaded server with a listen backlog fit for load tests (the default is 5)."""

    daemon_threads = True
    request_queue_size = 1024


def serve(settings: Settings) -> MockServer:
    """A bound server for `settings`; call `serve_forever` on it (or run it in a thread)."""
    upstream = (
        Upstream(settings.upstream_url, settings.proxy, settings.ip, settings.outbound)
        if settings.upstream_url
        else None
    )
    handler = type("Handler", (MockHandler,), {"settings": settings, "upstream": upstream})
    return MockServer((settings.ip, settings.port), handler)


def main() -> None:
    """Serve until SIGTERM or Ctrl-C, like the container it stands in for."""
    import signal

    try:
        settings = Settings.from_env(os.environ)
    except ValueError as error:
        raise SystemExit(f"mockapp: {error}") from None
    server = serve(settings)

    def drain_then_stop() -> None:
        time.sleep(settings.drain_ms / 1000)
        server.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=drain_then_stop).start())
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
