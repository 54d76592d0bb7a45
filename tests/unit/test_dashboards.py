"""The chart's Grafana dashboards: the checked-in JSON is what `lanes.operator.dashboards` builds,
each is a valid dashboard model, and every metric a query names is one lanes or the mesh exports.
(That every query parses is checked against a real Prometheus: tests/integration/test_dashboards_promql.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from lanes.analysis.queries import BUILTIN_METRICS, SOURCES, builtin_query
from lanes.operator.dashboards import DATASOURCE, dashboard_text, dashboards, expressions
from lanes.operator.metrics import Metrics

FOLDER = Path(__file__).resolve().parents[2] / "charts" / "lanes" / "dashboards"
BUILT = dashboards()
CHECKED_IN = {path.name: json.loads(path.read_text()) for path in sorted(FOLDER.glob("*.json"))}

# PromQL words that are not metric names: operators, modifiers and the labels of a grouping.
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "offset", "bool", "le"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers outside strings, label matchers,
    ranges and grouping lists that do not call a function."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = re.findall(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text)
    return {word for word, call in words if not call and word not in _KEYWORDS}


def exported_metrics() -> set[str]:
    """What lanes and the mesh export: the series the built-in analysis queries read (the
    mesh's, per source) and every series the operator's `/metrics` can hold."""
    mesh = {name for metric in BUILTIN_METRICS for source in SOURCES
            for name in metric_names(builtin_query(source, metric))}
    metrics = Metrics(CollectorRegistry())
    metrics.read_releases(lambda: [])
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    operator = {family.name + suffix for family in metrics.registry.collect()
                for suffix in suffixes[family.type]}
    return mesh | operator


def test_the_checked_in_dashboards_are_the_built_ones() -> None:
    assert sorted(CHECKED_IN) == sorted(BUILT), "run: python -m lanes.operator.dashboards charts/lanes/dashboards"
    for name, model in BUILT.items():
        assert (FOLDER / name).read_text() == dashboard_text(model), \
            f"{name} differs; run: python -m lanes.operator.dashboards charts/lanes/dashboards"


def test_there_are_both_dashboards_for_both_sources() -> None:
    assert sorted(CHECKED_IN) == ["lanes-overview-envoy.json", "lanes-overview-istio.json",
                                  "lanes-release-envoy.json", "lanes-release-istio.json"]


@pytest.mark.parametrize("name", sorted(CHECKED_IN))
def test_a_valid_dashboard_model(name: str) -> None:
    model = CHECKED_IN[name]
    for key in ("uid", "title", "panels", "templating", "annotations", "schemaVersion", "time"):
        assert key in model, f"{name} has no {key}"
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)), f"{name}: panel ids repeat: {ids}"
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in model["panels"]:
        for key in ("type", "title", "gridPos", "targets", "datasource"):
            assert key in panel, f"{name}: panel {panel.get('title')} has no {key}"
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']} is off the grid"
        assert panel["datasource"] == DATASOURCE
        refs = [target["refId"] for target in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), f"{name}: {panel['title']} refIds"
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])
    used = {m for expr in expressions(model) for m in re.findall(r"\$(?!__)(\w+)", expr) if not m.isdigit()}
    assert used <= variables.keys(), f"{name} uses undefined variables {used - variables.keys()}"


def test_dashboard_uids_are_unique() -> None:
    uids = [model["uid"] for model in CHECKED_IN.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(CHECKED_IN))
def test_every_metric_a_query_names_is_exported(name: str) -> None:
    known = exported_metrics()
    for expr in expressions(CHECKED_IN[name]):
        names = metric_names(expr)
        assert names, f"{name}: no metric found in {expr}"
        assert names <= known, f"{name}: {sorted(names - known)} exported by neither lanes nor the mesh, in {expr}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        pytest.param('sum by (le) (rate(a_total{x="b{c}"}[1m]))', {"a_total"}, id="grouping-and-strings"),
        pytest.param("x * on (kind, name) group_left (lane) y", {"x", "y"}, id="vector-matching"),
        pytest.param('label_replace(m, "lane", "$1", "c", "o\\\\|(.*)")', {"m"}, id="label-replace"),
        pytest.param("m unless (m offset 1m)", {"m"}, id="offset"),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_sources_dashboards_read_the_same_series_as_the_analysis() -> None:
    istio = {n for e in expressions(BUILT["lanes-release-istio.json"]) for n in metric_names(e)}
    envoy = {n for e in expressions(BUILT["lanes-release-envoy.json"]) for n in metric_names(e)}
    assert {n for n in istio if not n.startswith("lanes_")} == \
        {n for m in BUILTIN_METRICS for n in metric_names(builtin_query("istio", m))}
    assert {n for n in envoy if not n.startswith("lanes_")} == \
        {n for m in BUILTIN_METRICS for n in metric_names(builtin_query("envoy", m))}
