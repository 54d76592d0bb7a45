"""The Grafana dashboards the chart ships, built as data so both metric sources get the same ones.

Two dashboards, each for the `istio` and the `envoy` source (`lanes.analysis.queries`): *lane
overview* (per lane and service: request rate, success rate, p99; every lane release's entry
weight over time) and *release detail* (one rollout or lane release: canary against base
latency and success rate, weight, step, checks, each metric's last value, and its phase
changes, steps and endings as annotations). The two sources differ only in how a query picks a
lane's requests, so each source is one `Source` of query fragments, and the panels are written
once.

Istio's standard metrics name the destination workload, not the subset: a lane's pods are their
own Deployment (a rollout's canary is `<deployment>-canary`), so the istio dashboards break
requests down by workload. Envoy's cluster stats name the subset itself, `outbound|PORT|LANE|HOST`
in `cluster_name`, seen from the caller's side.

`python -m lanes.operator.dashboards DIR` writes them as JSON into DIR (the chart's
`dashboards/`); a unit test keeps the checked-in files equal to what this builds.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
RELEASE = 'namespace="$namespace", name="$release"'


@dataclass(frozen=True)
class Source:
    """How one metric source picks and breaks down requests, as PromQL fragments.

    `requests` is the request counter, `failed` the matcher narrowing it to 5xx answers,
    `buckets` the latency histogram (milliseconds); `by` the labels a breakdown keeps, shown by
    `legend`; the matchers pick a service's requests in the overview, and a release's canary
    and base ones. `namespace_values`/`service_values` (with a regex, for envoy) fill the
    dashboards' variables.
    """

    name: str
    title: str
    requests: str
    failed: str
    buckets: str
    by: str
    legend: str
    namespace_values: str
    namespace_regex: str
    service_values: str
    service_regex: str
    overview_matcher: str
    canary_matcher: str
    base_matcher: str

    def relabel(self, expr: str) -> str:
        """`expr` with the lane and service as labels of their own (envoy: from `cluster_name`)."""
        if self.name != "envoy":
            return expr
        lane = f'label_replace({expr}, "lane", "$1", "cluster_name", "outbound\\\\|[0-9]+\\\\|([^|]*)\\\\|.*")'
        return (f'label_replace({lane}, "service", "$1", "cluster_name", '
                '"outbound\\\\|[0-9]+\\\\|[^|]*\\\\|([^.]+)\\\\..*")')

    def _sum(self, metric: str, matcher: str, by: str = "") -> str:
        return f"sum by ({self.by}{by}) (rate({metric}{{{matcher}}}[{RATE}]))"

    def rate(self, matcher: str) -> str:
        """Requests per second."""
        return self.relabel(self._sum(self.requests, matcher))

    def success(self, matcher: str) -> str:
        """Percent of requests not answered 5xx (100 while none failed)."""
        total = self._sum(self.requests, matcher)
        failed = self._sum(self.requests, f"{matcher}, {self.failed}")
        return self.relabel(f"100 * (1 - ({failed} or {total} * 0) / {total})")

    def p99(self, matcher: str) -> str:
        """The 99th percentile of request duration, in milliseconds."""
        return self.relabel(f"histogram_quantile(0.99, {self._sum(self.buckets, matcher, ', le')})")


def _envoy_cluster(lane: str) -> str:
    """A `cluster_name` matcher: the subsets `lane` of the chosen services, on any port."""
    return (f'cluster_name=~"outbound\\\\|[0-9]+\\\\|{lane}\\\\|($service)\\\\.($namespace)'
            '\\\\.svc\\\\.cluster\\\\.local"')


_ISTIO = 'reporter="destination", destination_workload_namespace="$namespace", destination_service_name=~"$service"'

SOURCES: dict[str, Source] = {
    "istio": Source(
        name="istio",
        title="Istio",
        requests="istio_requests_total",
        failed='response_code=~"5.*"',
        buckets="istio_request_duration_milliseconds_bucket",
        by="destination_service_name, destination_workload",
        legend="{{destination_service_name}} / {{destination_workload}}",
        namespace_values='label_values(istio_requests_total{reporter="destination"}, destination_workload_namespace)',
        namespace_regex="",
        service_values='label_values(istio_requests_total{reporter="destination", '
                       'destination_workload_namespace="$namespace"}, destination_service_name)',
        service_regex="",
        overview_matcher=_ISTIO,
        canary_matcher=f'{_ISTIO}, destination_workload=~".+-canary"',
        base_matcher=f'{_ISTIO}, destination_workload!~".+-canary"',
    ),
    "envoy": Source(
        name="envoy",
        title="Envoy",
        requests="envoy_cluster_upstream_rq_xx",
        failed='envoy_response_code_class="5"',
        buckets="envoy_cluster_upstream_rq_time_bucket",
        by="cluster_name",
        legend="{{service}} / {{lane}}",
        namespace_values="label_values(envoy_cluster_upstream_rq_xx, cluster_name)",
        namespace_regex="/^outbound\\|[0-9]+\\|[^|]*\\|[^.]+\\.([^.]+)\\.svc/",
        service_values="label_values(envoy_cluster_upstream_rq_xx, cluster_name)",
        service_regex="/^outbound\\|[0-9]+\\|[^|]*\\|([^.]+)\\.$namespace\\.svc/",
        overview_matcher=_envoy_cluster("[^|]*"),
        canary_matcher=_envoy_cluster("$lane"),
        base_matcher=_envoy_cluster("$base"),
    ),
}


def _one(expr: str, labels: str = "") -> str:
    """`expr` once per release: every operator replica watches and exports the same series, so
    they are merged by the release's labels (and `labels`), not by the replica's."""
    return f"max by (kind, namespace, name{', ' + labels if labels else ''}) ({expr})"


def _release_series(metric: str, labels: str = "") -> str:
    """The chosen release's series of `metric`, once."""
    return _one(f"{metric}{{{RELEASE}}}", labels)


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "refId": ref, "expr": expr, "legendFormat": legend, "range": True}


