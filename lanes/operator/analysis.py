"""The readings of one analysis check: a rollout's analysis in, one `Reading` per metric out.

This is the edge between an analysis (`lanes.api.analysis`) and Prometheus: for each metric it
picks the query (a built-in of the metric source, or the MetricTemplate's), fills in the
canary's variables, picks the Prometheus to ask, asks, and turns every outcome into a
`Reading` that `lanes.analysis.verdict.judge` understands. Nothing here raises for a metric
that cannot be read: the reading says why, so one bad metric never hides the others.

Which Prometheus answers, first found wins: the MetricTemplate's `provider.address`, the
analysis's `prometheus.address`, the operator's `--prometheus-url`. Which source the built-ins
read: the analysis's `metricSource`, else the operator's `--metric-source`.

The only I/O is the injected `query` callable (by default `query_reading`, which also says why
a query has no value: no traffic or no data), so tests pass a fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lanes.analysis.queries import (
    QueryError,
    builtin_query,
    render_query,
    with_template_variables,
)
from lanes.analysis.verdict import Reading, metric_interval
from lanes.api.analysis import Analysis, Metric, MetricTemplate
from lanes.api.workloadrollout import WorkloadRollout
from lanes.rollout.canary import canary_name

from .providers import ProviderUnavailable, Query
from .providers.prometheus import query_reading

TemplateKey = tuple[str, str]
"""A MetricTemplate's (namespace, name)."""

NO_ADDRESS = (
    "no Prometheus address: set the analysis's prometheus.address, the MetricTemplate's "
    "spec.provider.address, or the operator's --prometheus-url (LANES_PROMETHEUS_URL)"
)


@dataclass(frozen=True)
class CheckContext:
    """The canary being checked, as the query variables name it.

    `target` is the canary Deployment's name, `service` the short name of the service it
    serves, `lane` its lane (which is also its DestinationRule subset).
    """

    namespace: str
    target: str
    service: str
    lane: str

    def variables(self, interval: str) -> dict[str, str]:
        """The template variables for a query covering `interval`."""
        return {
            "namespace": self.namespace,
            "target": self.target,
            "service": self.service,
            "lane": self.lane,
            "interval": interval,
        }


def read_metrics(
    analysis: Analysis,
    context: CheckContext,
    templates: Mapping[TemplateKey, MetricTemplate],
    query: Query = query_reading,
    default_address: str | None = None,
    default_source: str = "istio",
) -> dict[str, Reading]:
    """One reading per metric of `analysis`, keyed by metric name, in the analysis's order.

    `templates` holds the MetricTemplates the metrics may name, by (namespace, name);
    `default_address` and `default_source` are the operator's settings, used when neither the
    template nor the analysis says otherwise.
    """
    source = analysis.metric_source or default_source
    return {
        metric.name: read_metric(
            analysis, metric, context, templates, query, default_address, source
        )
        for metric in analysis.metrics
    }


def read_metric(
    analysis: Analysis,
    metric: Metric,
    context: CheckContext,
    templates: Mapping[TemplateKey, MetricTemplate],
    query: Query,
    default_address: str | None,
    source: str,
) -> Reading:
    """The reading of one metric: its value, or why it has none (`error` / `unavailable`)."""
    template: MetricTemplate | None = None
    if metric.template_ref is not None:
        key = template_key(metric, context.namespace)
        template = templates.get(key)
        if template is None:
            return Reading(metric.name, error=f"MetricTemplate {key[0]}/{key[1]} not found")
    address = prometheus_address(analysis, template, default_address)
    if address is None:
        return Reading(metric.name, error=NO_ADDRESS)
    try:
        text = template.spec.query if template is not None else builtin_query(source, metric.name)
        variables = with_template_variables(context.variables(metric_interval(analysis, metric)),
                                            metric.template_variables)
        promql = render_query(text, variables)
    except QueryError as error:
        return Reading(metric.name, error=str(error))
    try:
        return Reading.of(metric.name, query(address, promql))
    except ProviderUnavailable as error:
        return Reading(metric.name, unavailable=str(error))
    except QueryError as error:
        return Reading(metric.name, error=str(error))


def template_key(metric: Metric, namespace: str) -> TemplateKey:
    """The (namespace, name) of the MetricTemplate `metric` names; the rollout's namespace by default.

    Raises:
        ValueError: `metric` names no template (it is a built-in).
    """
    ref = metric.template_ref
    if ref is None:
        raise ValueError(f"metric {metric.name!r} names no MetricTemplate")
    return (ref.namespace or namespace, ref.name)


def template_keys(analysis: Analysis, namespace: str) -> list[TemplateKey]:
    """The MetricTemplates `analysis` names, each once, so a caller fetches just those."""
    keys = [template_key(m, namespace) for m in analysis.metrics if m.template_ref is not None]
    return list(dict.fromkeys(keys))


def prometheus_address(
    analysis: Analysis, template: MetricTemplate | None, default_address: str | None
) -> str | None:
    """The Prometheus to ask: the template's provider, the analysis's, else the operator's."""
    if template is not None and template.spec.provider.address:
        return template.spec.provider.address
    if analysis.prometheus is not None:
        return analysis.prometheus.address
    return default_address or None


def _within(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_context(
    rollout: WorkloadRollout,
    base: Mapping[str, Any] | None,
    services: Sequence[Mapping[str, Any]],
    lanes: Sequence[Mapping[str, Any]],
) -> CheckContext:
    """The canary of `rollout` as the query variables name it.

    The service is the first (by name) whose selector selects the base's pods, the lane the
    first SwimLane (by name) whose selector selects the canary's pods (the base's labels plus
    `patchPodTemplateMetadata`'s). Where none is found the workload's name and the canary's
    lane label stand in, and the queries then find no values, which fails the check visibly.
    """
    namespace = rollout.metadata.namespace or "default"
    workload = rollout.spec.workload_ref.name
    template = (((base or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    pod_labels = dict(template.get("labels") or {})
    patch = rollout.spec.strategy.canary.patch_pod_template_metadata
    canary_labels = {**pod_labels, **(patch.labels if patch else {})}
    service = next(
        (svc["metadata"]["name"] for svc in sorted(services, key=lambda o: o["metadata"]["name"])
         if _within((svc.get("spec") or {}).get("selector"), pod_labels)),
        workload,
    )
    lane = next(
        (l["metadata"]["name"] for l in sorted(lanes, key=lambda o: o["metadata"]["name"])
         if _within((l.get("spec") or {}).get("labelSelector"), canary_labels)),
        next(iter(patch.labels.values()), "") if patch and patch.labels else "",
    )
    return CheckContext(namespace, canary_name(workload), service, lane)

