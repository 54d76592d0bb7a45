"""The operator's served trace-affinity module: the bytes read at start, at one fixed path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from lanes_testbed.processes import free_port
from lanes.operator.modules import MODULE_PATH, ModuleServer, load_module, served_url

MODULE = b"\0asm\x01\0\0\0" + bytes(range(256)) * 64


@pytest.fixture
def served(tmp_path: Path):
    path = tmp_path / "trace-affinity.wasm"
    path.write_bytes(MODULE)
    module = load_module(path, free_port(), "127.0.0.1")
    path.write_bytes(b"\0asm changed after the start")
    server = ModuleServer(module).start()
    try:
        yield module, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_the_module_read_at_start_is_served_with_the_sha256_the_plugins_carry(served) -> None:
    module, base = served
    answer = httpx.get(base + MODULE_PATH, trust_env=False)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/wasm"
    assert answer.content == MODULE
    assert hashlib.sha256(answer.content).hexdigest() == module.sha256


def test_head_gives_the_length_and_other_paths_are_not_found(served) -> None:
    _, base = served
    head = httpx.head(base + MODULE_PATH, trust_env=False)
    assert (head.status_code, head.headers["content-length"]) == (200, str(len(MODULE)))
    assert httpx.get(base + "/wasm/other.wasm", trust_env=False).status_code == 404
    assert httpx.get(base + "/metrics", trust_env=False).status_code == 404


def test_the_url_names_the_host_and_port_proxies_reach() -> None:
    assert served_url("lanes-trace-affinity.lanes-system.svc", 9091) == (
        "http://lanes-trace-affinity.lanes-system.svc:9091/wasm/trace-affinity.wasm")