def _panel(title: str, targets: Sequence[dict[str, Any]], grid: tuple[int, int, int, int], unit: str = "short",
           kind: str = "timeseries", description: str = "", **extra: Any) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]}},
        "targets": list(targets), **extra,
    }


def _query_variable(name: str, label: str, query: str, regex: str = "", multi: bool = False) -> dict[str, Any]:
    return {
        "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"}, "definition": query, "regex": regex,
        "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi,
        **({"allValue": ".*", "current": {"text": "All", "value": "$__all"}} if multi else {}),
    }


def _datasource_variable() -> dict[str, Any]:
    return {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus",
            "current": {}, "hide": 0}


def _dashboard(uid: str, title: str, description: str, variables: list[dict[str, Any]],
               panels: list[dict[str, Any]], annotations: list[dict[str, Any]] = ()) -> dict[str, Any]:
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return {
        "uid": uid, "title": title, "description": description, "tags": ["lanes"],
        "editable": True, "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"}, "timezone": "browser", "graphTooltip": 1,
        "templating": {"list": [_datasource_variable(), *variables]},
        "annotations": {"list": [
            {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
             "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
            *annotations,
        ]},
        "panels": panels,
    }


def lane_overview(source: Source) -> dict[str, Any]:
    """Per lane and service: request rate, success rate and p99; entry weights over time."""
    matcher = source.overview_matcher
    lanereleases = 'kind="LaneRelease", namespace="$namespace"'
    weight = (f"{_one(f'lanes_release_weight{{{lanereleases}}}')} * on (kind, namespace, name) group_left (lane) "
              f"{_one(f'lanes_release_info{{{lanereleases}}}', 'lane')}")
    panels = [
        _panel("Entry weight per lane", [_target(weight, "{{lane}} ({{name}})")], (0, 0, 24, 7), "percent",
               description="Share of untagged requests each lane release lets into its lane."),
        _panel("Request rate", [_target(source.rate(matcher), source.legend)], (0, 7, 12, 9), "reqps"),
        _panel("Success rate", [_target(source.success(matcher), source.legend)], (12, 7, 12, 9), "percent",
               description="Percent of requests not answered 5xx."),
        _panel("p99 latency", [_target(source.p99(matcher), source.legend)], (0, 16, 12, 9), "ms"),
        _panel("Lanes with pods", [_target("max by (group) (lanes_lanes_with_pods)", "{{group}}")], (12, 16, 12, 9),
               description="Lanes of each SwimLaneGroup with ready pods of any service."),
    ]
    variables = [
        _query_variable("namespace", "Namespace", source.namespace_values, source.namespace_regex),
        _query_variable("service", "Service", source.service_values, source.service_regex, multi=True),
    ]
    return _dashboard(
        f"lanes-overview-{source.name}", f"Lanes / Lane overview ({source.title})",
        f"Every lane of every service: rate, success rate and p99 from {source.title}'s metrics, "
        "and each lane release's entry weight.", variables, panels,
    )


