"""Argo Rollouts `Rollout` canaries and their analysis templates as lanes.dev documents.

A Rollout becomes a WorkloadRollout of its Deployment (`workloadRef`, or the Deployment its own
pod template becomes): `setWeight` steps become traffic steps sized to their weight (or to the
`setCanaryScale` in force), a following `pause` their pause, `setHeaderRoute` their header
matches, and the templates it names the release's analysis and MetricTemplates. A
`setMirrorRoute` before the weights makes the rollout the member of a LaneRelease whose shadow
step copies requests into the whole lane (`shadow`); a `blueGreen` strategy makes it the member
of a LaneRelease with `blueGreen`, its pre- and post-promotion analysis the release's. A template
taking `args`, or a ClusterAnalysisTemplate, is instantiated per Rollout with the Rollout's
arguments filled in. A lone Rollout (one naming no lane labels) gets its group and lanes.
Anything else is refused, naming the field.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
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
    lone_lanes,
    progress_deadline,
    traffic_step,
    workload_ref,
)
from .common import Importer, as_mapping, lanes_document
from .lone import LoneCanary, find_deployment, gateway_of, with_stable_label
from .prometheus_auth import argo_secret_ref, secret_args
from .shadow import FALLBACK_NOTE, lane_selecting, member_release, shadowed_release

ARGO = "argoproj.io"
"""Argo Rollouts' API group."""

_CONDITION = re.compile(r"^\s*result(?:\[0\])?\s*(>=|<=)\s*(-?\d+(?:\.\d+)?)\s*$")
_ARGS = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+?)\s*\}\}")
_FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")

ARGO_PROGRESS_DEADLINE = 600
"""Argo's `progressDeadlineSeconds` when a Rollout gives none."""

TemplateKey = tuple[str, str, str]
"""An Argo template's (kind, namespace, name), namespace `""` when not given (always, for a
ClusterAnalysisTemplate)."""


@dataclass(frozen=True)
class ArgoMetric:
    """One Argo AnalysisTemplate metric in lanes' terms: the MetricTemplate it becomes, the
    range its `successCondition` allows, how often it is measured and how many failures abort."""

    name: str
    template: str
    threshold_range: dict[str, float]
    interval: str | None
    failure_limit: int


_ARGO_SPEC = (
    "workloadRef", "strategy", "selector", "revisionHistoryLimit", "paused", "template", "replicas",
    "minReadySeconds", "progressDeadlineSeconds", "progressDeadlineAbort",
)
_ARGO_CANARY = (
    "steps", "analysis", "trafficRouting", "canaryService", "stableService", "canaryMetadata",
    "stableMetadata",
)
_ARGO_STEP = ("setWeight", "pause", "analysis", "setCanaryScale", "setHeaderRoute")
_ARGO_ANALYSIS = ("templates", "args", "dryRun", "measurementRetention", "startingStep")
_ARGO_METRIC = ("name", "interval", "successCondition", "failureLimit", "provider")
_ARGO_TEMPLATE_SPEC = ("metrics", "args", "dryRun", "measurementRetention")


def argo_template_name(template: str, metric: str) -> str:
    """The MetricTemplate an AnalysisTemplate's metric becomes (one per metric): the template's
    name when the metric is named alike, else `template-metric`."""
    return template if metric == template else f"{template}-{metric}"


def instantiated(template: Mapping[str, Any]) -> bool:
    """Whether a template's metrics are written out per Rollout rather than converted once:
    it takes arguments, or it is cluster-scoped (a MetricTemplate is namespaced)."""
    spec = as_mapping(template.get("spec"))
    return template.get("kind") == "ClusterAnalysisTemplate" or bool(spec.get("args"))


