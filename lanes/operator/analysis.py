"""The readings of one analysis check: a rollout's analysis in, one `Reading` per metric out.

This is the edge between an analysis (`lanes.api.analysis`) and Prometheus: for each metric it
picks the query (a built-in of the metric source, or the MetricTemplate's), fills in the
canary's variables, picks the Prometheus to ask, asks, and turns every outcome into a
`Reading` that `lanes.analysis.verdict.judge` understands. Nothing here raises for a metric
that cannot be read: the reading says why, so one bad metric never hides the others.

Which Prometheus answers, first found wins: the MetricTemplate's `provider.address`, the
analysis's `prometheus.address`, the operator's `--prometheus-url`. The credentials sent with
the query are the MetricTemplate's `provider.secretRef`, else (unless the template names its own
address) the analysis's `prometheus.secretRef`: a Secret's `token` as a bearer token, or its
`username` and `password` as basic auth, the keys of Flagger's `secretRef`. The caller reads
the Secrets (`secret_keys`) through the API server and hands in their data. Which source the
built-ins read: the analysis's `metricSource`, else the operator's `--metric-source`.

The only I/O is the injected `query` callable (by default `query_reading`, which also says why
a query has no value: no traffic or no data), so tests pass a fake.
"""

from __future__ import annotations

import base64
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
SecretKey = tuple[str, str]
"""A Secret's (namespace, name)."""
SecretData = Mapping[str, bytes]
"""A Secret's data, decoded."""
Secrets = Mapping[SecretKey, "SecretData | str"]
"""The Secrets read for an analysis: each one's data, or why it could not be read."""

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
    secrets: Secrets | None = None,
) -> dict[str, Reading]:
    """One reading per metric of `analysis`, keyed by metric name, in the analysis's order.

    `templates` holds the MetricTemplates the metrics may name, by (namespace, name);
    `default_address` and `default_source` are the operator's settings, used when neither the
    template nor the analysis says otherwise; `secrets` the data of the Secrets that exist of
    those `secret_keys` names.
    """
    source = analysis.metric_source or default_source
    return {
        metric.name: read_metric(
            analysis, metric, context, templates, query, default_address, source, secrets or {}
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
    secrets: Secrets | None = None,
) -> Reading:
    """The reading of one metric: its value, or why it has none (`error` / `unavailable`)."""
    template: MetricTemplate | None = None
    key = None
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
        credentials = credentials_of(analysis, template, key, context.namespace)
        headers = auth_headers(credentials, secrets or {}) if credentials is not None else None
    except QueryError as error:
        return Reading(metric.name, error=str(error))
    try:
        if headers is None:
            return Reading.of(metric.name, query(address, promql))
        return Reading.of(metric.name, query(address, promql, headers=headers))
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


@dataclass(frozen=True)
class Credentials:
    """Where a query's credentials are: the Secret, and the field naming it (for messages)."""

    secret: SecretKey
    field: str


def credentials_of(
    analysis: Analysis, template: MetricTemplate | None, key: TemplateKey | None, namespace: str,
) -> Credentials | None:
    """The credentials a metric's query is sent with: its template's `provider.secretRef`, else
    the analysis's `prometheus.secretRef` unless the template names another Prometheus."""
    if template is not None and key is not None and template.spec.provider.secret_ref is not None:
        return Credentials((key[0], template.spec.provider.secret_ref.name),
                           f"MetricTemplate {key[0]}/{key[1]} spec.provider.secretRef")
    own_address = template is not None and template.spec.provider.address
    if analysis.prometheus is not None and analysis.prometheus.secret_ref is not None and not own_address:
        return Credentials((namespace, analysis.prometheus.secret_ref.name),
                           "analysis.prometheus.secretRef")
    return None


def auth_headers(credentials: Credentials, secrets: Secrets) -> dict[str, str]:
    """The Authorization header the Secret gives: a bearer `token`, or basic auth.

    Raises:
        QueryError: naming the field, when the Secret or its keys are missing.
    """
    namespace, name = credentials.secret
    data = secrets.get(credentials.secret)
    if data is None:
        raise QueryError(f"{credentials.field}: Secret {namespace}/{name} not found")
    if isinstance(data, str):
        raise QueryError(f"{credentials.field}: {data}")
    token = data.get("token")
    if token:
        return {"Authorization": f"Bearer {token.decode().strip()}"}
    if data.get("username") is not None and data.get("password") is not None:
        pair = base64.b64encode(data["username"] + b":" + data["password"]).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    raise QueryError(f"{credentials.field}: Secret {namespace}/{name} has no key token, nor "
                     "username and password")


def secret_keys(
    analysis: Analysis, templates: Mapping[TemplateKey, MetricTemplate], namespace: str,
) -> list[SecretKey]:
    """The Secrets an analysis's queries need, each once, so a caller reads just those."""
    keys = []
    for metric in analysis.metrics:
        key = template_key(metric, namespace) if metric.template_ref is not None else None
        template = templates.get(key) if key is not None else None
        credentials = credentials_of(analysis, template, key, namespace)
        if credentials is not None:
            keys.append(credentials.secret)
    return list(dict.fromkeys(keys))


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

