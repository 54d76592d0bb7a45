"""Flagger `Canary` and `MetricTemplate` (flagger.app/v1beta1) as lanes.dev documents.

A Canary becomes a WorkloadRollout: its weights become traffic steps without pauses, so the
analysis advances them, and its A/B `iterations` as many steps of its header matches. A
mirrored Canary (`mirror`) becomes that rollout driven by a LaneRelease whose shadow step
copies requests into the whole lane (`shadow`). A lone
Canary (one naming no lane labels) also gets the Services Flagger would generate (the apex,
`-primary` and `-canary`) and its group and lanes. What Flagger does that lanes does
otherwise converts with a note; what running would mislead is refused, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

from lanes.api.analysis import WebhookType

from .canary import (
    Refusals,
    canary_labels,
    canary_spec,
    doc_name,
    doc_namespace,
    kept_metadata,
    lone_lanes,
    progress_deadline,
    traffic_step,
    workload_ref,
)
from .common import Importer, as_mapping, lanes_document
from .shadow import FALLBACK_NOTE, lane_selecting, shadowed_release
from .lone import (
    CANARY,
    LANE_LABEL,
    STABLE,
    LoneCanary,
    find_deployment,
    gateway_of,
    pod_selector,
    service_document,
)


_FLAGGER_SPEC = (
    "targetRef", "service", "analysis", "provider", "metricsServer", "skipAnalysis", "autoscalerRef",
    "progressDeadlineSeconds",
)
_FLAGGER_SERVICE_DROPPED = ("name", "port", "targetPort", "portName", "portDiscovery", "appProtocol")
_FLAGGER_SERVICE_ROUTING = (
    "gateways", "hosts", "retries", "timeout", "trafficPolicy", "headers", "corsPolicy", "match",
    "rewrite", "apex", "primary", "canary", "delegation",
)
_FLAGGER_SERVICE_SETTINGS = ("retries", "timeout", "headers", "corsPolicy", "trafficPolicy")
"""The Service settings a group's service entry carries, so a lone Canary keeps them."""
_FLAGGER_ANALYSIS = (
    "interval", "threshold", "maxWeight", "stepWeight", "stepWeights", "metrics", "webhooks", "match",
    "iterations", "alerts", "mirror", "mirrorWeight",
)
_FLAGGER_METRIC = ("name", "interval", "thresholdRange", "templateRef", "templateVariables")
_FLAGGER_WEBHOOK = ("name", "type", "url", "timeout", "metadata")


