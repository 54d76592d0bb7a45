"""Flagger and Argo Rollouts canaries rewritten as lanes.dev WorkloadRollouts and MetricTemplates.

lanes drives an existing Deployment step by step and routes by lane, so what converts is the
target, the traffic steps, the header matches and the metric analysis; everything else either
has no lanes equivalent (and is refused, naming the field, so nothing is silently dropped) or
is something lanes does itself, such as writing the routes (dropped with a note on stderr).

Flagger and Argo have no notion of the canary lane's pod labels, which lanes needs to put the
canary pods in a lane; they come from the `lanes.dev/canary-labels` annotation on the Canary or
Rollout (`"ASM_TRAFFIC_TAG=canary"`, comma-separated `key=value` pairs), or, for Argo, from
`strategy.canary.canaryMetadata`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from .analysis import WebhookType, seconds
from .common import API_VERSION
from .errors import FieldError, InvalidSpec

CANARY_LABELS = "lanes.dev/canary-labels"
FLAGGER = "flagger.app"
ARGO = "argoproj.io"
_KEPT_METADATA = ("name", "namespace", "labels", "annotations")
_NO_EQUIVALENT = "has no lanes equivalent; remove it to convert"
_CONDITION = re.compile(r"^\s*result(?:\[0\])?\s*(>=|<=)\s*(-?\d+(?:\.\d+)?)\s*$")
_ARGS = re.compile(r"\{\{\s*args\.")

TemplateKey = tuple[str, str]
"""An Argo AnalysisTemplate's (namespace, name), namespace `""` when not given."""


@dataclass
class Refusals:
    """The fields of one document that do not convert, gathered so one run names them all."""

    kind: str
    name: str
    errors: list[FieldError] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        """Refuse the field at `path`."""
        self.errors.append(FieldError(self.kind, self.name, path, message))

    def unknown(self, body: Mapping[str, Any], path: str, known: Iterable[str]) -> None:
        """Refuse every key of `body` that is not in `known`."""
        allowed = set(known)
        for key in body:
            if key not in allowed:
                self.add(f"{path}.{key}" if path else key, _NO_EQUIVALENT)

    def check(self) -> None:
        """Raise the refusals, if any.

        Raises:
            InvalidSpec: naming each refused field.
        """
        if self.errors:
            raise InvalidSpec(self.errors)


@dataclass(frozen=True)
class ArgoMetric:
    """One Argo AnalysisTemplate metric in lanes' terms: the MetricTemplate it becomes, the
    range its `successCondition` allows, how often it is measured and how many failures abort."""

    name: str
    template: str
    threshold_range: dict[str, float]
    interval: str | None
    failure_limit: int


def _mapping(value: Any) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (the models report wrong shapes)."""
    return value if isinstance(value, dict) else {}


def _name(doc: Mapping[str, Any]) -> str:
    """The document's name, as errors name it."""
    return str(_mapping(doc.get("metadata")).get("name", "(unnamed)"))


def _namespace(doc: Mapping[str, Any]) -> str:
    """The document's namespace, `""` when it gives none (Argo looks templates up in it)."""
    return str(_mapping(doc.get("metadata")).get("namespace") or "")


