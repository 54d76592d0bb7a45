"""The readings edge: which query and which Prometheus each metric gets, and every failure's reading.

A fake `query` records what it is asked and answers from a table, so each test sees the exact
address and PromQL the operator would send.
"""

from __future__ import annotations

import pytest

from lanes.analysis.queries import builtin_query, render_query
from lanes.analysis.verdict import Reading
from lanes.api.analysis import Analysis, MetricTemplate
from lanes.operator.analysis import (
    NO_ADDRESS,
    CheckContext,
    prometheus_address,
    read_metrics,
    template_keys,
)
from lanes.operator.providers.prometheus import PrometheusUnavailable, QueryError

CONTEXT = CheckContext(namespace="shop", target="mockb-canary", service="mockb", lane="canary")
OPERATOR_URL = "http://operator-default:9090"


def analysis(**overrides) -> Analysis:
    spec = {"interval": "30s", "metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
    ]}
    spec.update(overrides)
    return Analysis.model_validate(spec)


def template(name: str, query: str, namespace: str = "shop", address: str | None = None) -> MetricTemplate:
    provider = {"type": "prometheus", **({"address": address} if address else {})}
    return MetricTemplate.model_validate({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"provider": provider, "query": query},
    })


class FakePrometheus:
    """Answers `value` (or raises it, if an exception) and records every (address, promql)."""

    def __init__(self, value: float | None | Exception = 99.5) -> None:
        self.value = value
        self.asked: list[tuple[str, str]] = []

    def __call__(self, address: str, promql: str) -> float | None:
        self.asked.append((address, promql))
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


def variables(interval: str) -> dict[str, str]:
    return CONTEXT.variables(interval)


def test_a_builtin_is_the_source_query_over_the_analysis_interval_at_the_default_address() -> None:
    fake = FakePrometheus(99.5)
    readings = read_metrics(analysis(), CONTEXT, {}, fake, default_address=OPERATOR_URL)
    assert readings == {"request-success-rate": Reading("request-success-rate", 99.5)}
    expected = render_query(builtin_query("istio", "request-success-rate"), variables("30s"))
    assert fake.asked == [(OPERATOR_URL, expected)]


def test_the_metric_interval_overrides_the_analysis_interval() -> None:
    fake = FakePrometheus()
    a = analysis(metrics=[{"name": "request-duration", "interval": "2m",
                           "thresholdRange": {"max": 500}}])
    read_metrics(a, CONTEXT, {}, fake, default_address=OPERATOR_URL)
    assert fake.asked[0][1] == render_query(builtin_query("istio", "request-duration"), variables("2m"))
    assert "[2m]" in fake.asked[0][1]


@pytest.mark.parametrize(("analysis_source", "default_source", "used"), [
    (None, "istio", "istio"), (None, "envoy", "envoy"), ("istio", "envoy", "istio"),
    ("envoy", "istio", "envoy"),
])
def test_the_analysis_source_wins_over_the_operator_default(
    analysis_source: str | None, default_source: str, used: str
) -> None:
    fake = FakePrometheus()
    a = analysis(**({"metricSource": analysis_source} if analysis_source else {}))
    read_metrics(a, CONTEXT, {}, fake, default_address=OPERATOR_URL, default_source=default_source)
    assert fake.asked[0][1] == render_query(builtin_query(used, "request-success-rate"), variables("30s"))


def test_a_templated_metric_renders_every_variable_of_its_template() -> None:
    fake = FakePrometheus(0.5)
    query = ('sum(rate(errors{ns="{{ namespace }}", pod=~"{{ target }}-.*", svc="{{service}}",'
             ' lane="{{ lane }}"}[{{ interval }}]))')
    a = analysis(metrics=[{"name": "error-rate", "templateRef": {"name": "error-rate"},
                           "thresholdRange": {"max": 1}}])
    readings = read_metrics(a, CONTEXT, {("shop", "error-rate"): template("error-rate", query)},
                            fake, default_address=OPERATOR_URL)
    assert readings["error-rate"] == Reading("error-rate", 0.5)
    assert fake.asked == [(OPERATOR_URL, 'sum(rate(errors{ns="shop", pod=~"mockb-canary-.*", '
                                         'svc="mockb", lane="canary"}[30s]))')]


def test_a_template_in_another_namespace_is_found_by_its_ref_namespace() -> None:
    fake = FakePrometheus(1.0)
    a = analysis(metrics=[{"name": "shared", "templateRef": {"name": "latency", "namespace": "common"},
                           "thresholdRange": {"max": 1}}])
    found = {("common", "latency"): template("latency", "vector(1)", namespace="common")}
    assert read_metrics(a, CONTEXT, found, fake, default_address=OPERATOR_URL)["shared"].value == 1.0
    assert template_keys(a, "shop") == [("common", "latency")]