def flagger_canary(doc: dict[str, Any], inputs: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """A Flagger Canary as a WorkloadRollout, with the Services, group and lanes a lone one
    needs.

    Raises:
        InvalidSpec: naming every field that has no lanes equivalent.
    """
    refusals = Refusals("Canary", doc_name(doc))
    spec = as_mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", _FLAGGER_SPEC)
    autoscaler = _autoscaler_ref(spec.get("autoscalerRef"), refusals)
    service = as_mapping(spec.get("service"))
    _flagger_service(service, refusals)
    if spec.get("provider", "istio") != "istio":
        refusals.add("spec.provider", f"{spec.get('provider')!r}: lanes routes with Istio only")
    if spec.get("skipAnalysis"):
        refusals.add("spec.skipAnalysis", "lanes cannot skip a release's analysis; remove it")
    workload = workload_ref(spec.get("targetRef"), "spec.targetRef", refusals)
    labels = canary_labels(doc, refusals)
    generated: list[dict[str, Any]] = []
    if not labels and workload:
        labels, generated = _lone_flagger(doc, service, workload["name"], inputs, refusals)
    analysis = as_mapping(spec.get("analysis"))
    refusals.unknown(analysis, "spec.analysis", _FLAGGER_ANALYSIS)
    percent = _flagger_mirror(analysis, refusals)
    matches = _flagger_matches(analysis.get("match"), refusals)
    steps = _flagger_steps(analysis, matches, refusals)
    checks = _flagger_analysis(analysis, spec.get("metricsServer"), refusals)
    deadline = None
    if "progressDeadlineSeconds" in spec:
        deadline = progress_deadline(spec["progressDeadlineSeconds"], "spec.progressDeadlineSeconds",
                                     refusals)
    alerts = _flagger_alerts(analysis.get("alerts"), refusals)
    refusals.check()
    if percent is not None:
        base: dict[str, Any] = {"workloadRef": workload}
        if autoscaler:
            base["autoscalerRef"] = autoscaler
        if deadline:
            base["progressDeadlineSeconds"] = deadline
        if alerts:
            base["alerts"] = alerts
        lane = lane_selecting(labels, [*generated, *inputs])
        weights = [{"weight": int(str(s["traffic"]).rstrip("%"))} for s in steps]
        return [*shadowed_release(doc, base, labels, lane, weights, matches, checks,
                                  {"percent": percent}, "spec.analysis.mirror", refusals),
                *generated]
    rollout_spec = {"workloadRef": workload, "strategy": {"canary": canary_spec(steps, labels, checks)}}
    if autoscaler:
        rollout_spec["autoscalerRef"] = autoscaler
    if deadline:
        rollout_spec["progressDeadlineSeconds"] = deadline
    if alerts:
        rollout_spec["alerts"] = alerts
    return [lanes_document("WorkloadRollout", kept_metadata(doc), rollout_spec), *generated]


_FLAGGER_ALERT = ("name", "severity", "providerRef")
_ALERT_SEVERITIES = ("info", "warn", "error")


def _flagger_alerts(alerts: Any, refusals: Refusals) -> list[dict[str, Any]]:
    """`analysis.alerts` as the rollout's `alerts`: the same name, severity and provider."""
    converted = []
    for i, alert in enumerate(alerts or []):
        path = f"spec.analysis.alerts[{i}]"
        alert = as_mapping(alert)
        refusals.unknown(alert, path, _FLAGGER_ALERT)
        severity = alert.get("severity", "info")
        if severity not in _ALERT_SEVERITIES:
            refusals.add(f"{path}.severity", f"{severity!r}: give one of {', '.join(_ALERT_SEVERITIES)}")
        ref = as_mapping(alert.get("providerRef"))
        if not ref.get("name"):
            refusals.add(f"{path}.providerRef.name", "names no AlertProvider")
            continue
        provider = {k: ref[k] for k in ("name", "namespace") if ref.get(k)}
        converted.append({"name": str(alert.get("name") or ref["name"]), "severity": severity,
                          "providerRef": provider})
    return converted


def _lone_flagger(
    doc: dict[str, Any], service: dict[str, Any], target: str,
    inputs: Sequence[Mapping[str, Any]], refusals: Refusals,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A lone Canary's lanes, and the apex, `-primary` and `-canary` Services Flagger would
    generate (the primary's selecting the stable lane's pods, the canary's the canary's), so
    the Canary's webhooks and callers find them by the names Flagger gives them."""
    namespace = doc_namespace(doc)
    name = str(service.get("name") or target)
    gateways = [g for g in (gateway_of(str(g), namespace) for g in service.get("gateways") or []) if g]
    http = {k: service[k] for k in _FLAGGER_SERVICE_SETTINGS if k in service and k != "trafficPolicy"}
    lone = LoneCanary(
        name=doc_name(doc), namespace=namespace, deployment=target, service=name,
        gateway=gateways[0] if gateways else None,
        hosts=tuple(str(h) for h in service.get("hosts") or [] if gateways),
        http=http or None, traffic_policy=service.get("trafficPolicy"),
    )
    deployment = find_deployment(inputs, namespace, target)
    labels, generated = lone_lanes(lone, deployment, refusals)
    if deployment is None or not isinstance(service.get("port"), int):
        return labels, generated
    selector = pod_selector(deployment)
    port, port_name = service["port"], str(service.get("portName") or "http")
    target_port = service.get("targetPort", port)
    services = [
        service_document(name, namespace, selector, port, target_port, port_name),
        service_document(f"{name}-primary", namespace, {**selector, LANE_LABEL: STABLE},
                         port, target_port, port_name),
        service_document(f"{name}-canary", namespace, {**selector, LANE_LABEL: CANARY},
                         port, target_port, port_name),
    ]
    present = {(doc_namespace(d), doc_name(d)) for d in inputs if d.get("kind") == "Service"}
    kept = [s for s in services if (namespace, doc_name(s)) not in present]
    return labels, [*kept, *generated]


def _flagger_mirror(analysis: dict[str, Any], refusals: Refusals) -> int | None:
    """The share mirrored (`mirrorWeight`, Flagger's default 100) when `mirror` is on.

    Flagger mirrors for one iteration before the weights shift; lanes' shadow step is that
    iteration (`lanes.importers.shadow`). Its blue/green mirroring (`iterations`) has no
    weights to enter the lane by, so it is refused.
    """
    weight = analysis.get("mirrorWeight")
    if not analysis.get("mirror"):
        if weight is not None:
            refusals.add("spec.analysis.mirrorWeight", "needs mirror: true; remove it")
        return None
    if "iterations" in analysis:
        refusals.add("spec.analysis.mirror", "lanes shadows a lane in one step before its entry "
                                             "weights; with iterations (blue/green) there are "
                                             "none: give stepWeight or stepWeights instead")
    if weight is None:
        return 100
    if not _percent(weight):
        refusals.add("spec.analysis.mirrorWeight", "must be a percentage 1..100")
        return None
    return int(weight)


def _flagger_steps(
    analysis: dict[str, Any], matches: list[dict[str, Any]], refusals: Refusals
) -> list[dict[str, Any]]:
    """The weights as traffic steps, or Flagger's `iterations`: as many steps, one passing
    check each, of a canary of the base's size that gets the matched requests (A/B testing),
    or, without matches (blue/green), only what is sent to the `-canary` Service."""
    if "iterations" not in analysis:
        return [traffic_step(w, matches) for w in _flagger_weights(analysis, refusals)]
    iterations = analysis["iterations"]
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        refusals.add("spec.analysis.iterations", "must be a whole number, 1 or more")
        return []
    for key in ("stepWeight", "stepWeights", "maxWeight"):
        if key in analysis:
            refusals.add(f"spec.analysis.{key}", "Flagger ignores it beside iterations; remove it")
    step: dict[str, Any] = {"replicas": "100%"}
    if matches:
        step["matches"] = matches
    return [dict(step) for _ in range(iterations)]


def _autoscaler_ref(ref: Any, refusals: Refusals) -> dict[str, str]:
    """Flagger's `autoscalerRef` to an autoscaling/v2 HorizontalPodAutoscaler, as lanes'.

    Flagger scales its primary with a copy of the HPA; lanes keeps the base's own HPA on the
    base and gives the canary the copy, so the primary-scaler settings have no equivalent.
    """
    if ref is None:
        return {}
    ref = as_mapping(ref)
    path = "spec.autoscalerRef"
    refusals.unknown(ref, path, ("apiVersion", "kind", "name", "primaryScalerReplicas",
                                 "primaryScalerQueries"))
    if ref.get("kind", "HorizontalPodAutoscaler") != "HorizontalPodAutoscaler":
        refusals.add(f"{path}.kind", f"{ref.get('kind')!r}: lanes copies HorizontalPodAutoscalers only")
    if ref.get("apiVersion", "autoscaling/v2") not in ("autoscaling/v2", "autoscaling/v2beta2"):
        refusals.add(f"{path}.apiVersion",
                     f"{ref.get('apiVersion')!r}: lanes reads autoscaling/v2 HorizontalPodAutoscalers")
    if not ref.get("name"):
        refusals.add(f"{path}.name", "missing: name the target's HorizontalPodAutoscaler")
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "name": str(ref.get("name", ""))}


def _flagger_service(service: dict[str, Any], refusals: Refusals) -> None:
    """Refuse the service fields lanes does not know; the others convert or are noted."""
    refusals.unknown(service, "spec.service", (*_FLAGGER_SERVICE_DROPPED, *_FLAGGER_SERVICE_ROUTING))


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
    # A Prometheus provider's Secret holds its credentials, which lanes sends as Flagger does;
    # another provider's (Datadog's keys, say) has no meaning here.
    prometheus = provider.get("type", "prometheus") == "prometheus"
    refusals.unknown(provider, "spec.provider", ("type", "address", "secretRef") if prometheus
                     else ("type", "address"))
    if not prometheus:
        refusals.add("spec.provider.type", f"{provider.get('type')!r}: lanes queries Prometheus only")
    refusals.check()
    converted: dict[str, Any] = {"provider": provider} if provider else {}
    converted["query"] = spec.get("query")
    return lanes_document("MetricTemplate", kept_metadata(doc), converted)


def flagger_notes(doc: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Where the converted Canary behaves otherwise than Flagger would: `path: message`."""
    spec = as_mapping(doc.get("spec"))
    service = as_mapping(spec.get("service"))
    lone = not canary_labels(doc, Refusals("Canary", doc_name(doc)))
    notes = []
    for key in service:
        if key in _FLAGGER_SERVICE_DROPPED and not (lone and key != "portDiscovery"):
            notes.append(f"spec.service.{key}: dropped; lanes keeps the Deployment's existing "
                         "Service and routes it by lane")
        elif key in ("gateways", "hosts") and not lone:
            notes.append(f"spec.service.{key}: dropped; the group's ingress decides where "
                         "requests enter")
        elif key in _FLAGGER_SERVICE_SETTINGS and not lone:
            notes.append(f"spec.service.{key}: not applied here; put it on the group's entry for "
                         "this service (spec.services[].http or .trafficPolicy), where lanes "
                         "applies it on every lane's route and subset")
        elif key in _FLAGGER_SERVICE_ROUTING and key not in (*_FLAGGER_SERVICE_SETTINGS, "gateways", "hosts"):
            notes.append(f"spec.service.{key}: not applied; lanes writes this service's routes "
                         "without it")
    if as_mapping(spec.get("analysis")).get("mirror"):
        notes.append("spec.analysis.mirror: " + FALLBACK_NOTE.format(peer="Flagger"))
    ref = as_mapping(spec.get("autoscalerRef"))
    if ref.get("apiVersion") == "autoscaling/v2beta2":
        notes.append("spec.autoscalerRef.apiVersion: autoscaling/v2beta2 read as autoscaling/v2, "
                     "the same HorizontalPodAutoscaler")
    for key in ("primaryScalerReplicas", "primaryScalerQueries"):
        if key in ref:
            notes.append(f"spec.autoscalerRef.{key}: dropped; the base keeps its own autoscaler")
    return notes


def flagger_target(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (namespace, Deployment) of a lone Canary, whose pods join the generated stable lane."""
    if canary_labels(doc, Refusals("Canary", doc_name(doc))):
        return None
    ref = as_mapping(as_mapping(doc.get("spec")).get("targetRef"))
    return (doc_namespace(doc), str(ref["name"])) if ref.get("name") else None


FLAGGER = "flagger.app"
"""Flagger's API group."""

_FLAGGER_PROVIDER = ("type", "channel", "username", "address", "secretRef", "proxy")
_PROVIDER_TYPES = ("slack", "msteams", "discord", "generic")


def alert_provider(doc: dict[str, Any], _inputs: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """A Flagger AlertProvider as lanes' own, laid out the same (the Secret's `address` key
    holds the URL in both).

    Raises:
        InvalidSpec: for a chat service lanes does not post to, or no address.
    """
    refusals = Refusals("AlertProvider", doc_name(doc))
    spec = as_mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", _FLAGGER_PROVIDER)
    if spec.get("type") not in _PROVIDER_TYPES:
        refusals.add("spec.type", f"{spec.get('type')!r}: lanes posts to "
                                  f"{', '.join(_PROVIDER_TYPES)}")
    if not spec.get("address") and not as_mapping(spec.get("secretRef")).get("name"):
        refusals.add("spec.address", "give address or secretRef: where the notices are posted")
    refusals.check()
    converted = {k: spec[k] for k in ("type", "address", "channel", "username") if spec.get(k)}
    if spec.get("secretRef"):
        converted["secretRef"] = {"name": as_mapping(spec["secretRef"])["name"]}
    return [lanes_document("AlertProvider", kept_metadata(doc), converted)]


def alert_provider_notes(doc: dict[str, Any], _inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Say what an AlertProvider loses."""
    notes = []
    if as_mapping(doc.get("spec")).get("proxy"):
        notes.append("spec.proxy: dropped; the operator posts to the address directly")
    if as_mapping(doc.get("spec")).get("secretRef"):
        notes.append("spec.secretRef: the operator reads this Secret only once a Role lets it "
                     "(see the notifications how-to)")
    return notes


IMPORTERS = (
    Importer(FLAGGER, "Canary", flagger_canary, flagger_notes, flagger_target),
    Importer(FLAGGER, "AlertProvider", alert_provider, alert_provider_notes),
    Importer(FLAGGER, "MetricTemplate", lambda doc, _inputs: [flagger_metric_template(doc)]),
)
