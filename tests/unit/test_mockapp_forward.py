"""The sample service's `forward` setting, and that its calls leave from the pod's own IP."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lanes_testbed.mesh.mockapp import Settings, forward_of, serve
from lanes_testbed.mesh.pods import free_block
from lanes_testbed.processes import free_port

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
INCOMING = {"x-asm-prefer-tag": "s1", "my-request-id": "42", "traceparent": TRACEPARENT,
            "baggage": "lane=s1", "x-other": "no"}
LANE, TRACE, CONTEXT = {"x-asm-prefer-tag"}, {"my-request-id"}, {"traceparent", "baggage"}


class Upstream(ThreadingHTTPServer):
    """Remembers the caller's address and the headers of each request."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                upstream.seen.append((self.client_address[0], headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)


def run(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    run(server)
    yield server
    server.shutdown()
    server.server_close()


def call_app(env: dict[str, str], upstream: Upstream, ip: str = "127.0.0.1",
             incoming: dict[str, str] = INCOMING) -> dict[str, str]:
    """Start the app in this process with `env`, send it `incoming`, return what upstream got."""
    port = free_port()
    settings = Settings.from_env({
        "app": "mocka", "POD_IP": ip, "PORT": str(port),
        "upstream_url": f"http://127.0.0.1:{upstream.server_address[1]}/", **env,
    })
    app = serve(settings)
    run(app)
    try:
        conn = http.client.HTTPConnection(ip, port, timeout=10)
        conn.request("GET", "/", headers=incoming)
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        app.shutdown()
        app.server_close()
    return upstream.seen[-1][1]


@pytest.mark.parametrize(
    ("forward", "expected"),
    [
        (None, TRACE),
        ("lane,trace,context", LANE | TRACE | CONTEXT),
        ("lane", LANE),
        ("trace, context", TRACE | CONTEXT),
        ("context", CONTEXT),
        ("none", set()),
    ],
    ids=["default", "all", "lane", "trace-context-with-space", "context", "none"],
)
def test_forward_passes_on_exactly_what_it_names(
    forward: str | None, expected: set[str], upstream: Upstream
) -> None:
    env = {} if forward is None else {"forward": forward}
    headers = call_app(env, upstream)
    assert {h for h in LANE | TRACE | CONTEXT | {"x-other"} if h in headers} == expected
    if "x-asm-prefer-tag" in expected:
        assert headers["x-asm-prefer-tag"] == "s1"
    if "traceparent" in expected:
        assert headers["traceparent"] == TRACEPARENT and headers["baggage"] == "lane=s1"


def test_forward_reads_the_configured_header_names(upstream: Upstream) -> None:
    env = {"forward": "lane", "route_header": "x-lane", "trace_header": "x-id"}
    call_app(env, upstream, incoming={"x-lane": "s2", "x-id": "7"})
    headers = upstream.seen[-1][1]
    assert headers.get("x-lane") == "s2" and "x-id" not in headers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lane,baggage", "got 'baggage'"),
        ("none,lane", "got 'none'"),
        ("", "got nothing"),
        ("Lane", "got 'Lane'"),
    ],
)
def test_unknown_forward_words_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"forward={text!r}: expected .*lane, trace, context"
                                         f" or none; {message}"):
        forward_of(text)


def test_unknown_forward_word_stops_the_app_at_start_with_the_word() -> None:
    env = {**os.environ, "forward": "lane,tarce", "PORT": str(free_port())}
    done = subprocess.run([sys.executable, "-m", "lanes_testbed.mesh.mockapp"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "forward='lane,tarce'" in done.stderr and "'tarce'" in done.stderr
    assert "Traceback" not in done.stderr


def test_upstream_calls_leave_from_the_pod_ip(upstream: Upstream) -> None:
    ip = f"{free_block()}.7"
    call_app({}, upstream, ip=ip)
    assert upstream.seen[-1][0] == ip
