"""Metric analysis of a release, laid out as Flagger's `analysis` so a Flagger user recognises it,
and the MetricTemplate kind (namespaced) holding a Prometheus query.

A WorkloadRollout's `strategy.canary.analysis` (and optionally a step's own) says how often to
check (`interval`), how many failed checks roll the release back (`threshold`), which metrics
must stay in which range, and which webhooks take part.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from .common import API_VERSION, DnsLabel, DnsName, Metadata, Model

METRIC_TEMPLATE = "MetricTemplate"
BUILTIN_METRICS = ("request-success-rate", "request-duration")
MetricSource = Literal["istio", "envoy"]
WebhookType = Literal[
    "pre-rollout", "rollout", "confirm-rollout", "confirm-traffic-increase", "confirm-promotion",
    "post-rollout", "rollback", "event",
]

_DURATION = re.compile(r"^(\d+(\.\d+)?(h|m|s|ms))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def seconds(text: str) -> float:
    """A Go-style duration as Flagger and Kubernetes write it ("30s", "1m", "1m30s", "500ms")."""
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))


def _duration(value: str) -> str:
    if not _DURATION.match(value) or seconds(value) <= 0:
        raise ValueError(f"{value!r} is not a duration like 30s, 1m or 1m30s")
    return value


Duration = Annotated[
    str,
    AfterValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern}),
]


class ThresholdRange(Model):
    """The range a metric's value must stay in; either bound may be left open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRange:
        if self.min is None and self.max is None:
            raise ValueError("a threshold range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is greater than max {self.max:g}")
        return self

    def holds(self, value: float) -> bool:
        """Whether `value` is within the range, bounds included."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        """The range as people write it: `>= 99`, `<= 500`, `90..110`."""
        if self.min is not None and self.max is not None:
            return f"{self.min:g}..{self.max:g}"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


class TemplateRef(Model):
    """A MetricTemplate by name; its namespace defaults to the rollout's."""

    name: DnsLabel
    namespace: DnsLabel | None = None


class Metric(Model):
    """One metric checked every interval: a built-in by name, or a MetricTemplate's query.

    `templateVariables` fill the template's `{{ variables.NAME }}` (Flagger's layout, and what
    Argo's template `args` become), so one template serves several releases. A `dryRun` metric
    is measured, judged and reported like the others, but never decides: its failures neither
    halt nor roll back the release (Argo's `dryRun`).
    """

    name: str = Field(min_length=1)
    interval: Duration | None = None
    threshold_range: ThresholdRange
    template_ref: TemplateRef | None = None
    template_variables: dict[str, str] = Field(default_factory=dict)
    dry_run: bool = False

    @model_validator(mode="after")
    def _known(self) -> Metric:
        if self.template_ref is None and self.name not in BUILTIN_METRICS:
            known = ", ".join(BUILTIN_METRICS)
            raise ValueError(
                f"metric {self.name!r} is not built in ({known}); give it a templateRef"
            )
        return self


class Webhook(Model):
    """A URL called with Flagger's payload at one point of the release."""

    name: str = Field(min_length=1)
    type: WebhookType = "rollout"
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
    timeout: Duration = "10s"
    metadata: dict[str, str] = Field(default_factory=dict)


class Analysis(Model):
    """When to check, how many failed checks roll back, the metrics and the webhooks."""

    interval: Duration = "1m"
    threshold: int = Field(default=5, ge=1)
    metrics: list[Metric] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    metric_source: MetricSource | None = None
    prometheus: PrometheusRef | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Analysis:
        for kind, names in (("metric", [m.name for m in self.metrics]),
                            ("webhook", [w.name for w in self.webhooks])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{kind} {twice[0]!r} is listed twice")
        return self

    @property
    def interval_seconds(self) -> float:
        return seconds(self.interval)


class SecretRef(Model):
    """A Secret holding Prometheus credentials, in the namespace of the object naming it.

    Its key `token` is sent as a bearer token; else `username` and `password` as basic auth
    (the keys of Flagger's MetricTemplate `secretRef`).
    """

    name: DnsName


class PrometheusRef(Model):
    """Where Prometheus answers queries (its base URL), and the credentials it asks for."""

    address: Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
    secret_ref: SecretRef | None = None


class MetricProvider(Model):
    """A MetricTemplate's source of values: Prometheus, at `address` or the operator's default,
    with the credentials of `secretRef`."""

    type: Literal["prometheus"] = "prometheus"
    address: Annotated[str, Field(pattern=r"^https?://[^\s/]+")] | None = None
    secret_ref: SecretRef | None = None


class MetricTemplateSpec(Model):
    """A query returning one number, with `{{ namespace }}`, `{{ target }}`, `{{ service }}`,
    `{{ lane }}` and `{{ interval }}` filled in for the release being checked."""

    provider: MetricProvider = Field(default_factory=MetricProvider)
    query: str = Field(min_length=1)


class MetricTemplate(Model):
    """A metric query users write once and name from any rollout's analysis (namespaced)."""

    api_version: Literal["lanes.dev/v1alpha1"] = API_VERSION
    kind: Literal["MetricTemplate"] = METRIC_TEMPLATE
    metadata: Metadata
    spec: MetricTemplateSpec


Analysis.model_rebuild()


class MetricStatus(Model):
    """A metric's last reading: its value (None: no value found) and whether it was in range;
    `dryRun` when it was judged but did not count."""

    name: str
    value: float | None = None
    range: str = ""
    ok: bool = False
    message: str = ""
    dry_run: bool = False


AnalysisPhase = Literal["Waiting", "Passed", "Halted", "Holding", "Failed"]


class AnalysisStatus(Model):
    """Where the analysis of the current release stands; stored so a restart resumes from it.

    `failedChecks` counts failed checks since the release started (as Flagger's do, a passing
    check does not reset them); `unavailableSince` is when Prometheus stopped answering, or
    (`noData`) answered with no samples in the window (a scrape gap, an outage);
    `noTrafficSince` is when the checks began to find no requests to the canary in the window;
    `step` is the canary step the last check was made at, so a pass counts for that step only.

    Webhooks beyond `rollout` leave their mark here too, so a restarted operator neither asks a
    gate again nor repeats a notification: `hooksDone` lists the hook types that have done their
    part for this release (a `confirm-rollout`, `pre-rollout` or `confirm-promotion` gate that
    answered 2xx, `post-rollout` once called), `lastGateTime` when a waiting gate was last asked
    (it is asked again an `interval` later), and `reason` what ended the release when no metric
    did (`PreRolloutFailed`, `RolledBackByWebhook`).
    """

    phase: AnalysisPhase = "Waiting"
    failed_checks: int = 0
    checks: int = 0
    last_check_time: str | None = None
    unavailable_since: str | None = None
    no_data: bool = False
    no_traffic_since: str | None = None
    metrics: list[MetricStatus] = Field(default_factory=list)
    message: str | None = None
    step: int | None = None
    hooks_done: list[WebhookType] = Field(default_factory=list)
    last_gate_time: str | None = None
    reason: str | None = None
