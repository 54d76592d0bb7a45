"""The trace-affinity Wasm module in a real Envoy: it remembers lanes, restores them, forgets.

Each listener answers with the lane header it routed on (`canary`, `blue`, or `base` when it
has none), so the answer shows what the module did before routing. One listener has the
default limits; the other keeps at most 4 entries for 1 second, to watch evictions and expiry.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from lanes_testbed.mesh import envoy_binary
from lanes_testbed.processes import Child, free_port, spawn, stop, wait_until
from lanes_testbed.wasm import (
    MODULE_DIR,
    STAT_PREFIX,
    cargo_env,
    cargo_executable,
    ensure_trace_affinity,
)

LANE, TRACE = "x-asm-prefer-tag", "my-request-id"
HCM = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
       ".HttpConnectionManager")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wasm_filter(module: str, plugin_config: dict, vm_id: str) -> dict:
    """Envoy's Wasm HTTP filter running `module` (a file) with `plugin_config` as its JSON."""
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": vm_id,
                "root_id": vm_id,
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": json.dumps(plugin_config, sort_keys=True)},
                "vm_config": {"vm_id": vm_id, "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": module}}},
            },
        },
    }


def _listener(name: str, port: int, plugin_config: dict, vm_id: str, module: Path) -> dict:
    def answer(lane: str) -> dict:
        return {
            "match": {"prefix": "/", "headers": [{"name": LANE, "string_match": {"exact": lane}}]},
            "direct_response": {"status": 200, "body": {"inline_string": lane}},
        }

    routes = [answer("canary"), answer("blue"),
              {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "base"}}}]
    hcm = {
        "@type": HCM,
        "stat_prefix": name,
        "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
        "http_filters": [
            wasm_filter(str(module), plugin_config, vm_id),
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    }


@dataclass
class Proxy:
    child: Child
    admin: int
    roomy: int
    tight: int

    def ask(self, port: int, headers: dict[str, str]) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
        with _DIRECT.open(request, timeout=5) as response:
            return response.read().decode()

    def stats(self) -> dict[str, int]:
        with _DIRECT.open(f"http://127.0.0.1:{self.admin}/stats?filter=lanes_trace", timeout=5) as r:
            lines = r.read().decode().splitlines()
        out = {}
        for line in lines:
            name, _, value = line.partition(": ")
            if name.startswith(STAT_PREFIX):
                out[name[len(STAT_PREFIX):]] = int(value)
        return out


def _start(tmp: Path, listeners: list[dict], admin: int) -> Child:
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": listeners},
    }
    path = tmp / "envoy.json"
    path.write_text(json.dumps(config))
    argv = [str(envoy_binary()), "-c", str(path), "--disable-hot-restart", "--concurrency", "2",
            "--log-level", "warning"]
    return spawn("envoy", argv, tmp / "envoy.log", tmp / "envoy.pid")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    module = ensure_trace_affinity()
    tmp = tmp_path_factory.mktemp("trace-affinity")
    admin, roomy, tight = free_port(), free_port(), free_port()
    listeners = [
        _listener("roomy", roomy, {"routeHeader": LANE, "traceHeader": TRACE}, "roomy", module),
        _listener("tight", tight, {"routeHeader": LANE, "traceHeader": TRACE, "maxEntries": 4,
                                   "maxAgeSeconds": 1}, "tight", module),
    ]
    child = _start(tmp, listeners, admin)
    found = Proxy(child, admin, roomy, tight)

    def serving() -> bool:
        try:
            return found.ask(roomy, {}) == "base" and found.ask(tight, {}) == "base"
        except OSError:
            return False

    try:
        # Envoy compiles the module before its listeners serve: seconds alone, a minute or
        # more on a machine busy with other work.
        wait_until(serving, what="Envoy with the module", timeout=120, watch=[child])
        yield found
    finally:
        stop(child)


def _trace() -> str:
    return uuid.uuid4().hex


def test_a_trace_seen_in_a_lane_brings_its_calls_back_to_it(proxy: Proxy) -> None:
    trace = _trace()
    before = proxy.stats()
    assert proxy.ask(proxy.roomy, {TRACE: trace, LANE: "canary"}) == "canary"
    assert [proxy.ask(proxy.roomy, {TRACE: trace}) for _ in range(5)] == ["canary"] * 5
    after = proxy.stats()
    assert after["hits"] - before["hits"] == 5
    assert after["remembered"] - before["remembered"] == 1


def test_a_lane_header_that_is_sent_wins_over_memory(proxy: Proxy) -> None:
    trace = _trace()
    assert proxy.ask(proxy.roomy, {TRACE: trace, LANE: "canary"}) == "canary"
    assert proxy.ask(proxy.roomy, {TRACE: trace, LANE: "blue"}) == "blue"
    assert proxy.ask(proxy.roomy, {TRACE: trace}) == "blue"


def test_unknown_and_missing_traces_are_misses_served_by_the_fallback(proxy: Proxy) -> None:
    before = proxy.stats()
    assert proxy.ask(proxy.roomy, {TRACE: _trace()}) == "base"
    assert proxy.ask(proxy.roomy, {}) == "base"
    after = proxy.stats()
    assert after["misses"] - before["misses"] == 2
    assert after["hits"] == before["hits"]


def test_every_worker_sees_what_another_remembered(proxy: Proxy) -> None:
    """Envoy runs two workers; each request is a new connection, which either may take."""
    traces = [_trace() for _ in range(200)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda t: proxy.ask(proxy.roomy, {TRACE: t, LANE: "canary"}), traces))
        answers = list(pool.map(lambda t: proxy.ask(proxy.roomy, {TRACE: t}), traces))
    assert answers == ["canary"] * len(traces)


def test_an_entry_older_than_the_maximum_age_is_not_used(proxy: Proxy) -> None:
    trace = _trace()
    assert proxy.ask(proxy.tight, {TRACE: trace, LANE: "canary"}) == "canary"
    assert proxy.ask(proxy.tight, {TRACE: trace}) == "canary"
    time.sleep(1.2)
    assert proxy.ask(proxy.tight, {TRACE: trace}) == "base"


def test_past_the_entry_limit_the_oldest_are_evicted_and_counted(proxy: Proxy) -> None:
    before = proxy.stats()
    traces = [_trace() for _ in range(40)]
    for trace in traces:
        assert proxy.ask(proxy.tight, {TRACE: trace, LANE: "canary"}) == "canary"
    assert proxy.ask(proxy.tight, {TRACE: traces[-1]}) == "canary"
    kept = [proxy.ask(proxy.tight, {TRACE: t}) for t in traces[:-1]].count("canary")
    after = proxy.stats()
    assert kept <= 3
    assert after["evictions"] - before["evictions"] >= 36
    assert proxy.child.alive()


def test_a_bad_plugin_configuration_is_refused_naming_the_field(tmp_path: Path) -> None:
    module = ensure_trace_affinity()
    admin = free_port()
    bad = {"routeHeader": LANE, "traceHeader": TRACE, "maxEntries": 0}
    child = _start(tmp_path, [_listener("bad", free_port(), bad, "bad", module)], admin)
    try:
        wait_until(lambda: not child.alive(), what="Envoy to refuse the config", timeout=120)
    finally:
        stop(child)
    log = (tmp_path / "envoy.log").read_text()
    assert "maxEntries 0: expected 1 to 1000000" in log


def test_the_module_logic_passes_its_own_tests() -> None:
    result = subprocess.run([cargo_executable(), "test", "--locked"], cwd=MODULE_DIR,
                            env=cargo_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
