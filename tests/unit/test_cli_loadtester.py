"""`kubectl lane loadtester` against a real local target: the load it makes, what it refuses,
replacement by rollout, the gates, /status, and the operator's own webhook call accepted."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from lanes.api.analysis import Webhook
from lanes.cli.loadgen import LoadError, parse_load
from lanes.cli.loadtester import CMD_REFUSED, LoadTesterServer
from lanes.cli.main import app
from lanes.operator.webhooks import call_webhook, webhook_payload


@dataclass
class Target:
    """A local service counting the GETs it gets, with the headers of the last one."""

    url: str = ""
    hits: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return self.hits


def _target_handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            with target.lock:
                target.hits += 1
                target.last_headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _target() -> Iterator[Target]:
    target = Target()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _target_handler(target))
    server.daemon_threads = True
    target.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield from (target for _ in _serve(server))


@pytest.fixture
def target() -> Iterator[Target]:
    yield from _target()


@pytest.fixture
def other_target() -> Iterator[Target]:
    yield from _target()


@pytest.fixture
def tester() -> Iterator[LoadTesterServer]:
    yield from _serve(LoadTesterServer("127.0.0.1", 0))  # type: ignore[misc]


def base_url(tester: LoadTesterServer) -> str:
    return f"http://127.0.0.1:{tester.port}"


def post(tester: LoadTesterServer, metadata: dict[str, Any], name: str = "mockb",
         path: str = "/") -> httpx.Response:
    """POST Flagger's payload for rollout default/`name` with `metadata`."""
    payload = {"name": name, "namespace": "default", "phase": "Progressing",
               "checksum": "abc", "metadata": metadata}
    return httpx.post(base_url(tester) + path, json=payload, timeout=5, trust_env=False)


def status(tester: LoadTesterServer) -> list[dict[str, Any]]:
    return httpx.get(base_url(tester) + "/status", timeout=5, trust_env=False).json()["loads"]


def test_a_load_of_rps_for_duration_reaches_the_target(
    tester: LoadTesterServer, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lanes.loadtester")
    begin = time.monotonic()
    answer = post(tester, {"url": target.url, "rps": "20", "duration": "1s",
                           "headers": "x-lane: canary"})
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - begin < 0.5  # answered at once, not after the load
    load = tester.loads.get("default", "mockb")
    assert load is not None and load.wait(5)
    # The schedule holds exactly rps x duration = 20 requests and never more; a loaded CI
    # machine may reach the end of the duration before sending the last few (80% kept).
    assert 16 <= target.count() <= 20
    assert target.last_headers["x-lane"] == "canary"
    [shown] = status(tester)
    assert shown["running"] is False
    assert shown["requests"] == target.count() and shown["errors"] == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "lanes.loadtester"]
    assert any(line.startswith("load started for default/mockb") for line in lines)
    assert any(line.startswith("load finished for default/mockb") for line in lines)


def test_a_command_is_refused(tester: LoadTesterServer) -> None:
    answer = post(tester, {"type": "cmd", "cmd": "hey -z 1m -q 10 -c 2 http://mockb/"})
    assert answer.status_code == 400
    assert answer.text.strip() == CMD_REFUSED
    assert status(tester) == []


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"rps": "10", "duration": "1s"}, "metadata.url"),
        ({"url": "https://mockb/", "duration": "1s"}, "metadata.url"),
        ({"url": "file:///etc/passwd", "duration": "1s"}, "metadata.url"),
        ({"url": "http://mockb/", "rps": "ten", "duration": "1s"}, "metadata.rps"),
        ({"url": "http://mockb/", "rps": "5000", "duration": "1s"}, "metadata.rps"),
        ({"url": "http://mockb/", "rps": "0", "duration": "1s"}, "metadata.rps"),
        ({"url": "http://mockb/"}, "metadata.duration"),
        ({"url": "http://mockb/", "duration": "forever"}, "metadata.duration"),
        ({"url": "http://mockb/", "duration": "11m"}, "metadata.duration"),
        ({"url": "http://mockb/", "duration": "1s", "concurrency": "65"}, "metadata.concurrency"),
        ({"url": "http://mockb/", "duration": "1s", "method": "POST"}, "metadata.method"),
        ({"url": "http://mockb/", "duration": "1s", "headers": "no colon"}, "metadata.headers"),
        ({"url": "http://mockb/", "duration": "1s", "headers": "{not json"}, "metadata.headers"),
        ({"url": "http://mockb/", "duration": "1s", "headers": "bad name: x"}, "metadata.headers"),
        ({"url": "http://mockb/", "duration": "1s", "rsp": "10"}, "metadata.rsp"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(
    tester: LoadTesterServer, metadata: dict[str, Any], named: str
) -> None:
    answer = post(tester, metadata)
    assert answer.status_code == 400
    assert answer.text.startswith(f"{named}:"), answer.text
    assert status(tester) == []


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"namespace": "default", "metadata": {}}']
)
def test_a_payload_that_is_not_flaggers_is_refused(tester: LoadTesterServer, body: bytes) -> None:
    answer = httpx.post(base_url(tester) + "/", content=body, timeout=5, trust_env=False)
    assert answer.status_code == 400