def test_a_missing_template_is_an_error_naming_it_and_nothing_is_asked() -> None:
    fake = FakePrometheus()
    a = analysis(metrics=[{"name": "error-rate", "templateRef": {"name": "error-rate"},
                           "thresholdRange": {"max": 1}}])
    [reading] = read_metrics(a, CONTEXT, {}, fake, default_address=OPERATOR_URL).values()
    assert reading == Reading("error-rate", error="MetricTemplate shop/error-rate not found")
    assert fake.asked == []


def test_the_address_is_the_template_provider_then_the_analysis_then_the_operator() -> None:
    a = analysis(prometheus={"address": "http://from-analysis:9090"})
    own = template("t", "vector(1)", address="http://from-template:9090")
    plain = template("t", "vector(1)")
    assert prometheus_address(a, own, OPERATOR_URL) == "http://from-template:9090"
    assert prometheus_address(a, plain, OPERATOR_URL) == "http://from-analysis:9090"
    assert prometheus_address(a, None, OPERATOR_URL) == "http://from-analysis:9090"
    assert prometheus_address(analysis(), plain, OPERATOR_URL) == OPERATOR_URL
    assert prometheus_address(analysis(), None, None) is None


def test_each_metric_asks_its_own_prometheus() -> None:
    fake = FakePrometheus()
    a = analysis(prometheus={"address": "http://from-analysis:9090"}, metrics=[
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
        {"name": "custom", "templateRef": {"name": "t"}, "thresholdRange": {"max": 1}},
    ])
    found = {("shop", "t"): template("t", "vector(1)", address="http://from-template:9090")}
    read_metrics(a, CONTEXT, found, fake, default_address=OPERATOR_URL)
    assert [address for address, _ in fake.asked] == [
        "http://from-analysis:9090", "http://from-template:9090"]


def test_no_address_anywhere_is_an_error_saying_what_to_set() -> None:
    fake = FakePrometheus()
    [reading] = read_metrics(analysis(), CONTEXT, {}, fake).values()
    assert reading.error == NO_ADDRESS
    assert "prometheus.address" in NO_ADDRESS and "--prometheus-url" in NO_ADDRESS
    assert fake.asked == []


@pytest.mark.parametrize(("raised", "field"), [
    (PrometheusUnavailable("Prometheus at http://p:9090 cannot be reached: refused"), "unavailable"),
    (QueryError("Prometheus refused query 'x' (400): bad_data: parse error"), "error"),
])
def test_prometheus_failures_become_unavailable_or_error_readings(
    raised: Exception, field: str
) -> None:
    [reading] = read_metrics(analysis(), CONTEXT, {}, FakePrometheus(raised),
                             default_address=OPERATOR_URL).values()
    assert getattr(reading, field) == str(raised)
    assert reading.value is None
    assert (reading.error, reading.unavailable).count(None) == 1


def test_no_values_found_is_a_reading_without_value_or_error() -> None:
    [reading] = read_metrics(analysis(), CONTEXT, {}, FakePrometheus(None),
                             default_address=OPERATOR_URL).values()
    assert reading == Reading("request-success-rate")


def test_a_template_with_an_unknown_variable_is_an_error_and_is_not_sent() -> None:
    fake = FakePrometheus()
    a = analysis(metrics=[{"name": "m", "templateRef": {"name": "t"}, "thresholdRange": {"max": 1}}])
    found = {("shop", "t"): template("t", 'up{pod="{{ pod }}"}')}
    [reading] = read_metrics(a, CONTEXT, found, fake, default_address=OPERATOR_URL).values()
    assert reading.error is not None and "{{ pod }}" in reading.error
    assert fake.asked == []


def test_an_unknown_default_source_is_an_error_naming_it() -> None:
    [reading] = read_metrics(analysis(), CONTEXT, {}, FakePrometheus(),
                             default_address=OPERATOR_URL, default_source="linkerd").values()
    assert reading.error is not None and "'linkerd'" in reading.error


def test_one_failing_metric_does_not_hide_the_others() -> None:
    answers: dict[str, float | Exception] = {"vector(1)": 1.0, "vector(2)": QueryError("bad")}

    def query(address: str, promql: str) -> float | None:
        answer = answers[promql]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def make(name: str) -> dict:
        return {"name": name, "templateRef": {"name": name}, "thresholdRange": {"max": 5}}

    a = analysis(metrics=[make("one"), make("two"), make("three")])
    found = {("shop", "one"): template("one", "vector(1)"), ("shop", "two"): template("two", "vector(2)")}
    readings = read_metrics(a, CONTEXT, found, query, default_address=OPERATOR_URL)
    assert list(readings) == ["one", "two", "three"]
    assert readings["one"].value == 1.0
    assert readings["two"].error == "bad"
    assert readings["three"].error == "MetricTemplate shop/three not found"