def release_detail(source: Source) -> dict[str, Any]:
    """One rollout or lane release: canary against base, weight, step, checks, metric values."""
    canary, base = source.canary_matcher, source.base_matcher
    info = _one(f"lanes_release_info{{{RELEASE}}}", "phase, lane")
    this = _release_series
    panels = [
        _panel("Phase", [_target(info, "{{phase}}")], (0, 0, 6, 4), kind="stat",
               description="The release's phase (lanes_release_info).",
               options={"textMode": "name", "colorMode": "none", "graphMode": "none",
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}),
        _panel("Step", [_target(this("lanes_release_step"), "step"),
                        _target(this("lanes_release_steps"), "of", "B")], (6, 0, 6, 4), kind="stat",
               options={"textMode": "value_and_name", "colorMode": "none", "graphMode": "none",
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}),
        _panel("Checks", [_target(this("lanes_release_checks"), "checks"),
                          _target(this("lanes_release_failed_checks"), "failed", "B")], (12, 0, 12, 4),
               kind="stat", options={"textMode": "value_and_name", "colorMode": "value", "graphMode": "area",
                                     "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}),
        _panel("Weight", [_target(this("lanes_release_weight"), "{{kind}} {{name}}")], (0, 4, 12, 8),
               "percent", description="Canary traffic (WorkloadRollout) or entry weight (LaneRelease)."),
        _panel("Failed checks", [_target(this("lanes_release_failed_checks"), "failed"),
                                 _target(this("lanes_release_checks"), "checks", "B")], (12, 4, 12, 8)),
        _panel("Success rate: canary vs base", [
            _target(source.success(canary), f"canary {source.legend}"),
            _target(source.success(base), f"base {source.legend}", "B"),
        ], (0, 12, 12, 9), "percent"),
        _panel("p99 latency: canary vs base", [
            _target(source.p99(canary), f"canary {source.legend}"),
            _target(source.p99(base), f"base {source.legend}", "B"),
        ], (12, 12, 12, 9), "ms"),
        _panel("Request rate: canary vs base", [
            _target(source.rate(canary), f"canary {source.legend}"),
            _target(source.rate(base), f"base {source.legend}", "B"),
        ], (0, 21, 12, 9), "reqps"),
        _panel("Analysis: last value per metric", [
            _target(this("lanes_release_metric_value", "service, metric"), "{{service}} {{metric}}"),
        ], (12, 21, 12, 9), description="Each metric's value at the last check, per service."),
        _panel("Analysis: in range", [
            _target(this("lanes_release_metric_in_range", "service, metric"), "{{service}} {{metric}}"),
        ], (0, 30, 24, 6), kind="state-timeline",
            description="1 while a metric's last value was in its range.",
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8}),
    ]
    variables = [
        _query_variable("namespace", "Namespace", "label_values(lanes_release_info, namespace)"),
        _query_variable("release", "Release", 'label_values(lanes_release_info{namespace="$namespace"}, name)'),
        _query_variable("service", "Service", source.service_values, source.service_regex, multi=True),
    ]
    if source.name == "envoy":
        variables += [
            _query_variable("lane", "Lane", 'label_values(lanes_release_info{namespace="$namespace", '
                                            'name="$release"}, lane)'),
            {"type": "textbox", "name": "base", "label": "Base lane", "query": "base",
             "current": {"text": "base", "value": "base"}},
        ]
    annotations = [
        _annotation("Phase", f"{info} unless {_one(f'lanes_release_info{{{RELEASE}}} offset 1m', 'phase, lane')}",
                    "phase {{phase}}", "blue"),
        _annotation("Step", f"{_one(f'changes(lanes_release_step{{{RELEASE}}}[1m])')} > 0", "step moved", "yellow"),
        _annotation("Ending", f"{_one(f'increase(lanes_release_outcomes_total{{{RELEASE}}}[1m])', 'outcome, reason')} > 0",
                    "{{outcome}}: {{reason}}", "red"),
    ]
    return _dashboard(
        f"lanes-release-{source.name}", f"Lanes / Release detail ({source.title})",
        "One WorkloadRollout or LaneRelease: its phase, step, weight and checks from the operator's "
        f"metrics, and canary against base from {source.title}'s.", variables, panels, annotations,
    )


def _annotation(name: str, expr: str, title: str, color: str) -> dict[str, Any]:
    return {"name": name, "datasource": DATASOURCE, "enable": True, "expr": expr, "iconColor": color,
            "step": "30s", "titleFormat": title, "textFormat": "{{kind}} {{namespace}}/{{name}}",
            "useValueForTime": False}


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard the chart ships, by file name."""
    found = {}
    for source in SOURCES.values():
        found[f"lanes-overview-{source.name}.json"] = lane_overview(source)
        found[f"lanes-release-{source.name}.json"] = release_detail(source)
    return found


def expressions(model: dict[str, Any]) -> list[str]:
    """Every PromQL expression a dashboard sends: its panels', its annotations', and the series
    selector inside each `label_values(...)` variable query (Grafana's own function)."""
    found = [target["expr"] for panel in model["panels"] for target in panel["targets"]]
    found += [a["expr"] for a in model["annotations"]["list"] if "expr" in a]
    for variable in model["templating"]["list"]:
        query = (variable.get("query") or {}) if variable["type"] == "query" else {}
        match = re.fullmatch(r"label_values\((.+), *[a-zA-Z_]+\)", query.get("query", ""))
        if match:
            found.append(match.group(1))
    return found


def dashboard_text(model: dict[str, Any]) -> str:
    """One dashboard as the chart holds it: indented, keys in a fixed order."""
    return json.dumps(model, indent=2) + "\n"


def main(argv: Sequence[str]) -> None:
    """Write every dashboard into the folder named."""
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    for name, model in dashboards().items():
        (folder / name).write_text(dashboard_text(model))


if __name__ == "__main__":
    main(sys.argv[1:])