def argo_analysis_template(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """An Argo AnalysisTemplate as one lanes MetricTemplate per metric (its query and address);
    none for one that the Rollouts naming it instantiate with their arguments.

    Raises:
        InvalidSpec: naming every field that has no lanes equivalent.
    """
    metrics, refusals = argo_metrics(doc)
    refusals.check()
    if instantiated(doc):
        return []
    return metric_templates(doc, metrics, {}, kept_metadata)


def metric_templates(
    doc: Mapping[str, Any], metrics: list[ArgoMetric], args: Mapping[str, str], metadata: Any
) -> list[dict[str, Any]]:
    """The MetricTemplates of a template's metrics, `{{args.NAME}}` filled in from `args`."""
    spec = as_mapping(doc.get("spec"))
    converted = []
    for metric, raw in zip(metrics, spec.get("metrics") or [], strict=True):
        prometheus = as_mapping(as_mapping(raw.get("provider")).get("prometheus"))
        provider = {"type": "prometheus"}
        if "address" in prometheus:
            provider["address"] = _filled(str(prometheus["address"]), args)
        secret_ref = argo_secret_ref(doc, as_mapping(raw), "")
        if secret_ref is not None:
            provider["secretRef"] = secret_ref
        query = prometheus.get("query")
        template_spec = {"provider": provider,
                         "query": _filled(query, args) if isinstance(query, str) else query}
        converted.append(lanes_document("MetricTemplate", metadata(doc, metric.template), template_spec))
    return converted


def _filled(text: str, args: Mapping[str, str]) -> str:
    """`text` with each `{{args.NAME}}` given in `args` replaced by its value."""
    return _ARGS.sub(lambda m: args.get(m.group(1), m.group(0)), text)


def argo_metrics(doc: Mapping[str, Any]) -> tuple[list[ArgoMetric], Refusals]:
    """A template's metrics in lanes' terms, and the fields that do not convert."""
    refusals = Refusals(str(doc.get("kind") or "AnalysisTemplate"), doc_name(doc))
    spec = as_mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", _ARGO_TEMPLATE_SPEC)
    declared = {str(as_mapping(a).get("name")) for a in spec.get("args") or []}
    metrics = spec.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        refusals.add("spec.metrics", "missing: lanes needs at least one metric")
        return [], refusals
    converted = [_argo_metric(doc_name(doc), as_mapping(m), f"spec.metrics[{i}]", declared, refusals)
                 for i, m in enumerate(metrics)]
    for i, m in enumerate(metrics):
        argo_secret_ref(doc, as_mapping(m), f"spec.metrics[{i}]", refusals)
    return converted, refusals


def _argo_metric(
    template: str, metric: dict[str, Any], path: str, declared: set[str], refusals: Refusals
) -> ArgoMetric:
    """One template metric: a Prometheus query and a `result[0] >= X` / `<= X` condition."""
    refusals.unknown(metric, path, _ARGO_METRIC)
    provider = as_mapping(metric.get("provider"))
    refusals.unknown(provider, f"{path}.provider", ("prometheus",))
    prometheus = as_mapping(provider.get("prometheus"))
    refusals.unknown(prometheus, f"{path}.provider.prometheus",
                     ("address", "query", "headers", "authentication"))
    for used in _ARGS.findall(str(prometheus.get("query", ""))):
        if used not in declared:
            refusals.add(f"{path}.provider.prometheus.query",
                         f"uses {{{{args.{used}}}}}, which spec.args does not declare")
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
    """The Argo AnalysisTemplates and ClusterAnalysisTemplates among `docs`, by key."""
    found: dict[TemplateKey, dict[str, Any]] = {}
    for doc in docs:
        kind = doc.get("kind")
        if not str(doc.get("apiVersion", "")).startswith(f"{ARGO}/"):
            continue
        if kind == "AnalysisTemplate":
            found[(kind, doc_namespace(doc), doc_name(doc))] = dict(doc)
        elif kind == "ClusterAnalysisTemplate":
            found[(kind, "", doc_name(doc))] = dict(doc)
    return found


@dataclass(frozen=True)
class TemplateUse:
    """One template a Rollout's analysis names, with the path naming it and the analysis
    block's arguments, dry-run metric names and starting step."""

    name: str
    cluster: bool
    path: str
    args: list[Any]
    dry_run: frozenset[str]


def argo_rollout(doc: dict[str, Any], inputs: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """An Argo Rollout's canary strategy as a WorkloadRollout, its analysis from the templates
    among `inputs`; with the Deployment its pod template becomes, the MetricTemplates its
    templates' arguments make, and a lone Rollout's group and lanes.

    Raises:
        InvalidSpec: naming every field that has no lanes equivalent.
    """
    refusals = Refusals("Rollout", doc_name(doc))
    spec = as_mapping(doc.get("spec"))
    refusals.unknown(spec, "spec", _ARGO_SPEC)
    deployment = _argo_deployment(doc, refusals) if "template" in spec else None
    if deployment is not None:
        if "workloadRef" in spec:
            refusals.add("spec.workloadRef", "give either a pod template or a workloadRef")
        workload = {"apiVersion": "apps/v1", "kind": "Deployment", "name": doc_name(doc)}
    else:
        workload = workload_ref(spec.get("workloadRef"), "spec.workloadRef", refusals,
                                ("scaleDown",))
    strategy = as_mapping(spec.get("strategy"))
    refusals.unknown(strategy, "spec.strategy", ("canary", "blueGreen"))
    if "blueGreen" in strategy:
        if "canary" in strategy:
            refusals.add("spec.strategy", "give either canary or blueGreen")
        return _argo_blue_green(doc, deployment, workload, inputs, refusals)
    if "canary" not in strategy:
        refusals.add("spec.strategy.canary", "missing: lanes converts canary and blueGreen strategies")
    canary = as_mapping(strategy.get("canary"))
    refusals.unknown(canary, "spec.strategy.canary", _ARGO_CANARY)
    routing = as_mapping(canary.get("trafficRouting"))
    _argo_traffic_routing(routing, refusals)
    refusals.unknown(as_mapping(canary.get("canaryMetadata")), "spec.strategy.canary.canaryMetadata",
                     ("labels", "annotations"))
    labels = {**_argo_canary_metadata(canary, "labels"), **canary_labels(doc, refusals)}
    generated: list[dict[str, Any]] = []
    if not labels and workload:
        lone = _argo_lone(doc, canary, routing, inputs)
        base = deployment or find_deployment(inputs, doc_namespace(doc), workload["name"])
        labels, generated = lone_lanes(lone, base, refusals)
        if deployment is not None:
            deployment = with_stable_label(deployment)
    uses = _argo_template_refs(_analysis_blocks(canary), refusals)
    templates = analysis_templates(inputs)
    checks, made = _argo_analysis(doc, uses, templates, refusals)
    mirror, weighted = _argo_mirror(canary.get("steps"), bool(checks), refusals)
    steps = _argo_steps(weighted, bool(checks), refusals)
    deadline = _argo_progress_deadline(spec, refusals)
    refusals.check()
    if mirror is not None:
        member: dict[str, Any] = {"workloadRef": workload, **({"paused": True} if spec.get("paused") else {})}
        if deadline:
            member["progressDeadlineSeconds"] = deadline
        lane = lane_selecting(labels, [*generated, *inputs])
        released = _release_steps(steps, refusals)
        docs = shadowed_release(doc, member, labels, lane, released, [], checks, mirror,
                                "spec.strategy.canary.steps", refusals)
        return [*([deployment] if deployment else []), *docs, *made, *generated]
    converted: dict[str, Any] = {"canary": canary_spec(steps, labels, checks)}
    annotations = _argo_canary_metadata(canary, "annotations")
    if annotations:
        converted["canary"]["patchPodTemplateMetadata"]["annotations"] = annotations
    if spec.get("paused"):
        converted["paused"] = True
    rollout_spec = {"workloadRef": workload, "strategy": converted}
    if deadline:
        rollout_spec["progressDeadlineSeconds"] = deadline
    rollout = lanes_document("WorkloadRollout", kept_metadata(doc), rollout_spec)
    return [*([deployment] if deployment else []), rollout, *made, *generated]


_ARGO_BLUE_GREEN = (
    "activeService", "previewService", "autoPromotionEnabled", "scaleDownDelaySeconds",
    "prePromotionAnalysis", "postPromotionAnalysis", "scaleDownDelayRevisionLimit",
    "abortScaleDownDelaySeconds",
)
_BLUE_GREEN_REFUSED = {
    "previewReplicaCount": "lanes previews the new version at the size it keeps after the "
                           "switch (the member's full-size step); remove it",
    "autoPromotionSeconds": "lanes switches once a check of the preview passes, or on "
                            "kubectl lane approve; use autoPromotionEnabled",
    "previewMetadata": "lanes tells the preview by its lane, not by pod metadata; remove it",
    "activeMetadata": "lanes tells the active version by its lane, not by pod metadata; remove it",
    "antiAffinity": "lanes leaves scheduling to the Deployment's own pod template; remove it",
}


def _blue_green_blocks(blue_green: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Blue-green's pre- and post-promotion analysis, with their paths."""
    return [(f"spec.strategy.blueGreen.{key}", as_mapping(blue_green[key]))
            for key in ("prePromotionAnalysis", "postPromotionAnalysis")
            if blue_green.get(key) is not None]


def _one_analysis(
    blocks: list[tuple[str, dict[str, Any]]], uses: list[TemplateUse], refusals: Refusals
) -> None:
    """Refuse a template the post-promotion analysis names with other arguments than the
    pre-promotion one: lanes judges one analysis before and after the switch."""
    for path, analysis in blocks[1:]:
        for j, ref in enumerate(analysis.get("templates") or []):
            ref = as_mapping(ref)
            for use in uses:
                if (use.name, use.cluster) == (str(ref.get("templateName", "")),
                                               bool(ref.get("clusterScope"))) \
                        and use.args != list(analysis.get("args") or []):
                    refusals.add(f"{path}.templates[{j}]",
                                 f"names {use.name!r} as {use.path} does, with other args; lanes "
                                 "judges one analysis before and after the switch: use one set "
                                 "of args or another template")


def _argo_blue_green(
    doc: dict[str, Any], deployment: dict[str, Any] | None, workload: dict[str, Any] | None,
    inputs: Sequence[Mapping[str, Any]], refusals: Refusals,
) -> list[dict[str, Any]]:
    """A blue-green Rollout as the member of a LaneRelease with `blueGreen`: the lane previews
    the new version through the lane header, then every request switches to it at once.

    Both analyses become the release's one analysis, which lanes judges on the preview's
    traffic and again after the switch, while the old version is held ready.
    """
    spec = as_mapping(doc.get("spec"))
    blue_green = as_mapping(as_mapping(spec.get("strategy")).get("blueGreen"))
    path = "spec.strategy.blueGreen"
    for key in blue_green:
        if key in _BLUE_GREEN_REFUSED:
            refusals.add(f"{path}.{key}", _BLUE_GREEN_REFUSED[key])
        elif key not in _ARGO_BLUE_GREEN:
            refusals.unknown({key: blue_green[key]}, path, ())
    if not blue_green.get("activeService"):
        refusals.add(f"{path}.activeService", "missing: the Service whose requests switch")
    switch: dict[str, Any] = {}
    for key, kind in (("scaleDownDelaySeconds", int), ("autoPromotionEnabled", bool)):
        if key not in blue_green:
            continue
        value = blue_green[key]
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
            refusals.add(f"{path}.{key}", f"{value!r}: must be "
                                          + ("0 or more seconds" if kind is int else "true or false"))
        else:
            switch[key] = value
    labels = canary_labels(doc, refusals)
    generated: list[dict[str, Any]] = []
    if not labels and workload:
        lone = _argo_lone(doc, {"stableService": blue_green.get("activeService")}, {}, inputs)
        base = deployment or find_deployment(inputs, doc_namespace(doc), workload["name"])
        labels, generated = lone_lanes(lone, base, refusals)
        if deployment is not None:
            deployment = with_stable_label(deployment)
    blocks = _blue_green_blocks(blue_green)
    uses = _argo_template_refs(blocks, refusals)
    _one_analysis(blocks, uses, refusals)
    checks, made = _argo_analysis(doc, uses, analysis_templates(inputs), refusals, path)
    deadline = _argo_progress_deadline(spec, refusals)
    lane = lane_selecting(labels, [*generated, *inputs])
    if lane is None:
        refusals.add(path, "lanes switches a lane, and no SwimLane in the input selects the new "
                           f"version's pod labels {labels}; give it with -f")
    refusals.check()
    member: dict[str, Any] = {"workloadRef": workload, **({"paused": True} if spec.get("paused") else {})}
    if deadline:
        member["progressDeadlineSeconds"] = deadline
    docs = member_release(doc, member, labels, lane, {"blueGreen": switch}, [], checks)
    return [*([deployment] if deployment else []), *docs, *made, *generated]


def _argo_progress_deadline(spec: Mapping[str, Any], refusals: Refusals) -> int | None:
    """The rollout's own progress deadline when the Rollout aborts on its deadline
    (`progressDeadlineAbort: true`; Argo's default deadline is 600 s). Without the abort Argo
    only marks the Rollout degraded, as lanes leaves a release past the base's deadline
    Failed, held."""
    abort = spec.get("progressDeadlineAbort", False)
    if not isinstance(abort, bool):
        refusals.add("spec.progressDeadlineAbort", f"{abort!r}: must be true or false")
        return None
    if not abort:
        return None
    return progress_deadline(spec.get("progressDeadlineSeconds", ARGO_PROGRESS_DEADLINE),
                             "spec.progressDeadlineSeconds", refusals)


def _argo_deployment(doc: dict[str, Any], refusals: Refusals) -> dict[str, Any]:
    """The Deployment a Rollout's own pod template, selector and replicas become: what Argo
    runs as the Rollout's ReplicaSets, lanes runs as the Deployment it releases."""
    spec = as_mapping(doc.get("spec"))
    if not as_mapping(spec.get("selector")):
        refusals.add("spec.selector", "missing: a Deployment needs the pods' selector")
    metadata: dict[str, Any] = {"name": doc_name(doc)}
    source = as_mapping(doc.get("metadata"))
    for key in ("namespace", "labels"):
        if key in source:
            metadata[key] = copy.deepcopy(source[key])
    deployment_spec: dict[str, Any] = {"replicas": spec.get("replicas", 1)}
    for key in ("selector", "template", "minReadySeconds", "revisionHistoryLimit",
                "progressDeadlineSeconds"):
        if key in spec:
            deployment_spec[key] = copy.deepcopy(spec[key])
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": deployment_spec}


def _argo_lone(
    doc: dict[str, Any], canary: dict[str, Any], routing: dict[str, Any],
    inputs: Sequence[Mapping[str, Any]],
) -> LoneCanary:
    """A lone Rollout's group: its stable Service, entered at the gateway of the VirtualService
    Argo would edit when that VirtualService is in the input."""
    namespace = doc_namespace(doc)
    service = str(canary.get("stableService") or canary.get("canaryService") or doc_name(doc))
    istio = as_mapping(routing.get("istio"))
    refs = [istio.get("virtualService"), *(istio.get("virtualServices") or [])]
    names = {str(as_mapping(r).get("name")) for r in refs if as_mapping(r).get("name")}
    gateway, hosts = None, ()
    for vs in inputs:
        if vs.get("kind") == "VirtualService" and doc_name(vs) in names and doc_namespace(vs) == namespace:
            vs_spec = as_mapping(vs.get("spec"))
            found = [g for g in (gateway_of(str(g), namespace) for g in vs_spec.get("gateways") or []) if g]
            if found:
                gateway, hosts = found[0], tuple(str(h) for h in vs_spec.get("hosts") or [])
                break
    spec = as_mapping(doc.get("spec"))
    deployment = doc_name(doc) if "template" in spec else str(as_mapping(spec.get("workloadRef")).get("name"))
    return LoneCanary(name=doc_name(doc), namespace=namespace, deployment=deployment,
                      service=service, gateway=gateway, hosts=hosts)


def _argo_canary_metadata(canary: dict[str, Any], key: str) -> dict[str, str]:
    """Argo's `canaryMetadata.labels` or `.annotations`: what Argo puts on the canary pods,
    which lanes' `patchPodTemplateMetadata` does too."""
    metadata = as_mapping(canary.get("canaryMetadata"))
    return {str(k): str(v) for k, v in as_mapping(metadata.get(key)).items()}


def _argo_traffic_routing(routing: dict[str, Any], refusals: Refusals) -> None:
    """Istio routing is what lanes writes itself (dropped, noted); any other router is refused."""
    for key in routing:
        if key not in ("istio", "managedRoutes"):
            refusals.add(f"spec.strategy.canary.trafficRouting.{key}", "lanes routes with Istio only")


@dataclass
class _StepState:
    """What Argo's steps leave in force for the next setWeight: the canary's scale and the
    header routes."""

    replicas: int | str | None = None
    matches: list[dict[str, Any]] | None = None


def _argo_steps(steps: Any, analysed: bool, refusals: Refusals) -> list[dict[str, Any]]:
    """`setWeight` steps, each with the `pause` that follows it; `analysis` steps add metrics
    to the release's analysis (gathered separately) and take no step of their own;
    `setCanaryScale` and `setHeaderRoute` hold for the setWeight they follow (until its pause)
    and the ones after.

    A setWeight with no pause after it goes on by itself in Argo; under analysis a lanes step
    with no pause does the same once a check passes, without analysis it is given a zero
    pause (lanes would otherwise wait for approval).
    """
    if not isinstance(steps, list) or not steps:
        refusals.add("spec.strategy.canary.steps", "missing: lanes needs at least one setWeight step")
        return []
    converted: list[dict[str, Any]] = []
    state = _StepState()
    for i, raw in enumerate(steps):
        step, path = as_mapping(raw), f"spec.strategy.canary.steps[{i}]"
        for key in step:
            if key not in _ARGO_STEP:
                refusals.unknown({key: step[key]}, path, ())
        open_step = converted[-1] if converted and "pause" not in converted[-1] else None
        if "setWeight" in step:
            converted.append(traffic_step(step["setWeight"], state.matches or [], state.replicas))
        elif "pause" in step:
            _attach_pause(converted, step["pause"], f"{path}.pause", refusals)
        elif "setCanaryScale" in step:
            state.replicas = _canary_scale(as_mapping(step["setCanaryScale"]), f"{path}.setCanaryScale",
                                           refusals)
            if open_step is not None:
                weight = open_step["traffic"]
                open_step["replicas"] = weight if state.replicas is None else state.replicas
        elif "setHeaderRoute" in step:
            state.matches = _header_route(as_mapping(step["setHeaderRoute"]), f"{path}.setHeaderRoute",
                                          refusals)
            if open_step is not None:
                if state.matches:
                    open_step["matches"] = state.matches
                else:
                    open_step.pop("matches", None)
    if not converted:
        refusals.add("spec.strategy.canary.steps", "lanes needs at least one setWeight step")
    if not analysed:
        for step in converted:
            step.setdefault("pause", {"duration": 0})
    return converted


def _argo_mirror(steps: Any, analysed: bool, refusals: Refusals
                 ) -> tuple[dict[str, Any] | None, Any]:
    """A `setMirrorRoute` before the first setWeight as the LaneRelease's shadow step (its
    `percentage`, the pause after it), and the steps left for the weights.

    A setMirrorRoute naming no match removes the route, as in Argo; before the weights that
    is where the shadow step ends anyway. Anywhere after the first setWeight, or copying only
    some requests (a `match` narrower than every path), it has no lanes equivalent: the
    shadow copies a share of every untagged request, before any enters the lane.
    """
    if not isinstance(steps, list):
        return None, steps
    mirror: dict[str, Any] | None = None
    rest: list[Any] = []
    weighted = False
    for i, raw in enumerate(steps):
        step, path = as_mapping(raw), f"spec.strategy.canary.steps[{i}]"
        weighted = weighted or "setWeight" in step
        if "setMirrorRoute" in step:
            route, where = as_mapping(step["setMirrorRoute"]), f"{path}.setMirrorRoute"
            refusals.unknown(route, where, ("name", "percentage", "match"))
            if weighted:
                refusals.add(where, "lanes shadows a lane in one step before its entry weights; "
                                    "move it before the first setWeight")
            elif "match" in route:
                mirror = _mirror_route(route, where, refusals)
            continue
        if "pause" in step and mirror is not None and not weighted:
            held = [{}]
            _attach_pause(held, step["pause"], f"{path}.pause", refusals)
            mirror["pause"] = held[0].get("pause", {})
            continue
        rest.append(raw)
    if mirror is not None and not analysed:
        mirror.setdefault("pause", {"duration": 0})
    return mirror, rest


def _mirror_route(route: dict[str, Any], path: str, refusals: Refusals) -> dict[str, Any]:
    """The shadow's `percent` from a setMirrorRoute whose matches select every request."""
    for j, raw in enumerate(route.get("match") or []):
        match = as_mapping(raw)
        if any(key != "path" for key in match) or \
                as_mapping(match.get("path")) not in ({}, {"prefix": "/"}):
            refusals.add(f"{path}.match[{j}]", "lanes copies a share of every untagged request "
                                               "into the lane; mirroring only matching requests "
                                               "has no lanes equivalent")
    percentage = route.get("percentage", 100)
    if not isinstance(percentage, int) or isinstance(percentage, bool) or \
            not 1 <= percentage <= 100:
        refusals.add(f"{path}.percentage", "must be a whole percentage 1..100")
        percentage = 100
    return {"percent": percentage}


def _release_steps(steps: list[dict[str, Any]], refusals: Refusals) -> list[dict[str, Any]]:
    """The WorkloadRollout steps' weights and pauses as a LaneRelease's entry steps."""
    released = []
    for step in steps:
        if step.get("matches"):
            refusals.add("spec.strategy.canary.steps", "setHeaderRoute beside setMirrorRoute: "
                                                       "a lane release's matches hold for "
                                                       "the whole release; remove it")
        entry: dict[str, Any] = {"weight": int(str(step["traffic"]).rstrip("%"))}
        if "pause" in step:
            entry["pause"] = step["pause"]
        released.append(entry)
    return released


def _canary_scale(scale: dict[str, Any], path: str, refusals: Refusals) -> int | str | None:
    """`setCanaryScale` as a step's replicas: a count, a percent of the Deployment's replicas,
    or (`matchTrafficWeight`) None, back to sizing the canary by its traffic."""
    refusals.unknown(scale, path, ("replicas", "weight", "matchTrafficWeight"))
    if "replicas" in scale:
        return scale["replicas"]
    if "weight" in scale:
        return f"{scale['weight']}%"
    return None


def _header_route(route: dict[str, Any], path: str, refusals: Refusals) -> list[dict[str, Any]]:
    """`setHeaderRoute` as step matches (one match of all its headers); none clears them."""
    refusals.unknown(route, path, ("name", "match"))
    headers = []
    for j, raw in enumerate(route.get("match") or []):
        item, where = as_mapping(raw), f"{path}.match[{j}]"
        refusals.unknown(item, where, ("headerName", "headerValue"))
        value = as_mapping(item.get("headerValue"))
        if len(value) != 1 or next(iter(value)) not in ("exact", "regex"):
            refusals.add(f"{where}.headerValue", "only exact and regex header matches convert")
            continue
        (how, text), = value.items()
        headers.append({"name": str(item.get("headerName", "")).lower(), "value": str(text),
                        "type": "Exact" if how == "exact" else "RegularExpression"})
    return [{"headers": headers}] if headers else []


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


def _analysis_blocks(canary: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The background analysis and each analysis step, with their paths."""
    blocks = []
    if canary.get("analysis") is not None:
        blocks.append(("spec.strategy.canary.analysis", as_mapping(canary.get("analysis"))))
    for i, step in enumerate(canary.get("steps") or []):
        if isinstance(step, dict) and "analysis" in step:
            blocks.append((f"spec.strategy.canary.steps[{i}].analysis", as_mapping(step["analysis"])))
    return blocks


def _argo_template_refs(
    blocks: list[tuple[str, dict[str, Any]]], refusals: Refusals
) -> list[TemplateUse]:
    """The templates named by the analysis `blocks` (the steps' and the background analysis,
    or blue-green's pre- and post-promotion analysis), each with the path naming it and its
    block's arguments and dry-run metrics, in order and each once."""
    found: list[TemplateUse] = []
    for path, analysis in blocks:
        refusals.unknown(analysis, path, _ARGO_ANALYSIS)
        dry = frozenset(str(as_mapping(d).get("metricName")) for d in analysis.get("dryRun") or [])
        for j, ref in enumerate(analysis.get("templates") or []):
            ref, where = as_mapping(ref), f"{path}.templates[{j}]"
            refusals.unknown(ref, where, ("templateName", "clusterScope"))
            name = str(ref.get("templateName", ""))
            cluster = bool(ref.get("clusterScope"))
            if (name, cluster) not in [(u.name, u.cluster) for u in found]:
                found.append(TemplateUse(name, cluster, f"{where}.templateName",
                                         list(analysis.get("args") or []), dry))
    return found


def _arg_values(
    doc: Mapping[str, Any], template: Mapping[str, Any], given: list[Any], path: str,
    refusals: Refusals,
) -> dict[str, str]:
    """A template's arguments: the Rollout's (a literal `value` or a `fieldRef` into the
    Rollout), else the template's default; one with neither is refused."""
    values: dict[str, str] = {}
    for raw in as_mapping(template.get("spec")).get("args") or []:
        arg = as_mapping(raw)
        if "value" in arg:
            values[str(arg.get("name"))] = str(arg["value"])
    for j, raw in enumerate(given):
        arg, where = as_mapping(raw), f"{path}.args[{j}]"
        refusals.unknown(arg, where, ("name", "value", "valueFrom"))
        name = str(arg.get("name", ""))
        if "value" in arg:
            values[name] = str(arg["value"])
            continue
        source = as_mapping(arg.get("valueFrom"))
        refusals.unknown(source, f"{where}.valueFrom", ("fieldRef",))
        field_path = str(as_mapping(source.get("fieldRef")).get("fieldPath", ""))
        value = _field(doc, field_path)
        if value is None:
            refusals.add(f"{where}.valueFrom.fieldRef.fieldPath",
                         f"{field_path!r} names no value of this Rollout")
        else:
            values[name] = value
    for raw in as_mapping(template.get("spec")).get("args") or []:
        name = str(as_mapping(raw).get("name"))
        if name not in values and name not in secret_args(template):
            refusals.add(f"{path}.args", f"gives no value for the template's argument {name!r}")
    return values


def _field(doc: Mapping[str, Any], field_path: str) -> str | None:
    """The value at a Kubernetes field path of `doc` (`metadata.name`,
    `metadata.labels['app']`, `spec.x.y`), or None where there is none."""
    found = _FIELD_LABEL.match(field_path)
    if found:
        value = as_mapping(as_mapping(doc.get("metadata")).get(found.group(1))).get(found.group(2))
        return None if value is None else str(value)
    value: Any = doc
    for part in field_path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return None if isinstance(value, (Mapping, list)) else str(value)


def _argo_analysis(
    doc: Mapping[str, Any],
    uses: list[TemplateUse],
    templates: Mapping[TemplateKey, dict[str, Any]],
    refusals: Refusals,
    where: str = "spec.strategy.canary.analysis",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The release's analysis from the named templates: their metrics (by the MetricTemplates
    they become), their common interval, and threshold = failureLimit + 1; and the
    MetricTemplates written out for this Rollout (templates taking arguments, cluster ones).

    A dry-run metric is kept with `dryRun: true`: judged and reported, it never decides, as in
    Argo; its failureLimit does not set the threshold.
    """
    namespace = doc_namespace(doc)
    metrics: list[tuple[ArgoMetric, bool]] = []
    made: list[dict[str, Any]] = []
    for use in uses:
        kind = "ClusterAnalysisTemplate" if use.cluster else "AnalysisTemplate"
        template = templates.get((kind, "" if use.cluster else namespace, use.name))
        if template is None:
            refusals.add(use.path, f"{kind} {use.name!r} is not in the input; give it with -f")
            continue
        found, problems = argo_metrics(template)
        refusals.errors.extend(problems.errors)
        kept = found
        if instantiated(template):
            args = _arg_values(doc, template, use.args, use.path.rsplit(".templates", 1)[0], refusals)
            renamed = [ArgoMetric(m.name, f"{doc_name(doc)}-{m.template}", m.threshold_range,
                                  m.interval, m.failure_limit) for m in found]

            def metadata(_doc: Any, name: str) -> dict[str, Any]:
                return {"name": name, **({"namespace": namespace} if namespace else {})}

            made.extend(metric_templates(template, renamed, args, metadata))
            kept = renamed
        dry = use.dry_run | {str(as_mapping(d).get("metricName"))
                             for d in as_mapping(template.get("spec")).get("dryRun") or []}
        metrics.extend((m, m.name in dry) for m in kept)
    if not metrics:
        return {}, made
    checks: dict[str, Any] = {
        "metrics": [
            {"name": m.name, "thresholdRange": m.threshold_range, "templateRef": {"name": m.template},
             **({"dryRun": True} if dry else {})}
            for m, dry in metrics
        ]
    }
    deciding = [m for m, dry in metrics if not dry] or [m for m, _ in metrics]
    intervals = sorted({m.interval for m, _ in metrics if m.interval is not None})
    if len(intervals) > 1:
        shown = ", ".join(intervals)
        refusals.add(where, f"its metrics are measured at different intervals ({shown}); "
                            "lanes checks all metrics at one interval")
    elif intervals:
        checks["interval"] = intervals[0]
    limits = sorted({m.failure_limit for m in deciding})
    if len(limits) > 1:
        refusals.add(where, f"its metrics have different failureLimits ({limits}); "
                            "lanes has one threshold")
    else:
        checks["threshold"] = limits[0] + 1
    return checks, made


def argo_notes(doc: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Where the converted Rollout behaves otherwise than Argo would: `path: message`."""
    spec = as_mapping(doc.get("spec"))
    canary = as_mapping(as_mapping(spec.get("strategy")).get("canary"))
    notes = []
    if "template" in spec:
        notes.append(f"spec.template: becomes Deployment {doc_name(doc)}, which lanes releases")
    if "istio" in as_mapping(canary.get("trafficRouting")):
        notes.append("spec.strategy.canary.trafficRouting.istio: dropped; lanes writes the routes")
    if "managedRoutes" in as_mapping(canary.get("trafficRouting")):
        notes.append("spec.strategy.canary.trafficRouting.managedRoutes: dropped; lanes writes the "
                     "header routes into the service's own routes")
    if "stableService" in canary:
        notes.append("spec.strategy.canary.stableService: the Service lanes routes by lane; its "
                     "callers' requests reach the canary through its canary subset")
    if "canaryService" in canary:
        notes.append("spec.strategy.canary.canaryService: no longer routed; it selects base and "
                     "canary pods alike, and metrics of its host see none of the canary's share "
                     "(that reaches the canary as stableService's requests)")
    if "stableMetadata" in canary:
        notes.append("spec.strategy.canary.stableMetadata: dropped; the base's pods keep their labels")
    for i, step in enumerate(canary.get("steps") or []):
        if "match" in as_mapping(as_mapping(step).get("setMirrorRoute")):
            notes.append(f"spec.strategy.canary.steps[{i}].setMirrorRoute: "
                         + FALLBACK_NOTE.format(peer="Argo"))
    notes.extend(_blue_green_notes(as_mapping(as_mapping(spec.get("strategy")).get("blueGreen"))))
    for key in ("selector", "revisionHistoryLimit"):
        if key in spec and "template" not in spec:
            notes.append(f"spec.{key}: dropped; lanes uses the Deployment's")
    if "replicas" in spec and "template" not in spec:
        notes.append("spec.replicas: dropped; the Deployment keeps its own replica count")
    if "scaleDown" in as_mapping(spec.get("workloadRef")):
        notes.append("spec.workloadRef.scaleDown: dropped; lanes releases the Deployment itself, "
                     "which keeps running (scale it up if Argo had scaled it to zero)")
    if "progressDeadlineSeconds" in spec and "template" not in spec \
            and not spec.get("progressDeadlineAbort"):
        notes.append("spec.progressDeadlineSeconds: dropped; without progressDeadlineAbort the "
                     "Deployment's own progressDeadlineSeconds decides when a release whose "
                     "canary never becomes ready is left Failed")
    for path, analysis in _analysis_blocks(canary):
        if path != "spec.strategy.canary.analysis":
            notes.append(f"{path}: lanes checks its metrics at every step, as part of the "
                         "release's analysis")
        if "measurementRetention" in analysis:
            notes.append(f"{path}.measurementRetention: dropped; lanes keeps each metric's last "
                         "reading")
        if "startingStep" in analysis:
            notes.append(f"{path}.startingStep: not applied; lanes checks from the first step on")
    return notes


def _blue_green_notes(blue_green: Mapping[str, Any]) -> list[str]:
    """Where a blue-green Rollout's release differs from Argo's switch of Services."""
    path, notes = "spec.strategy.blueGreen", []
    if "activeService" in blue_green:
        notes.append(f"{path}.activeService: kept as written, not switched; lanes routes its "
                     "requests by lane, and the switch moves them all into the new version's lane")
    if "previewService" in blue_green:
        notes.append(f"{path}.previewService: kept as written, not switched; lanes previews the "
                     "new version through the lane header on the active Service's requests, "
                     "so metrics of its host see none of the preview's traffic")
    pre, post = (f"{path}.{key}" for key in ("prePromotionAnalysis", "postPromotionAnalysis"))
    if "prePromotionAnalysis" in blue_green:
        notes.append(f"{pre}: the release's analysis, judged on the preview's traffic and again "
                     "after the switch while the old version is held ready")
    if "postPromotionAnalysis" in blue_green:
        notes.append(f"{post}: part of the release's analysis, judged after the switch while the "
                     "old version is held ready (a failing check switches back) and on the "
                     "preview's traffic before it")
    for where, analysis in _blue_green_blocks(blue_green):
        for key, message in (("measurementRetention", "lanes keeps each metric's last reading"),
                             ("startingStep", "lanes checks from the preview on")):
            if key in analysis:
                notes.append(f"{where}.{key}: dropped; {message}")
    if "scaleDownDelayRevisionLimit" in blue_green:
        notes.append(f"{path}.scaleDownDelayRevisionLimit: dropped; lanes holds one old version, "
                     "the one the release switched from")
    if "abortScaleDownDelaySeconds" in blue_green:
        notes.append(f"{path}.abortScaleDownDelaySeconds: dropped; when a release is undone or "
                     "fails, lanes switches back and removes the new version at once")
    return notes


def template_notes(doc: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Say where a template's metrics go when the Rollouts naming it write them out."""
    notes = []
    spec = as_mapping(doc.get("spec"))
    if instantiated(doc):
        notes.append("converted per Rollout naming it, its arguments filled in, as MetricTemplates "
                     "<rollout>-<template>[-<metric>] in the Rollout's namespace")
    if "measurementRetention" in spec:
        notes.append("spec.measurementRetention: dropped; lanes keeps each metric's last reading")
    return notes


def argo_edited_routes(inputs: Sequence[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """The (kind, namespace, name) of each VirtualService and DestinationRule an Argo
    Rollout among `inputs` names for Argo to edit."""
    found = set()
    for doc in inputs:
        if not (str(doc.get("apiVersion", "")).startswith(f"{ARGO}/") and doc.get("kind") == "Rollout"):
            continue
        canary = as_mapping(as_mapping(as_mapping(doc.get("spec")).get("strategy")).get("canary"))
        istio = as_mapping(as_mapping(canary.get("trafficRouting")).get("istio"))
        for ref in [istio.get("virtualService"), *(istio.get("virtualServices") or [])]:
            if as_mapping(ref).get("name"):
                found.add(("VirtualService", doc_namespace(doc), str(as_mapping(ref)["name"])))
        rule = as_mapping(istio.get("destinationRule"))
        if rule.get("name"):
            found.add(("DestinationRule", doc_namespace(doc), str(rule["name"])))
    return found


def argo_target(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (namespace, Deployment) of a lone Rollout's workloadRef, whose pods join the
    generated stable lane (a Rollout's own pod template is labelled as it converts)."""
    spec = as_mapping(doc.get("spec"))
    canary = as_mapping(as_mapping(spec.get("strategy")).get("canary"))
    if _argo_canary_metadata(canary, "labels") or canary_labels(doc, Refusals("Rollout", doc_name(doc))):
        return None
    ref = as_mapping(spec.get("workloadRef"))
    if "template" in spec or not ref.get("name"):
        return None
    return (doc_namespace(doc), str(ref["name"]))


IMPORTERS = (
    Importer(ARGO, "Rollout", argo_rollout, argo_notes, argo_target),
    Importer(ARGO, "AnalysisTemplate", lambda doc, _inputs: argo_analysis_template(doc), template_notes),
    Importer(ARGO, "ClusterAnalysisTemplate", lambda doc, _inputs: argo_analysis_template(doc),
             template_notes),
)
