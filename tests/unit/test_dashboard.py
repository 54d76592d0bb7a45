"""`kubectl lane dashboard`'s pure parts and its server, without a cluster: what the page draws
from live bodies, the metric queries, Prometheus down, the built page, refused actions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from lanes.analysis.queries import builtin_query, render_query
from lanes.cli.intents import Refused
from lanes.cli.main import app
from lanes.dashboard.metrics import lane_series
from lanes.dashboard.server import STATIC, serve
from lanes.dashboard.views import group_graph, metric_queries, snapshot

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mock-chain" / "lanes.yaml"


def sample() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    documents = list(yaml.safe_load_all(SAMPLE.read_text()))
    group = next(d for d in documents if d["kind"] == "SwimLaneGroup")
    return group, [d for d in documents if d["kind"] == "SwimLane"]


def with_canary_pods(group: dict[str, Any], *services: str) -> dict[str, Any]:
    """The group as the operator leaves it once canary pods of `services` are ready."""
    return {**group, "status": {"lanes": [
        {"name": "base", "services": ["default/mocka", "default/mockb", "default/mockc"]},
        {"name": "canary", "services": list(services)},
    ], "conditions": [{"type": "Ready", "status": "True", "message": "routes in force"}]}}


def test_each_lane_reaches_its_own_subset_where_it_has_pods_and_base_elsewhere() -> None:
    group, lanes = sample()
    view = group_graph(with_canary_pods(group, "default/mockb"), lanes)
    assert view["errors"] == []
    assert view["lanes"] == ["base", "canary"]
    assert view["entry"] == "default/mocka"
    assert [(e["source"], e["target"]) for e in view["edges"]] == [
        ("default/mocka", "default/mockb"), ("default/mockb", "default/mockc")]
    canary = {hop["service"]: (hop["subset"], hop["fallback"]) for hop in view["routes"]["canary"]}
    assert canary == {"default/mocka": ("base", True), "default/mockb": ("canary", False),
                      "default/mockc": ("base", True)}
    pods = {node["id"]: node["pods"] for node in view["nodes"]}
    assert pods["default/mockb"] == ["base", "canary"]
    assert view["ready"] == "True"


def test_a_group_that_does_not_parse_is_told_in_words() -> None:
    group, lanes = sample()
    broken = {**group, "spec": {**group["spec"], "permissiveModeConfiguration": {
        **group["spec"]["permissiveModeConfiguration"], "fallbackTarget": "nowhere"}}}
    view = group_graph(broken, lanes)
    assert view["errors"], view
    assert any("nowhere" in line for line in view["errors"])
    assert view["nodes"] == [] and view["routes"] == {}


def test_a_snapshot_holds_groups_releases_and_only_release_events() -> None:
    group, lanes = sample()
    release = {"metadata": {"name": "lane-v3", "namespace": "default"},
               "spec": {"swimLaneRef": {"name": "canary"}, "steps": [{"weight": 10}, {"weight": 50}]},
               "status": {"phase": "Progressing", "currentStepIndex": 1, "weight": 10,
                          "services": [{"service": "mockc", "rollout": "rollouts-mockc", "ok": False,
                                        "metrics": [{"name": "request-success-rate", "value": 0.0,
                                                     "range": ">= 99", "ok": False}]}]}}
    events = [
        {"involvedObject": {"kind": "LaneRelease", "name": "lane-v3", "namespace": "default"},
         "reason": "HaltAdvancement", "message": "mockc failed", "type": "Warning",
         "lastTimestamp": "2026-01-01T00:00:02Z"},
        {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "Started", "message": "",
         "lastTimestamp": "2026-01-01T00:00:01Z"},
    ]
    view = snapshot([group], lanes, [], [release], events, ["rollouts: 403 Forbidden"])
    assert [g["name"] for g in view["groups"]] == ["rollout"]
    card = view["releases"][0]
    assert (card["kind"], card["weight"], card["weights"], card["step"]) == ("lanerelease", 10, [10, 50], 1)
    assert list(card["services"][0]["metrics"][0]) == ["request-success-rate", "0", ">= 99", False]
    assert [e["reason"] for e in view["events"]] == ["HaltAdvancement"]
    assert view["problems"] == ["rollouts: 403 Forbidden"]
    json.dumps(view)


@pytest.mark.parametrize("source", ["envoy", "istio"])
def test_metric_lines_are_the_analysis_built_in_queries(source: str) -> None:
    queries = metric_queries("default/mockc", "canary", source)
    variables = {"namespace": "default", "service": "mockc", "lane": "canary",
                 "target": "mockc-.*", "interval": "30s"}
    assert queries["request-success-rate"] == render_query(
        builtin_query(source, "request-success-rate"), variables)
    assert queries["request-duration"] == render_query(
        builtin_query(source, "request-duration"), variables)
    assert queries["request-rate"].startswith("sum(rate(")
    assert queries["request-rate"] in queries["request-success-rate"]


def test_prometheus_down_is_told_in_words() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        answer = lane_series("http://prometheus:9090", "default/mockc", "canary", "envoy",
                             client=client)
    assert answer["series"] == {}
    assert "Prometheus at http://prometheus:9090 cannot be reached" in answer["error"]


def test_prometheus_series_become_points_and_nan_no_value() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        values = [[1000, "99.5"], [1002, "NaN"]]
        return httpx.Response(200, json={"status": "success", "data": {
            "resultType": "matrix", "result": [{"metric": {}, "values": values}]}})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        got = lane_series("http://p", "default/mockc", "canary", "envoy", client=client, now=1002)
    assert got["error"] is None
    assert got["series"]["request-success-rate"] == [(1000.0, 99.5), (1002.0, None)]


def test_the_built_page_ships_with_the_package() -> None:
    index = (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', index)
    assert any(a.endswith(".js") for a in assets), index
    for asset in assets:
        assert (STATIC / asset).is_file(), asset


class FakeCluster:
    """What the server asks of a cluster view; the action refuses as RBAC would."""

    def __init__(self) -> None:
        self.version = 1
        self.stopped = False

    def snapshot(self) -> dict[str, Any]:
        return {"version": self.version, "groups": [], "releases": [], "rollouts": [],
                "events": [], "problems": []}

    def wait_change(self, seen: int, timeout: float) -> int:
        return self.version

    def act(self, intent: str, kind: str, namespace: str, name: str) -> str:
        raise Refused('403 Forbidden: lanereleases.lanes.dev "lane-v3" is forbidden: User '
                      '"viewer" cannot patch resource "lanereleases"')

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def server():
    running = serve(FakeCluster(), "127.0.0.1", 0, None, "envoy")  # type: ignore[arg-type]
    try:
        yield running
    finally:
        running.close()


def test_the_server_serves_the_page_state_and_a_stream(server) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        page = http.get("/")
        assert page.status_code == 200 and "lanes dashboard" in page.text
        assert http.get("/api/state").json()["version"] == 1
        with http.stream("GET", "/api/stream") as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            lines = stream.iter_lines()
            assert next(lines) == "event: state"
            assert json.loads(next(lines).removeprefix("data: "))["version"] == 1
        assert http.get("/../../etc/passwd").status_code == 404


def test_without_prometheus_the_metrics_say_so(server) -> None:
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        got = http.get("/api/metrics", params={"row": ["default/mockc,canary", "default/mockc,base"]})
        assert http.get("/api/metrics", params={"row": "mockc"}).status_code == 400
    rows = got.json()["rows"]
    assert set(rows) == {"default/mockc,canary", "default/mockc,base"}
    assert "--prometheus-url" in rows["default/mockc,canary"]["error"]


def test_a_refused_action_shows_the_api_servers_words(server) -> None:
    body = {"intent": "approve", "kind": "lanerelease", "namespace": "default", "name": "lane-v3"}
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        refused = http.post("/api/actions", json=body, headers={"X-Lanes-Dashboard": "1"})
        assert refused.status_code == 409
        assert 'User "viewer" cannot patch resource "lanereleases"' in refused.json()["error"]
        cross_site = http.post("/api/actions", json=body)
        assert cross_site.status_code == 403


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def test_the_verb_is_listed_and_says_why_it_cannot_start(server, tmp_path: Path) -> None:
    runner = CliRunner()
    assert "dashboard" in runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    bad = runner.invoke(app, ["dashboard", "--kubeconfig", str(SAMPLE)])
    assert bad.exit_code == 1
    assert "error: cannot use the kubeconfig" in bad.output
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(KUBECONFIG)
    port = server.server_address[1]
    taken = runner.invoke(app, ["dashboard", "--port", str(port), "--kubeconfig", str(kubeconfig)])
    assert taken.exit_code == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in taken.output