def test_headers_as_a_json_mapping_and_defaults() -> None:
    spec = parse_load({"url": "http://mockb:8080/x", "duration": "1m30s",
                       "headers": '{"x-lane": "canary", "x-user": "7"}'})
    assert (spec.rps, spec.concurrency, spec.duration_s, spec.total) == (10, 2, 90.0, 900)
    assert spec.headers == (("x-lane", "canary"), ("x-user", "7"))
    with pytest.raises(LoadError) as refused:
        parse_load({"url": "http://mockb/", "duration": "1s", "headers": '{"x": "a\\nb"}'})
    assert refused.value.field == "headers"


def test_a_new_load_for_the_same_rollout_replaces_the_running_one(
    tester: LoadTesterServer, target: Target, other_target: Target
) -> None:
    assert post(tester, {"url": target.url, "rps": "20", "duration": "1m"}).status_code == 200
    first = tester.loads.get("default", "mockb")
    time.sleep(0.3)
    assert post(tester, {"url": other_target.url, "rps": "20", "duration": "1s"}).status_code == 200
    assert first is not None and first.wait(5)  # stopped well before its minute
    stopped_at = target.count()
    assert post(tester, {"url": target.url, "rps": "5", "duration": "1s"},
                name="other").status_code == 200
    second = tester.loads.get("default", "mockb")
    assert second is not None and second is not first and second.wait(5)
    assert other_target.count() >= 16
    shown = {(s["namespace"], s["name"]): s for s in status(tester)}
    assert set(shown) == {("default", "mockb"), ("default", "other")}
    assert shown[("default", "mockb")]["url"] == other_target.url
    other = tester.loads.get("default", "other")
    assert other is not None and other.wait(5)
    assert target.count() - stopped_at <= 5  # only the other rollout's load hit it since


def test_the_gates_answer_as_named(tester: LoadTesterServer) -> None:
    assert post(tester, {}, path="/gate/approve").status_code == 200
    assert post(tester, {}, path="/gate/halt").status_code == 403
    assert post(tester, {}, path="/elsewhere").status_code == 404


def test_the_operators_webhook_call_is_accepted(tester: LoadTesterServer, target: Target) -> None:
    hook = Webhook(name="load-test", type="rollout", url=base_url(tester) + "/",
                   metadata={"url": target.url, "rps": "10", "duration": "1s"})
    result = call_webhook(hook, webhook_payload(hook, "mockb", "default", "Progressing", "rev1"))
    assert result.ok, result.message
    load = tester.loads.get("default", "mockb")
    assert load is not None and load.wait(5) and target.count() >= 8
    refused = Webhook(name="load-test", url=base_url(tester) + "/", metadata={"cmd": "hey"})
    failed = call_webhook(refused, webhook_payload(refused, "mockb", "default", "Progressing", "r"))
    assert not failed.ok and "commands are not run" in failed.message


def test_the_verb_is_offered() -> None:
    result = CliRunner().invoke(app, ["loadtester", "--help"])
    assert result.exit_code == 0
    assert "--address" in result.output and "--port" in result.output


def test_status_is_json(tester: LoadTesterServer) -> None:
    answer = httpx.get(base_url(tester) + "/status", timeout=5, trust_env=False)
    assert answer.headers["content-type"] == "application/json"
    assert json.loads(answer.text) == {"loads": []}
