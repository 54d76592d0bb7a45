"""Argo Rollouts `Rollout` canaries and their `AnalysisTemplate`s as lanes.dev documents.

A Rollout driving a Deployment (`workloadRef`) becomes a WorkloadRollout: `setWeight` steps
become traffic steps, a following `pause` their pause, and the AnalysisTemplates it names
the release's analysis and MetricTemplates; anything else is refused, naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lanes.api.analysis import seconds

from .canary import (
    Refusals,
    canary_labels,
    canary_spec,
    doc_name,
    doc_namespace,
    kept_metadata,
    require_labels,
    traffic_step,
    workload_ref,
)
from .common import Importer, as_mapping, lanes_document

ARGO = "argoproj.io"
"""Argo Rollouts' API group."""

_CONDITION = re.compile(r"^\s*result(?:\[0\])?\s*(>=|<=)\s*(-?\d+(?:\.\d+)?)\s*$")
_ARGS = re.compile(r"\{\{\s*args\.")

TemplateKey = tuple[str, str]
"""An Argo AnalysisTemplate's (namespace, name), namespace `""` when not given."""


@dataclass(frozen=True)
class ArgoMetric:
    """One Argo AnalysisTemplate metric in lanes' terms: the MetricTemplate it becomes, the
    range its `successCondition` allows, how often it is measured and how many failures abort."""

    name: str
    template: str
    threshold_range: dict[str, float]
    interval: str | None
    failure_limit: int


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
    spec = as_mapping(doc.get("spec"))
    converted = []
    for metric, raw in zip(metrics, spec.get("metrics") or [], strict=True):
        prometheus = as_mapping(as_mapping(raw.get("provider")).get("prometheus"))
        provider = {"type": "prometheus"}
        if "address" in prometheus:
            provider["address"] = prometheus["address"]
        template_spec = {"provider": provider, "query": prometheus.get("query")}
        converted.append(lanes_document("MetricTemplate", kept_metadata(doc, metric.template), template_spec))
    return converted


def argo_metrics(doc: dict[str, Any]) -> tuple[list[ArgoMetric], Refusals]:
    """An AnalysisTemplate's metrics in lanes' terms, and the fields that do not convert."""
    refusals = Refusals("AnalysisTemplate", doc_name(doc))
    spec = as_mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", ("metrics",))
    metrics = spec.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        refusals.add("spec.metrics", "missing: lanes needs at least one metric")
        return [], refusals
    converted = [_argo_metric(doc_name(doc), as_mapping(m), f"spec.metrics[{i}]", refusals)
                 for i, m in enumerate(metrics)]
    return converted, refusals


def _argo_metric(template: str, metric: dict[str, Any], path: str, refusals: Refusals) -> ArgoMetric:
    """One AnalysisTemplate metric: a Prometheus query and a `result[0] >= X` / `<= X` condition."""
    refusals.unknown(metric, path, _ARGO_METRIC)
    provider = as_mapping(metric.get("provider"))
    refusals.unknown(provider, f"{path}.provider", ("prometheus",))
    prometheus = as_mapping(provider.get("prometheus"))
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
        (doc_namespace(d), doc_name(d)): dict(d)
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
    refusals = Refusals("Rollout", doc_name(doc))
    spec = as_mapping(doc.get("spec"))
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
    workload = workload_ref(spec.get("workloadRef"), "spec.workloadRef", refusals)
    strategy = as_mapping(spec.get("strategy"))
    refusals.unknown(strategy, "spec.strategy", ("canary",))
    canary = as_mapping(strategy.get("canary"))
    refusals.unknown(canary, "spec.strategy.canary", _ARGO_CANARY)
    _argo_traffic_routing(as_mapping(canary.get("trafficRouting")), refusals)
    refusals.unknown(as_mapping(canary.get("canaryMetadata")), "spec.strategy.canary.canaryMetadata",
                     ("labels", "annotations"))
    labels = {**_argo_canary_metadata(canary, "labels"), **canary_labels(doc, refusals)}
    require_labels(labels, refusals)
    names = _argo_template_refs(canary, refusals)
    checks = _argo_analysis(names, doc_namespace(doc), templates, refusals)
    steps = _argo_steps(canary.get("steps"), bool(checks), refusals)
    refusals.check()
    converted: dict[str, Any] = {"canary": canary_spec(steps, labels, checks)}
    annotations = _argo_canary_metadata(canary, "annotations")
    if annotations:
        converted["canary"]["patchPodTemplateMetadata"]["annotations"] = annotations
    if spec.get("paused"):
        converted["paused"] = True
    rollout_spec = {"workloadRef": workload, "strategy": converted}
    return lanes_document("WorkloadRollout", kept_metadata(doc), rollout_spec)


def _argo_canary_metadata(canary: dict[str, Any], key: str) -> dict[str, str]:
    """Argo's `canaryMetadata.labels` or `.annotations`: what Argo puts on the canary pods,
    which lanes' `patchPodTemplateMetadata` does too."""
    metadata = as_mapping(canary.get("canaryMetadata"))
    return {str(k): str(v) for k, v in as_mapping(metadata.get(key)).items()}


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
        step, path = as_mapping(raw), f"spec.strategy.canary.steps[{i}]"
        refusals.unknown(step, path, ("setWeight", "pause", "analysis"))
        if "setWeight" in step:
            converted.append(traffic_step(step["setWeight"], []))
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
    duration = as_mapping(pause).get("duration")
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
        analysis = as_mapping(analysis)
        refusals.unknown(analysis, path, ("templates",))
        for j, ref in enumerate(analysis.get("templates") or []):
            ref, where = as_mapping(ref), f"{path}.templates[{j}]"
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


def argo_notes(doc: Mapping[str, Any]) -> list[str]:
    """The Argo Rollout fields lanes drops because it does that part itself."""
    spec = as_mapping(doc.get("spec"))
    canary = as_mapping(as_mapping(spec.get("strategy")).get("canary"))
    notes = []
    if "istio" in as_mapping(canary.get("trafficRouting")):
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


IMPORTERS = (
    Importer(
        ARGO, "Rollout", lambda doc, inputs: [argo_rollout(doc, analysis_templates(inputs))], argo_notes
    ),
    Importer(ARGO, "AnalysisTemplate", lambda doc, _inputs: argo_analysis_template(doc)),
)
