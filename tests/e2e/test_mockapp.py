"""The sample service as a process: its answer, what it forwards upstream, injected failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lanes_testbed.mesh.pods import free_block, start_mock
from lanes_testbed.processes import free_port, stop

from .chain import get

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Recorder(ThreadingHTTPServer):
    """An upstream (or proxy) that remembers each request line and its headers."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.seen.append((self.requestline, headers))
                body = b"-> upstream(version: v9, ip: 127.0.0.1)"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def run_app(tmp_path: Path) -> Iterator:
    """Start sample services at 127.0.N.x; stopped at the end of the test."""
    block = free_block()
    children = []

    def start(env: dict[str, str]) -> str:
        ip = f"{block}.{len(children) + 1}"
        children.append(start_mock(f"app{len(children)}", ip, env, tmp_path))
        return f"http://{ip}:8000"

    yield start
    for child in children:
        stop(child)


def test_answers_its_line_then_the_upstream_answer(run_app, recorder: Recorder) -> None:
    url = run_app({"app": "mocka", "version": "v1", "upstream_url": recorder.url + "/next"})
    status, body = get(url, "/mock")
    ip = url.removeprefix("http://").split(":")[0]
    assert status == 200
    assert body == f"-> mocka(version: v1, ip: {ip})-> upstream(version: v9, ip: 127.0.0.1)"
    assert recorder.seen[0][0] == "GET /next HTTP/1.1"


def test_forwards_only_the_trace_header_by_default(run_app, recorder: Recorder) -> None:
    url = run_app({"app": "mocka", "upstream_url": recorder.url})
    get(url, "/mock", {"x-asm-prefer-tag": "canary", "my-request-id": "42",
                       "traceparent": TRACEPARENT, "baggage": "lane=canary"})
    headers = recorder.seen[0][1]
    assert headers["my-request-id"] == "42"
    assert not {"x-asm-prefer-tag", "traceparent", "baggage"} & set(headers)


def test_forwards_lane_trace_and_w3c_headers(run_app, recorder: Recorder) -> None:
    url = run_app({"app": "mocka", "upstream_url": recorder.url,
                   "forward": "lane,trace,context"})
    get(url, "/mock", {"x-asm-prefer-tag": "canary", "my-request-id": "42",
                       "traceparent": TRACEPARENT, "baggage": "lane=canary", "x-other": "no"})
    headers = recorder.seen[0][1]
    assert headers["x-asm-prefer-tag"] == "canary"
    assert headers["my-request-id"] == "42"
    assert headers["traceparent"] == TRACEPARENT
    assert headers["baggage"] == "lane=canary"
    assert "x-other" not in headers


def test_calls_through_the_proxy_with_the_service_url(run_app, recorder: Recorder) -> None:
    url = run_app(
        {"app": "mocka", "upstream_url": "http://mockb:8000/", "HTTP_PROXY": recorder.url}
    )
    assert get(url, "/mock")[0] == 200
    line, headers = recorder.seen[0]
    assert line == "GET http://mockb:8000/ HTTP/1.1"
    assert headers["host"] == "mockb:8000"


def test_calls_out_through_its_sidecar_address_at_the_services_port(
    run_app, recorder: Recorder
) -> None:
    port = recorder.server_address[1]
    url = run_app({"app": "mocka", "upstream_url": f"http://mockb:{port}/x",
                   "OUTBOUND_ADDRESS": "127.0.0.1"})
    assert get(url, "/mock")[0] == 200
    line, headers = recorder.seen[0]
    assert line == "GET /x HTTP/1.1"
    assert headers["host"] == f"mockb:{port}"


def test_upstream_failure_becomes_502_with_own_line(run_app) -> None:
    url = run_app({"app": "mocka", "upstream_url": f"http://127.0.0.1:{free_port()}/"})
    status, body = get(url, "/mock")
    assert status == 502
    assert body.startswith("-> mocka(") and "upstream error" in body


def test_injected_failures_and_latency(run_app) -> None:
    failing = run_app({"app": "mocka", "fail_percent": "100"})
    assert get(failing, "/mock")[0] == 500
    slow = run_app({"app": "mockb", "latency_ms": "200"})
    started = time.monotonic()
    assert get(slow, "/mock")[0] == 200
    assert time.monotonic() - started >= 0.2


def test_partial_failure_rate(run_app) -> None:
    url = run_app({"app": "mocka", "fail_percent": "50"})
    statuses = [get(url, "/")[0] for _ in range(200)]
    assert set(statuses) == {200, 500}
    assert 50 <= statuses.count(500) <= 150


def test_serves_many_concurrent_clients(run_app, recorder: Recorder) -> None:
    url = run_app({"app": "mocka", "upstream_url": recorder.url})
    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(lambda n: get(url, f"/mock?n={n}")[0], range(500), timeout=60))
    assert statuses == [200] * 500
