"""The built-in analysis queries: every source and metric renders, to the selectors intended."""

from __future__ import annotations

import re

import pytest

from lanes.analysis.queries import (
    BUILTIN_METRICS,
    SOURCES,
    VARIABLES,
    QueryError,
    builtin_query,
    render_query,
    template_variables,
)

VARS = {"namespace": "shop", "target": "mockb-canary", "service": "mockb", "lane": "canary",
        "interval": "1m"}
# A selector `name{matchers}` or `{matchers}`, and its `label op "value"` matchers.
_SELECTOR = re.compile(r'([A-Za-z_:][\w:]*)?\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}')
_MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def selectors(promql: str) -> list[tuple[str, set[tuple[str, str, str]]]]:
    """Each series selector of `promql`: its metric name and its label matchers."""
    found = []
    for name, body in _SELECTOR.findall(promql):
        matchers = set()
        for label, op, value in _MATCHER.findall(body):
            matchers.add((label, op, value.encode().decode("unicode_escape")))
        assert _MATCHER.sub("", body).strip() == "", f"unparsed matchers in {{{body}}}"
        found.append((name, matchers))
    return found


def rendered(source: str, metric: str, **overrides: str) -> str:
    return render_query(builtin_query(source, metric), {**VARS, **overrides})


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("metric", BUILTIN_METRICS)
def test_every_builtin_renders_completely_from_the_known_variables(source: str, metric: str) -> None:
    template = builtin_query(source, metric)
    assert set(template_variables(template)) <= set(VARIABLES)
    promql = render_query(template, VARS)
    assert "{{" not in promql and "}}" not in promql
    assert promql.count("(") == promql.count(")")
    assert "[1m]" in promql


def test_istio_success_rate_is_flaggers_non_5xx_share_of_the_destination_workload() -> None:
    promql = rendered("istio", "request-success-rate")
    workload = {("reporter", "=", "destination"), ("destination_workload_namespace", "=", "shop"),
                ("destination_workload", "=~", "mockb-canary")}
    assert selectors(promql) == [
        ("istio_requests_total", workload | {("response_code", "!~", "5.*")}),
        ("istio_requests_total", workload),
    ]
    numerator, denominator = promql.split("\n/\n")
    assert numerator.startswith("sum(rate(") and denominator.endswith("* 100")


def test_istio_duration_is_the_p99_of_the_destination_workloads_histogram() -> None:
    promql = rendered("istio", "request-duration")
    assert promql.startswith("histogram_quantile(0.99,")
    assert "sum by (le) (rate(" in promql
    assert selectors(promql) == [("istio_request_duration_milliseconds_bucket", {
        ("reporter", "=", "destination"), ("destination_workload_namespace", "=", "shop"),
        ("destination_workload", "=~", "mockb-canary")})]


def _cluster_regex(promql: str) -> re.Pattern[str]:
    (matcher,) = [m for _, ms in selectors(promql) for m in ms if m[0] == "cluster_name"][:1]
    assert matcher[1] == "=~"
    return re.compile(matcher[2])


@pytest.mark.parametrize("metric", BUILTIN_METRICS)
def test_envoy_queries_select_the_lanes_subset_of_the_service_on_any_port(metric: str) -> None:
    # Istio's cluster_name tag keeps the whole cluster, namespace and all.
    cluster = _cluster_regex(rendered("envoy", metric))
    host = "mockb.shop.svc.cluster.local"
    for name in (f"outbound|8000|canary|{host}", f"outbound|9080|canary|{host}"):
        assert cluster.fullmatch(name), name
    for name in (f"outbound|8000|base|{host}", "outbound|8000|canary|mockb-v2.shop.svc.cluster.local",
                 f"outbound|8000||{host}", f"outbound|http|canary|{host}",
                 f"inbound|8000|canary|{host}", "outbound|8000|canary|mockb.shop-2.svc.cluster.local",
                 "outbound|8000|canary|mockb", "outbound|8000|canary|mockbXshop.svc.cluster.local"):
        assert not cluster.fullmatch(name), name


def test_envoy_queries_match_a_namespace_with_a_dash() -> None:
    promql = render_query(builtin_query("envoy", "request-success-rate"),
                          {**VARS, "namespace": "team-a"})
    cluster = _cluster_regex(promql)
    assert cluster.fullmatch("outbound|8000|canary|mockb.team-a.svc.cluster.local")


def test_envoy_success_rate_divides_non_5xx_by_all_upstream_requests_of_the_subset() -> None:
    promql = rendered("envoy", "request-success-rate")
    (num_name, num), (den_name, den) = selectors(promql)
    assert num_name == den_name == "envoy_cluster_upstream_rq_xx"
    assert num - den == {("envoy_response_code_class", "!=", "5")}


def test_envoy_duration_is_the_p99_of_upstream_rq_time() -> None:
    promql = rendered("envoy", "request-duration")
    (name, _), = selectors(promql)
    assert name == "envoy_cluster_upstream_rq_time_bucket"
    assert promql.startswith("histogram_quantile(0.99,") and "sum by (le)" in promql


def test_variables_are_replaced_with_or_without_spaces_inside_the_braces() -> None:
    template = "{{namespace}}/{{ target }}/{{   lane}}/{{ namespace }}"
    assert render_query(template, {"namespace": "a", "target": "b", "lane": "c"}) == "a/b/c/a"
    assert template_variables(template) == ["namespace", "target", "lane"]


def test_an_unknown_variable_is_named_with_those_given() -> None:
    with pytest.raises(QueryError, match=r"unknown variable \{\{ region \}\}.*given: interval, namespace"):
        render_query('up{region="{{ region }}"}[{{ interval }}]', {"namespace": "a", "interval": "1m"})


def test_query_error_is_a_value_error() -> None:
    assert issubclass(QueryError, ValueError)


def test_unknown_source_or_metric_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(QueryError, match="unknown metric source 'linkerd'; known: istio, envoy"):
        builtin_query("linkerd", "request-success-rate")
    with pytest.raises(QueryError, match="unknown built-in metric 'error-rate'"):
        builtin_query("istio", "error-rate")


def test_a_template_without_variables_is_left_alone() -> None:
    assert render_query("sum(up)", {}) == "sum(up)"
