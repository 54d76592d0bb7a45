"""The built-in analysis metrics as PromQL templates, and the renderer of template variables.

Templates use Flagger's variable syntax, `{{ name }}` (spaces inside the braces optional), so
metric templates written for Flagger read the same here. The variables:

    namespace   the namespace of the canary workload and its service
    target      the canary workload (a Deployment name, matched as a regex as Flagger does)
    service     the service the canary serves
    lane        the canary's lane, which is also its DestinationRule subset
    interval    the range of each rate, e.g. `1m`

and `{{ variables.NAME }}` for each of the metric's `templateVariables`, as Flagger has them.

Two sources serve the built-ins:

- `istio`: Istio's standard metrics, queried as Flagger queries them (`istio_requests_total`,
  `istio_request_duration_milliseconds_bucket`, reported by the destination workload).
- `envoy`: Envoy's own per-cluster stats for the lane's subset of the service, as Envoy
  exposes them on `/stats/prometheus` with Istio's `cluster_name` tag rule: the label holds the
  whole cluster, `outbound|8000|canary|mockb.default.svc.cluster.local`, and the metric name
  none of it (`envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"}`). Envoy's default
  `envoy.cluster_name` tag would stop at the first dot of the host, so an Envoy scraped for this
  source needs that rule in its bootstrap's `stats_config`, as istio-proxy's bootstrap has it
  (the test bed's sidecars have it too).

The success rates' numerator falls back to 0 (`or on() vector(0)`) when no answer of the
window succeeded, so a canary failing every request reads 0 %, not "no values": the series of
its 5xx answers exist, those of the others do not. The fallback stops at the division: with no
requests in the window the denominator is 0 (0/0, NaN: no traffic) or has no series at all
(no value: no traffic yet, or no data), so those stay told apart from 0 %
(`lanes.operator.providers.prometheus.query_reading` tells them apart).

Pure: no I/O; `lanes.operator.providers.prometheus` sends the rendered queries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

BUILTIN_METRICS = ("request-success-rate", "request-duration")
SOURCES = ("istio", "envoy")
VARIABLES = ("namespace", "target", "service", "lane", "interval")

_VARIABLE = re.compile(r"\{\{\s*((?:variables\.)?[A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
VARIABLES_PREFIX = "variables."


class QueryError(ValueError):
    """A query template or query is not valid: an unknown variable, metric or source."""


_ISTIO_SELECTOR = (
    'reporter="destination",'
    ' destination_workload_namespace="{{ namespace }}",'
    ' destination_workload=~"{{ target }}"'
)

# The lane's subset of the service, on any port. Label values are matched whole.
_ENVOY_CLUSTER = (
    'cluster_name=~"outbound\\\\|[0-9]+\\\\|{{ lane }}\\\\|'
    '{{ service }}\\\\.{{ namespace }}\\\\.svc\\\\.cluster\\\\.local"'
)

_TEMPLATES: dict[tuple[str, str], str] = {
    ("istio", "request-success-rate"): (
        "sum(rate(istio_requests_total{" + _ISTIO_SELECTOR
        + ', response_code!~"5.*"}[{{ interval }}]) or on() vector(0))\n'
        "/\n"
        "sum(rate(istio_requests_total{" + _ISTIO_SELECTOR + "}[{{ interval }}]))\n"
        "* 100"
    ),
    ("istio", "request-duration"): (
        "histogram_quantile(0.99,\n"
        "  sum by (le) (rate(istio_request_duration_milliseconds_bucket{"
        + _ISTIO_SELECTOR + "}[{{ interval }}]))\n"
        ")"
    ),
    ("envoy", "request-success-rate"): (
        'sum(rate(envoy_cluster_upstream_rq_xx{' + _ENVOY_CLUSTER
        + ', envoy_response_code_class!="5"}[{{ interval }}]) or on() vector(0))\n'
        "/\n"
        'sum(rate(envoy_cluster_upstream_rq_xx{' + _ENVOY_CLUSTER
        + "}[{{ interval }}]))\n"
        "* 100"
    ),
    ("envoy", "request-duration"): (
        "histogram_quantile(0.99,\n"
        '  sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{' + _ENVOY_CLUSTER + "}[{{ interval }}]))\n"
        ")"
    ),
}


def builtin_query(source: str, metric: str) -> str:
    """The PromQL template of built-in `metric` over `source`, variables not yet rendered.

    `request-success-rate` is the percentage of requests not answered 5xx; `request-duration`
    the 99th percentile of request duration in milliseconds.

    Raises:
        QueryError: `source` or `metric` is not one of SOURCES / BUILTIN_METRICS.
    """
    if source not in SOURCES:
        raise QueryError(f"unknown metric source {source!r}; known: {', '.join(SOURCES)}")
    if metric not in BUILTIN_METRICS:
        raise QueryError(
            f"unknown built-in metric {metric!r}; known: {', '.join(BUILTIN_METRICS)}"
        )
    return _TEMPLATES[(source, metric)]


def template_variables(template: str) -> list[str]:
    """The variables `template` uses, each once, in order of first use."""
    return list(dict.fromkeys(_VARIABLE.findall(template)))


def with_template_variables(
    variables: Mapping[str, str], template_variables: Mapping[str, str]
) -> dict[str, str]:
    """The release's variables plus a metric's `templateVariables`, as `variables.NAME`."""
    return {**variables, **{f"{VARIABLES_PREFIX}{k}": v for k, v in template_variables.items()}}


def render_query(template: str, variables: Mapping[str, str]) -> str:
    """`template` with every `{{ name }}` replaced by `variables[name]`.

    Raises:
        QueryError: the template uses a variable `variables` does not give, named with the
            ones that are given.
    """
    missing = [name for name in template_variables(template) if name not in variables]
    if missing:
        given = ", ".join(sorted(variables)) or "none"
        raise QueryError(
            f"unknown variable{'s' if len(missing) > 1 else ''} "
            f"{', '.join('{{ ' + m + ' }}' for m in missing)} in query template; given: {given}"
        )
    return _VARIABLE.sub(lambda match: str(variables[match.group(1)]), template)
