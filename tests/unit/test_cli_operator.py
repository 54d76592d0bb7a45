"""`kubectl lane operator`'s analysis settings: flags and environment reach the Options, bad ones are refused."""

from __future__ import annotations

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
                 "LANES_TRACE_AFFINITY_MAX_AGE"):
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
