"""`kubectl lane operator`'s analysis settings: flags and environment reach the Options, bad ones are refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lanes.operator.run
from lanes.cli.main import app
from lanes.operator.runtime import Options


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Options]:
    """The Options the operator would run with; nothing is started."""
    seen: list[Options] = []
    monkeypatch.setattr(lanes.operator.run, "run", lambda options, level="info": seen.append(options))
    for name in ("LANES_PROMETHEUS_URL", "LANES_METRIC_SOURCE", "LANES_TRACE_AFFINITY_URL",
                 "LANES_TRACE_AFFINITY_SHA256", "LANES_TRACE_AFFINITY_MAX_ENTRIES",
                 "LANES_TRACE_AFFINITY_MAX_AGE", "LANES_TRACE_AFFINITY_MODULE",
                 "LANES_TRACE_AFFINITY_PORT", "LANES_TRACE_AFFINITY_HOST"):
        monkeypatch.delenv(name, raising=False)
    return seen


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["operator", *args], env=env)


def test_by_default_no_prometheus_and_the_istio_source(started: list[Options]) -> None:
    assert invoke().exit_code == 0
    assert (started[0].prometheus_url, started[0].metric_source) == (None, "istio")


def test_flags_set_the_prometheus_url_and_the_metric_source(started: list[Options]) -> None:
    result = invoke("--prometheus-url", "http://prometheus.monitoring:9090", "--metric-source", "envoy")
    assert result.exit_code == 0, result.output
    assert (started[0].prometheus_url, started[0].metric_source) == (
        "http://prometheus.monitoring:9090", "envoy")


def test_the_environment_sets_them_too_and_an_empty_url_is_none(started: list[Options]) -> None:
    env = {"LANES_PROMETHEUS_URL": "https://prom:9090", "LANES_METRIC_SOURCE": "envoy"}
    assert invoke(env=env).exit_code == 0
    assert (started[0].prometheus_url, started[0].metric_source) == ("https://prom:9090", "envoy")
    assert invoke(env={"LANES_PROMETHEUS_URL": ""}).exit_code == 0
    assert started[1].prometheus_url is None


@pytest.mark.parametrize(("args", "message"), [
    (("--metric-source", "linkerd"), "'linkerd' is not one of istio, envoy"),
    (("--prometheus-url", "prom:9090"), "'prom:9090' is not an http:// or https:// URL"),
    (("--trace-affinity-url", "ftp://m/ta.wasm"), "is not an http(s)://, oci:// or file:/// URL"),
    (("--trace-affinity-sha256", "ab" * 32), "a sha256 without --trace-affinity-url"),
    (("--trace-affinity-url", "https://m/ta.wasm", "--trace-affinity-sha256", "xyz"),
     "'xyz' is not 64 hex digits"),
])
def test_bad_settings_are_refused_naming_the_flag(
    started: list[Options], args: tuple[str, ...], message: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())  # unwrap the error box
    assert message in said and any(a in said for a in args if a.startswith("--"))
    assert started == []


def test_no_trace_affinity_by_default(started: list[Options]) -> None:
    assert invoke().exit_code == 0
    assert started[0].trace_affinity is None


def test_trace_affinity_from_the_environment(started: list[Options]) -> None:
    env = {"LANES_TRACE_AFFINITY_URL": "oci://registry.example/lanes/ta:1",
           "LANES_TRACE_AFFINITY_SHA256": "AB" * 32, "LANES_TRACE_AFFINITY_MAX_ENTRIES": "500",
           "LANES_TRACE_AFFINITY_MAX_AGE": "9"}
    result = invoke(env=env)
    assert result.exit_code == 0, result.output
    module = started[0].trace_affinity
    assert (module.url, module.sha256, module.max_entries, module.max_age_seconds) == (
        "oci://registry.example/lanes/ta:1", "ab" * 32, 500, 9)


MODULE = b"\0asm\x01\0\0\0 a module"


@pytest.fixture
def module_file(tmp_path: Path) -> Path:
    path = tmp_path / "trace-affinity.wasm"
    path.write_bytes(MODULE)
    return path


def test_a_served_module_is_fetched_from_this_operator_with_its_sha256(
    started: list[Options], module_file: Path
) -> None:
    env = {"LANES_TRACE_AFFINITY_MODULE": str(module_file), "LANES_TRACE_AFFINITY_PORT": "9191",
           "LANES_TRACE_AFFINITY_HOST": "lanes-trace-affinity.lanes-system.svc"}
    result = invoke("--metrics-host", "127.0.0.1", env=env)
    assert result.exit_code == 0, result.output
    module, served = started[0].trace_affinity, started[0].served_module
    assert module.url == "http://lanes-trace-affinity.lanes-system.svc:9191/wasm/trace-affinity.wasm"
    assert module.sha256 == hashlib.sha256(MODULE).hexdigest() == served.sha256
    assert (served.content, served.port, served.address) == (MODULE, 9191, "127.0.0.1")


def test_a_given_url_wins_over_the_served_module(started: list[Options], module_file: Path) -> None:
    result = invoke("--trace-affinity-module", str(module_file), "--trace-affinity-url",
                    "oci://registry.example/lanes/ta:1", "--trace-affinity-sha256", "cd" * 32)
    assert result.exit_code == 0, result.output
    module = started[0].trace_affinity
    assert (module.url, module.sha256) == ("oci://registry.example/lanes/ta:1", "cd" * 32)
    assert started[0].served_module.content == MODULE


@pytest.mark.parametrize(("args", "message"), [
    ((), "serving the module needs the host name proxies reach this operator by"),
    (("--trace-affinity-host", "http://lanes"), "'http://lanes' is not a host name"),
    (("--trace-affinity-host", "lanes", "--trace-affinity-sha256", "ab" * 32),
     "the served module's sha256 is its own"),
], ids=["no-host", "url-as-host", "sha256-of-its-own"])
def test_a_served_module_without_what_it_needs_is_refused(
    started: list[Options], module_file: Path, args: tuple[str, ...], message: str
) -> None:
    result = invoke("--trace-affinity-module", str(module_file), *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())
    assert started == []


def test_a_module_file_that_is_not_wasm_is_refused(started: list[Options], tmp_path: Path) -> None:
    text = tmp_path / "module.txt"
    text.write_text("hello")
    for path, message in ((text, "not a WebAssembly module"), (tmp_path / "none", "No such file")):
        result = invoke("--trace-affinity-module", str(path), "--trace-affinity-host", "lanes")
        assert result.exit_code == 2
        said = " ".join(result.output.replace("│", " ").split())
        assert message in said and "--trace-affinity-module" in said
    assert started == []


def test_leader_election_is_off_by_default_and_set_by_the_charts_environment(started: list[Options]) -> None:
    assert invoke().exit_code == 0
    assert started[0].election is None
    env = {"LANES_LEADER_ELECTION": "on", "POD_NAMESPACE": "lanes-system", "POD_NAME": "lanes-0",
           "LANES_LEASE_NAME": "lanes", "LANES_LEASE_DURATION": "20", "LANES_RENEW_DEADLINE": "12",
           "LANES_RETRY_PERIOD": "3"}
    assert invoke(env=env).exit_code == 0
    election = started[1].election
    assert (election.namespace, election.name, election.identity) == ("lanes-system", "lanes", "lanes-0")
    assert (election.lease_duration, election.renew_deadline, election.retry_period) == (20, 12, 3)


def test_timings_that_do_not_nest_are_refused(started: list[Options]) -> None:
    result = invoke("--leader-elect", "--lease-namespace", "x", "--lease-duration", "5", "--renew-deadline", "8")
    assert result.exit_code == 2
    assert "must exceed the renew deadline" in " ".join(result.output.replace("│", " ").split())
    assert started == []