def _metadata(doc: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    """The metadata a user writes, without the annotation the conversion has consumed."""
    source = _mapping(doc.get("metadata"))
    metadata = {k: source[k] for k in _KEPT_METADATA if k in source}
    annotations = {k: v for k, v in _mapping(metadata.get("annotations")).items() if k != CANARY_LABELS}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if name is not None:
        metadata["name"] = name
    return metadata


def _document(kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A lanes.dev document of `kind`."""
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def canary_labels(doc: Mapping[str, Any], refusals: Refusals) -> dict[str, str]:
    """The canary lane's pod labels from the `lanes.dev/canary-labels` annotation.

    Neither Flagger nor Argo says which lane the canary pods join, and lanes cannot route them
    without it, so a missing or malformed annotation is refused with what to add.
    """
    annotations = _mapping(_mapping(doc.get("metadata")).get("annotations"))
    text = annotations.get(CANARY_LABELS)
    path = f"metadata.annotations.{CANARY_LABELS}"
    if text is None:
        return {}
    labels: dict[str, str] = {}
    for pair in str(text).split(","):
        key, sep, value = pair.strip().partition("=")
        if not sep or not key.strip():
            refusals.add(path, f"{pair.strip()!r} is not key=value (e.g. ASM_TRAFFIC_TAG=canary)")
            continue
        labels[key.strip()] = value.strip()
    return labels


def _require_labels(labels: dict[str, str], refusals: Refusals) -> None:
    """Refuse a canary whose pods would join no lane."""
    if not labels:
        refusals.add(
            f"metadata.annotations.{CANARY_LABELS}",
            "missing: lanes labels the canary pods into a lane; add the lane's labels, e.g. "
            f"{CANARY_LABELS}: ASM_TRAFFIC_TAG=canary",
        )


def _workload_ref(ref: Any, path: str, refusals: Refusals) -> dict[str, str]:
    """A reference to a Deployment as lanes' workloadRef."""
    ref = _mapping(ref)
    if not ref:
        refusals.add(path, "missing: lanes drives an existing Deployment; name it here")
        return {}
    refusals.unknown(ref, path, ("apiVersion", "kind", "name"))
    if ref.get("kind", "Deployment") != "Deployment":
        refusals.add(f"{path}.kind", f"{ref.get('kind')!r}: lanes rolls out Deployments only")
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": str(ref.get("name", ""))}


def _step(weight: Any, matches: list[dict[str, Any]]) -> dict[str, Any]:
    """One canary step: a canary pod and `weight` percent of the unlaned traffic."""
    step: dict[str, Any] = {"replicas": 1, "traffic": f"{weight}%"}
    if matches:
        step["matches"] = matches
    return step


def _canary(
    steps: list[dict[str, Any]], labels: dict[str, str], analysis: dict[str, Any] | None
) -> dict[str, Any]:
    canary: dict[str, Any] = {
        "enableExtraWorkloadForCanary": True,
        "steps": steps,
        "patchPodTemplateMetadata": {"labels": labels},
    }
    if analysis:
        canary["analysis"] = analysis
    return canary


# --- Flagger -------------------------------------------------------------------------------

_FLAGGER_SPEC = ("targetRef", "service", "analysis", "provider", "metricsServer", "skipAnalysis")
_FLAGGER_SERVICE_DROPPED = ("name", "port", "targetPort", "portName", "portDiscovery", "appProtocol")
_FLAGGER_ANALYSIS = (
    "interval", "threshold", "maxWeight", "stepWeight", "stepWeights", "metrics", "webhooks", "match",
)
_FLAGGER_METRIC = ("name", "interval", "thresholdRange", "templateRef")
_FLAGGER_WEBHOOK = ("name", "type", "url", "timeout", "metadata")


def flagger_canary(doc: dict[str, Any]) -> dict[str, Any]:
    """A Flagger Canary as a WorkloadRollout.

    Raises:
        InvalidSpec: naming every field that has no lanes equivalent.
    """
    refusals = Refusals("Canary", _name(doc))
    spec = _mapping(doc.get("spec"))
    if "autoscalerRef" in spec:
        refusals.add("spec.autoscalerRef", "not supported yet: lanes scales the canary by its steps")
    refusals.unknown({k: v for k, v in spec.items() if k != "autoscalerRef"}, "spec", _FLAGGER_SPEC)
    _flagger_service(_mapping(spec.get("service")), refusals)
    if spec.get("provider", "istio") != "istio":
        refusals.add("spec.provider", f"{spec.get('provider')!r}: lanes routes with Istio only")
    if spec.get("skipAnalysis"):
        refusals.add("spec.skipAnalysis", "lanes cannot skip a release's analysis; remove it")
    workload = _workload_ref(spec.get("targetRef"), "spec.targetRef", refusals)
    labels = canary_labels(doc, refusals)
    _require_labels(labels, refusals)
    analysis = _mapping(spec.get("analysis"))
    refusals.unknown(analysis, "spec.analysis", _FLAGGER_ANALYSIS)
    matches = _flagger_matches(analysis.get("match"), refusals)
    steps = [_step(w, matches) for w in _flagger_weights(analysis, refusals)]
    checks = _flagger_analysis(analysis, spec.get("metricsServer"), refusals)
    refusals.check()
    rollout_spec = {"workloadRef": workload, "strategy": {"canary": _canary(steps, labels, checks)}}
    return _document("WorkloadRollout", _metadata(doc), rollout_spec)


def _flagger_service(service: dict[str, Any], refusals: Refusals) -> None:
    """Refuse the service fields that shape routing; the port ones lanes has no use for.

    Flagger generates the Services and their routes; lanes keeps the existing Service and
    routes it by lane, so port settings are dropped (with a note) and routing settings
    (gateways, hosts, retries, timeouts, policies) are refused: lanes would not apply them.
    """
    for key in service:
        if key not in _FLAGGER_SERVICE_DROPPED:
            refusals.add(f"spec.service.{key}", "lanes writes the routes itself; " + _NO_EQUIVALENT)


def _flagger_weights(analysis: dict[str, Any], refusals: Refusals) -> list[int]:
    """The canary weights: `stepWeights`, or `stepWeight` up to `maxWeight` (Flagger's 100 by
    default), the last step capped at `maxWeight`."""
    if "stepWeights" in analysis:
        weights = analysis["stepWeights"]
        if not isinstance(weights, list) or not weights or not all(_percent(w) for w in weights):
            refusals.add("spec.analysis.stepWeights", "must be a list of percentages 1..100")
            return []
        if "maxWeight" in analysis and analysis["maxWeight"] != weights[-1]:
            refusals.add("spec.analysis.maxWeight", "differs from the last of stepWeights; drop it")
        return list(weights)
    step, most = analysis.get("stepWeight"), analysis.get("maxWeight", 100)
    if step is None:
        refusals.add("spec.analysis.stepWeight", "missing: give stepWeight or stepWeights")
        return []
    if not _percent(step) or not _percent(most):
        refusals.add("spec.analysis.stepWeight", "stepWeight and maxWeight must be percentages 1..100")
        return []
    weights = list(range(step, most, step))
    return [*weights, most]


def _percent(value: Any) -> bool:
    """Whether `value` is a whole percentage a canary step can send, 1 to 100."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100


def _flagger_matches(match: Any, refusals: Refusals) -> list[dict[str, Any]]:
    """Flagger's Istio header matches in Kruise's layout (`headers: [{name, value, type}]`)."""
    if match is None:
        return []
    if not isinstance(match, list):
        refusals.add("spec.analysis.match", "must be a list of matches")
        return []
    converted = []
    for i, item in enumerate(match):
        path = f"spec.analysis.match[{i}]"
        item = _mapping(item)
        refusals.unknown(item, path, ("headers",))
        if not _mapping(item.get("headers")):
            # A match without headers selects every request: all untagged traffic to the canary.
            refusals.add(f"{path}.headers", "missing: lanes converts header matches only")
        headers = []
        for name, rule in _mapping(item.get("headers")).items():
            header = _header_match(str(name), _mapping(rule), f"{path}.headers.{name}", refusals)
            if header:
                headers.append(header)
        converted.append({"headers": headers})
    return converted


def _header_match(name: str, rule: dict[str, Any], path: str, refusals: Refusals) -> dict[str, str]:
    """One Istio header StringMatch as a Kruise header match; prefix matches have no equivalent."""
    if len(rule) != 1 or next(iter(rule)) not in ("exact", "regex"):
        refusals.add(path, "only exact and regex header matches convert")
        return {}
    (how, value), = rule.items()
    kind = "Exact" if how == "exact" else "RegularExpression"
    return {"name": name, "value": str(value), "type": kind}


def _flagger_analysis(
    analysis: dict[str, Any], metrics_server: Any, refusals: Refusals
) -> dict[str, Any]:
    """Flagger's interval, threshold, metrics and webhooks: lanes lays its analysis out the same."""
    checks: dict[str, Any] = {k: analysis[k] for k in ("interval", "threshold") if k in analysis}
    metrics = analysis.get("metrics") or []
    for i, metric in enumerate(metrics if isinstance(metrics, list) else []):
        refusals.unknown(_mapping(metric), f"spec.analysis.metrics[{i}]", _FLAGGER_METRIC)
    if metrics:
        checks["metrics"] = metrics
    webhooks = analysis.get("webhooks") or []
    for i, webhook in enumerate(webhooks if isinstance(webhooks, list) else []):
        refusals.unknown(_mapping(webhook), f"spec.analysis.webhooks[{i}]", _FLAGGER_WEBHOOK)
        kind = _mapping(webhook).get("type", "rollout")
        if kind not in get_args(WebhookType):
            refusals.add(f"spec.analysis.webhooks[{i}].type",
                         f"{kind!r}: lanes has no such webhook type "
                         f"({', '.join(get_args(WebhookType))})")
    if webhooks:
        checks["webhooks"] = webhooks
    if metrics_server:
        checks["prometheus"] = {"address": metrics_server}
    return checks


def flagger_metric_template(doc: dict[str, Any]) -> dict[str, Any]:
    """A Flagger MetricTemplate as lanes' (same query placeholders, Prometheus only).

    Raises:
        InvalidSpec: naming a provider lanes cannot query or a field it has no use for.
    """
    refusals = Refusals("MetricTemplate", _name(doc))
    spec = _mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", ("provider", "query"))
    provider = _mapping(spec.get("provider"))
    refusals.unknown(provider, "spec.provider", ("type", "address"))
    if provider.get("type", "prometheus") != "prometheus":
        refusals.add("spec.provider.type", f"{provider.get('type')!r}: lanes queries Prometheus only")
    refusals.check()
    converted: dict[str, Any] = {"provider": provider} if provider else {}
    converted["query"] = spec.get("query")
    return _document("MetricTemplate", _metadata(doc), converted)


# --- Argo Rollouts -------------------------------------------------------------------------

_ARGO_SPEC = ("workloadRef", "strategy", "selector", "revisionHistoryLimit", "paused")
_ARGO_CANARY = (
    "steps", "analysis", "trafficRouting", "canaryService", "stableService", "canaryMetadata",
)
_ARGO_METRIC = ("name", "interval", "successCondition", "failureLimit", "provider")


def argo_template_name(template: str, metric: str) -> str:
    """The MetricTemplate an AnalysisTemplate's metric becomes (one per metric): the template's
    name when the metric is named alike, else `template-metric`."""
    return template if metric == template else f"{template}-{metric}"


def argo_analysis_template(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """An Argo AnalysisTemplate as one lanes MetricTemplate per metric (its query and address).

    Raises:
        InvalidSpec: naming every field that has no lanes equivalent.
    """
    metrics, refusals = argo_metrics(doc)
    refusals.check()
    spec = _mapping(doc.get("spec"))
    converted = []
    for metric, raw in zip(metrics, spec.get("metrics") or [], strict=True):
        prometheus = _mapping(_mapping(raw.get("provider")).get("prometheus"))
        provider = {"type": "prometheus"}
        if "address" in prometheus:
            provider["address"] = prometheus["address"]
        template_spec = {"provider": provider, "query": prometheus.get("query")}
        converted.append(_document("MetricTemplate", _metadata(doc, metric.template), template_spec))
    return converted


def argo_metrics(doc: dict[str, Any]) -> tuple[list[ArgoMetric], Refusals]:
    """An AnalysisTemplate's metrics in lanes' terms, and the fields that do not convert."""
    refusals = Refusals("AnalysisTemplate", _name(doc))
    spec = _mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", ("metrics",))
    metrics = spec.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        refusals.add("spec.metrics", "missing: lanes needs at least one metric")
        return [], refusals
    converted = [_argo_metric(_name(doc), _mapping(m), f"spec.metrics[{i}]", refusals)
                 for i, m in enumerate(metrics)]
    return converted, refusals


def _argo_metric(template: str, metric: dict[str, Any], path: str, refusals: Refusals) -> ArgoMetric:
    """One AnalysisTemplate metric: a Prometheus query and a `result[0] >= X` / `<= X` condition."""
    refusals.unknown(metric, path, _ARGO_METRIC)
    provider = _mapping(metric.get("provider"))
    refusals.unknown(provider, f"{path}.provider", ("prometheus",))
    prometheus = _mapping(provider.get("prometheus"))
    refusals.unknown(prometheus, f"{path}.provider.prometheus", ("address", "query"))
    if _ARGS.search(str(prometheus.get("query", ""))):
        refusals.add(
            f"{path}.provider.prometheus.query",
            "uses {{args.*}}; lanes templates take no arguments: write the value in, or use "
            "{{ namespace }}, {{ target }}, {{ service }}, {{ lane }} or {{ interval }}",
        )
    limit = metric.get("failureLimit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        refusals.add(f"{path}.failureLimit", "must be a whole number, 0 or more")
        limit = 0
    name = str(metric.get("name", ""))
    return ArgoMetric(
        name=name,
        template=argo_template_name(template, name),
        threshold_range=_argo_condition(metric.get("successCondition"), path, refusals),
        interval=str(metric["interval"]) if "interval" in metric else None,
        failure_limit=limit,
    )


def _argo_condition(condition: Any, path: str, refusals: Refusals) -> dict[str, float]:
    """`result[0] >= X` as `{min: X}` and `result[0] <= X` as `{max: X}`; nothing else converts."""
    found = _CONDITION.match(condition) if isinstance(condition, str) else None
    if found is None:
        refusals.add(
            f"{path}.successCondition",
            f"{condition!r}: only 'result[0] >= NUMBER' or 'result[0] <= NUMBER' convert",
        )
        return {"min": 0.0}
    bound = "min" if found.group(1) == ">=" else "max"
    return {bound: float(found.group(2))}


def analysis_templates(docs: Iterable[Mapping[str, Any]]) -> dict[TemplateKey, dict[str, Any]]:
    """The Argo AnalysisTemplates among `docs`, by (namespace, name)."""
    return {
        (_namespace(d), _name(d)): dict(d)
        for d in docs
        if str(d.get("apiVersion", "")).startswith(f"{ARGO}/") and d.get("kind") == "AnalysisTemplate"
    }


def argo_rollout(
    doc: dict[str, Any], templates: Mapping[TemplateKey, dict[str, Any]]
) -> dict[str, Any]:
    """An Argo Rollout's canary strategy as a WorkloadRollout, its analysis from `templates`.

    Raises:
        InvalidSpec: naming every field that has no lanes equivalent.
    """
    refusals = Refusals("Rollout", _name(doc))
    spec = _mapping(doc.get("spec"))
    if "template" in spec:
        refusals.add(
            "spec.template",
            "lanes drives an existing Deployment: move the pod template into a Deployment and "
            "point spec.workloadRef at it",
        )
    if "replicas" in spec:
        refusals.add("spec.replicas", "lanes keeps the Deployment's replica count; set it there")
    rest = {k: v for k, v in spec.items() if k not in ("template", "replicas")}
    refusals.unknown(rest, "spec", _ARGO_SPEC)
    workload = _workload_ref(spec.get("workloadRef"), "spec.workloadRef", refusals)
    strategy = _mapping(spec.get("strategy"))
    refusals.unknown(strategy, "spec.strategy", ("canary",))
    canary = _mapping(strategy.get("canary"))
    refusals.unknown(canary, "spec.strategy.canary", _ARGO_CANARY)
    _argo_traffic_routing(_mapping(canary.get("trafficRouting")), refusals)
    refusals.unknown(_mapping(canary.get("canaryMetadata")), "spec.strategy.canary.canaryMetadata",
                     ("labels", "annotations"))
    labels = {**_argo_canary_metadata(canary, "labels"), **canary_labels(doc, refusals)}
    _require_labels(labels, refusals)
    names = _argo_template_refs(canary, refusals)
    checks = _argo_analysis(names, _namespace(doc), templates, refusals)
    steps = _argo_steps(canary.get("steps"), bool(checks), refusals)
    refusals.check()
    converted: dict[str, Any] = {"canary": _canary(steps, labels, checks)}
    annotations = _argo_canary_metadata(canary, "annotations")
    if annotations:
        converted["canary"]["patchPodTemplateMetadata"]["annotations"] = annotations
    if spec.get("paused"):
        converted["paused"] = True
    rollout_spec = {"workloadRef": workload, "strategy": converted}
    return _document("WorkloadRollout", _metadata(doc), rollout_spec)


def _argo_canary_metadata(canary: dict[str, Any], key: str) -> dict[str, str]:
    """Argo's `canaryMetadata.labels` or `.annotations`: what Argo puts on the canary pods,
    which lanes' `patchPodTemplateMetadata` does too."""
    metadata = _mapping(canary.get("canaryMetadata"))
    return {str(k): str(v) for k, v in _mapping(metadata.get(key)).items()}


def _argo_traffic_routing(routing: dict[str, Any], refusals: Refusals) -> None:
    """Istio routing is what lanes writes itself (dropped, noted); any other router is refused."""
    for key in routing:
        if key != "istio":
            refusals.add(f"spec.strategy.canary.trafficRouting.{key}", "lanes routes with Istio only")


def _argo_steps(steps: Any, analysed: bool, refusals: Refusals) -> list[dict[str, Any]]:
    """`setWeight` steps, each with the `pause` that follows it; `analysis` steps add metrics
    to the release's analysis (gathered separately) and take no step of their own.

    A setWeight with no pause after it goes on by itself in Argo; under analysis a lanes step
    with no pause does the same once a check passes, without analysis it is given a zero
    pause (lanes would otherwise wait for approval).
    """
    if not isinstance(steps, list) or not steps:
        refusals.add("spec.strategy.canary.steps", "missing: lanes needs at least one setWeight step")
        return []
    converted: list[dict[str, Any]] = []
    for i, raw in enumerate(steps):
        step, path = _mapping(raw), f"spec.strategy.canary.steps[{i}]"
        refusals.unknown(step, path, ("setWeight", "pause", "analysis"))
        if "setWeight" in step:
            converted.append(_step(step["setWeight"], []))
        elif "pause" in step:
            _attach_pause(converted, step["pause"], f"{path}.pause", refusals)
    if not converted:
        refusals.add("spec.strategy.canary.steps", "lanes needs at least one setWeight step")
    if not analysed:
        for step in converted:
            step.setdefault("pause", {"duration": 0})
    return converted


def _attach_pause(steps: list[dict[str, Any]], pause: Any, path: str, refusals: Refusals) -> None:
    """A pause step as the `pause` of the setWeight step before it."""
    if not steps or "pause" in steps[-1]:
        refusals.add(path, "lanes pauses after a setWeight step only; put a setWeight before it")
        return
    duration = _mapping(pause).get("duration")
    if duration is None:
        steps[-1]["pause"] = {}
    elif isinstance(duration, int) and not isinstance(duration, bool):
        steps[-1]["pause"] = {"duration": duration}
    elif isinstance(duration, str) and re.fullmatch(r"\d+[smh]?", duration):
        text = duration if duration[-1].isalpha() else f"{duration}s"
        steps[-1]["pause"] = {"duration": int(seconds(text))}
    else:
        refusals.add(f"{path}.duration", f"{duration!r} is not seconds or a duration like 30s, 5m, 1h")


def _argo_template_refs(canary: dict[str, Any], refusals: Refusals) -> list[tuple[str, str]]:
    """The AnalysisTemplates named by the analysis steps and the background analysis, each
    with the path naming it, in order and each once."""
    found: list[tuple[str, str]] = []
    sources = [("spec.strategy.canary.analysis", canary.get("analysis"))]
    for i, step in enumerate(canary.get("steps") or []):
        if isinstance(step, dict) and "analysis" in step:
            sources.append((f"spec.strategy.canary.steps[{i}].analysis", step["analysis"]))
    for path, analysis in sources:
        if analysis is None:
            continue
        analysis = _mapping(analysis)
        refusals.unknown(analysis, path, ("templates",))
        for j, ref in enumerate(analysis.get("templates") or []):
            ref, where = _mapping(ref), f"{path}.templates[{j}]"
            refusals.unknown(ref, where, ("templateName",))
            name = str(ref.get("templateName", ""))
            if name not in [n for n, _ in found]:
                found.append((name, f"{where}.templateName"))
    return found


def _argo_analysis(
    names: list[tuple[str, str]],
    namespace: str,
    templates: Mapping[TemplateKey, dict[str, Any]],
    refusals: Refusals,
) -> dict[str, Any]:
    """The release's analysis from the named AnalysisTemplates: their metrics (by the
    MetricTemplates they become), their common interval, and threshold = failureLimit + 1."""
    metrics: list[ArgoMetric] = []
    for name, path in names:
        template = templates.get((namespace, name))
        if template is None:
            refusals.add(path, f"AnalysisTemplate {name!r} is not in the input; give it with -f")
            continue
        metrics.extend(argo_metrics(template)[0])
    if not metrics:
        return {}
    checks: dict[str, Any] = {
        "metrics": [
            {"name": m.name, "thresholdRange": m.threshold_range, "templateRef": {"name": m.template}}
            for m in metrics
        ]
    }
    where = "spec.strategy.canary.analysis"
    intervals = sorted({m.interval for m in metrics if m.interval is not None})
    if len(intervals) > 1:
        shown = ", ".join(intervals)
        refusals.add(where, f"its metrics are measured at different intervals ({shown}); "
                            "lanes checks all metrics at one interval")
    elif intervals:
        checks["interval"] = intervals[0]
    limits = sorted({m.failure_limit for m in metrics})
    if len(limits) > 1:
        refusals.add(where, f"its metrics have different failureLimits ({limits}); "
                            "lanes has one threshold")
    else:
        checks["threshold"] = limits[0] + 1
    return checks


# --- notes ---------------------------------------------------------------------------------


def progressive_notes(doc: Mapping[str, Any]) -> list[str]:
    """What a converted Flagger or Argo document leaves to lanes: `path: message`."""
    group = str(doc.get("apiVersion", "")).split("/")[0]
    spec = _mapping(doc.get("spec"))
    if group == FLAGGER and doc.get("kind") == "Canary":
        service = _mapping(spec.get("service"))
        return [
            f"spec.service.{key}: dropped; lanes keeps the Deployment's existing Service and "
            "routes it by lane"
            for key in service
            if key in _FLAGGER_SERVICE_DROPPED
        ]
    if group != ARGO or doc.get("kind") != "Rollout":
        return []
    return _argo_notes(spec)


def _argo_notes(spec: dict[str, Any]) -> list[str]:
    """The Argo Rollout fields lanes drops because it does that part itself."""
    canary = _mapping(_mapping(spec.get("strategy")).get("canary"))
    notes = []
    if "istio" in _mapping(canary.get("trafficRouting")):
        notes.append("spec.strategy.canary.trafficRouting.istio: dropped; lanes writes the routes")
    for key in ("canaryService", "stableService"):
        if key in canary:
            notes.append(f"spec.strategy.canary.{key}: dropped; lanes routes the one Service by lane")
    for key in ("selector", "revisionHistoryLimit"):
        if key in spec:
            notes.append(f"spec.{key}: dropped; lanes uses the Deployment's")
    for i, step in enumerate(canary.get("steps") or []):
        if isinstance(step, dict) and "analysis" in step:
            notes.append(
                f"spec.strategy.canary.steps[{i}].analysis: lanes checks its metrics at every "
                "step, as part of the release's analysis"
            )
    return notes
