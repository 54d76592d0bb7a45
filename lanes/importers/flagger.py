"""Flagger `Canary` and `MetricTemplate` (flagger.app/v1beta1) as lanes.dev documents.

A Canary becomes a WorkloadRollout: its weights become traffic steps without pauses, so the
analysis advances them; anything with no lanes equivalent is refused, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from lanes.api.analysis import WebhookType

from .canary import (
    NO_EQUIVALENT,
    Refusals,
    canary_labels,
    canary_spec,
    doc_name,
    kept_metadata,
    require_labels,
    traffic_step,
    workload_ref,
)
from .common import Importer, as_mapping, lanes_document


_FLAGGER_SPEC = (
    "targetRef", "service", "analysis", "provider", "metricsServer", "skipAnalysis", "autoscalerRef",
)
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
    refusals = Refusals("Canary", doc_name(doc))
    spec = as_mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", _FLAGGER_SPEC)
    autoscaler = _autoscaler_ref(spec.get("autoscalerRef"), refusals)
    _flagger_service(as_mapping(spec.get("service")), refusals)
    if spec.get("provider", "istio") != "istio":
        refusals.add("spec.provider", f"{spec.get('provider')!r}: lanes routes with Istio only")
    if spec.get("skipAnalysis"):
        refusals.add("spec.skipAnalysis", "lanes cannot skip a release's analysis; remove it")
    workload = workload_ref(spec.get("targetRef"), "spec.targetRef", refusals)
    labels = canary_labels(doc, refusals)
    require_labels(labels, refusals)
    analysis = as_mapping(spec.get("analysis"))
    refusals.unknown(analysis, "spec.analysis", _FLAGGER_ANALYSIS)
    matches = _flagger_matches(analysis.get("match"), refusals)
    steps = [traffic_step(w, matches) for w in _flagger_weights(analysis, refusals)]
    checks = _flagger_analysis(analysis, spec.get("metricsServer"), refusals)
    refusals.check()
    rollout_spec = {"workloadRef": workload, "strategy": {"canary": canary_spec(steps, labels, checks)}}
    if autoscaler:
        rollout_spec["autoscalerRef"] = autoscaler
    return lanes_document("WorkloadRollout", kept_metadata(doc), rollout_spec)


def _autoscaler_ref(ref: Any, refusals: Refusals) -> dict[str, str]:
    """Flagger's `autoscalerRef` to an autoscaling/v2 HorizontalPodAutoscaler, as lanes'.

    Flagger scales its primary with a copy of the HPA; lanes keeps the base's own HPA on the
    base and gives the canary the copy, so the primary-scaler settings have no equivalent.
    """
    if ref is None:
        return {}
    ref = as_mapping(ref)
    path = "spec.autoscalerRef"
    refusals.unknown(ref, path, ("apiVersion", "kind", "name"))
    if ref.get("kind", "HorizontalPodAutoscaler") != "HorizontalPodAutoscaler":
        refusals.add(f"{path}.kind", f"{ref.get('kind')!r}: lanes copies HorizontalPodAutoscalers only")
    if ref.get("apiVersion", "autoscaling/v2") != "autoscaling/v2":
        refusals.add(f"{path}.apiVersion",
                     f"{ref.get('apiVersion')!r}: lanes reads autoscaling/v2 HorizontalPodAutoscalers")
    if not ref.get("name"):
        refusals.add(f"{path}.name", "missing: name the target's HorizontalPodAutoscaler")
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "name": str(ref.get("name", ""))}


def _flagger_service(service: dict[str, Any], refusals: Refusals) -> None:
    """Refuse the service fields that shape routing; the port ones lanes has no use for.

    Flagger generates the Services and their routes; lanes keeps the existing Service and
    routes it by lane, so port settings are dropped (with a note) and routing settings
    (gateways, hosts, retries, timeouts, policies) are refused: lanes would not apply them.
    """
    for key in service:
        if key not in _FLAGGER_SERVICE_DROPPED:
            refusals.add(f"spec.service.{key}", "lanes writes the routes itself; " + NO_EQUIVALENT)


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
        item = as_mapping(item)
        refusals.unknown(item, path, ("headers",))
        if not as_mapping(item.get("headers")):
            # A match without headers selects every request: all untagged traffic to the canary.
            refusals.add(f"{path}.headers", "missing: lanes converts header matches only")
        headers = []
        for name, rule in as_mapping(item.get("headers")).items():
            header = _header_match(str(name), as_mapping(rule), f"{path}.headers.{name}", refusals)
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
        refusals.unknown(as_mapping(metric), f"spec.analysis.metrics[{i}]", _FLAGGER_METRIC)
    if metrics:
        checks["metrics"] = metrics
    webhooks = analysis.get("webhooks") or []
    for i, webhook in enumerate(webhooks if isinstance(webhooks, list) else []):
        refusals.unknown(as_mapping(webhook), f"spec.analysis.webhooks[{i}]", _FLAGGER_WEBHOOK)
        kind = as_mapping(webhook).get("type", "rollout")
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
    refusals = Refusals("MetricTemplate", doc_name(doc))
    spec = as_mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", ("provider", "query"))
    provider = as_mapping(spec.get("provider"))
    refusals.unknown(provider, "spec.provider", ("type", "address"))
    if provider.get("type", "prometheus") != "prometheus":
        refusals.add("spec.provider.type", f"{provider.get('type')!r}: lanes queries Prometheus only")
    refusals.check()
    converted: dict[str, Any] = {"provider": provider} if provider else {}
    converted["query"] = spec.get("query")
    return lanes_document("MetricTemplate", kept_metadata(doc), converted)


def flagger_notes(doc: Mapping[str, Any]) -> list[str]:
    """The Flagger Canary fields lanes drops because it keeps the Deployment's Service."""
    service = as_mapping(as_mapping(doc.get("spec")).get("service"))
    return [
        f"spec.service.{key}: dropped; lanes keeps the Deployment's existing Service and "
        "routes it by lane"
        for key in service
        if key in _FLAGGER_SERVICE_DROPPED
    ]


FLAGGER = "flagger.app"
"""Flagger's API group."""

IMPORTERS = (
    Importer(FLAGGER, "Canary", lambda doc, _inputs: [flagger_canary(doc)], flagger_notes),
    Importer(FLAGGER, "MetricTemplate", lambda doc, _inputs: [flagger_metric_template(doc)]),
)
