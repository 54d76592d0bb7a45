"""OpenKruise's `Rollout` (rollouts.kruise.io v1alpha1 and v1beta1) as a lanes.dev WorkloadRollout.

lanes' WorkloadRollout is laid out as Kruise's v1beta1 Rollout, so a document keeps its spec and
the metadata a user writes; the models then check every field. What differs:

- v1alpha1's `objectRef.workloadRef` and step `weight` are v1beta1's `workloadRef` and `traffic`;
- Kruise's traffic routing (`trafficRoutings`, or `trafficRoutingRef` naming a `TrafficRouting`)
  edits the routes of one Service, which lanes writes itself: the Service is kept, for the
  group and lanes a lone Rollout (one whose canary pods join no lane) gets generated;
- lanes releases a Deployment with an extra canary Deployment only. Kruise's default for a
  Deployment is in-place batches (v1beta1 without `enableExtraWorkloadForCanary: true`,
  v1alpha1 with the `partition` rolling style), which update the Deployment's own pods a batch
  at a time: running them as an extra Deployment would change what the release does, so they
  are refused with the equivalent to write.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from .canary import Refusals, doc_name, doc_namespace
from .common import Body, Importer, as_mapping, renamed
from .lone import CANARY_POD_LABELS, LoneCanary, find_deployment, lane_documents, pod_selector

KRUISE = "rollouts.kruise.io"
"""OpenKruise Rollouts' API group."""
ROLLING_STYLE = "rollouts.kruise.io/rolling-style"
"""v1alpha1's annotation choosing in-place batches (`partition`) or a canary Deployment."""
_ROUTING = ("trafficRoutings", "trafficRoutingRef", "disableGenerateCanaryService")


def kruise_rollout(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[Body]:
    """A Kruise Rollout as a WorkloadRollout, with a lone one's group and lanes.

    Raises:
        InvalidSpec: for in-place batches, a workload other than a Deployment, or a lone
            Rollout whose Deployment is not in the input.
    """
    refusals = Refusals("Rollout", doc_name(doc))
    spec = _v1beta1_spec(doc)
    canary = as_mapping(as_mapping(spec.get("strategy")).get("canary"))
    _check_workload(as_mapping(spec.get("workloadRef")), refusals)
    if canary and not canary.get("enableExtraWorkloadForCanary"):
        refusals.add(
            "spec.strategy.canary.enableExtraWorkloadForCanary",
            "unset or false: Kruise then updates the Deployment's own pods in place, a batch at "
            "a time, which lanes does not do; lanes releases a Deployment with an extra canary "
            "Deployment beside it (its pods stay on the old revision until promotion): write "
            "enableExtraWorkloadForCanary: true for that",
        )
    service = _routed_service(doc, canary, inputs, refusals)
    generated: list[Body] = []
    labels = as_mapping(as_mapping(canary.get("patchPodTemplateMetadata")).get("labels"))
    if service and not labels and spec.get("workloadRef"):
        generated = _lone_lanes(doc, spec, service, inputs, refusals)
        canary = {**canary, "patchPodTemplateMetadata": {
            **as_mapping(canary.get("patchPodTemplateMetadata")), "labels": dict(CANARY_POD_LABELS)}}
    refusals.check()
    converted_canary = {k: v for k, v in canary.items() if k not in _ROUTING}
    if "steps" in canary:
        converted_canary["steps"] = [_step(s) for s in canary["steps"] or []]
    converted_spec = {**({"workloadRef": spec["workloadRef"]} if "workloadRef" in spec else {}), **spec}
    if canary:
        converted_spec["strategy"] = {**as_mapping(spec.get("strategy")), "canary": converted_canary}
    rollout = renamed({**doc, "spec": converted_spec} if "spec" in doc else doc, "WorkloadRollout")
    annotations = {k: v for k, v in as_mapping(rollout["metadata"].get("annotations")).items()
                   if k != ROLLING_STYLE}
    rollout["metadata"].pop("annotations", None)
    if annotations:
        rollout["metadata"]["annotations"] = annotations
    return [rollout, *generated]


def _v1beta1_spec(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The spec in v1beta1's layout: v1alpha1's `objectRef.workloadRef` lifted, its rolling
    style read as `enableExtraWorkloadForCanary`, its `rolloutID` dropped."""
    spec = copy.deepcopy(as_mapping(doc.get("spec")))
    if not str(doc.get("apiVersion", "")).endswith("/v1alpha1"):
        return spec
    ref = as_mapping(spec.pop("objectRef", None))
    if ref:
        spec["workloadRef"] = ref.get("workloadRef")
    spec.pop("rolloutID", None)
    canary = as_mapping(as_mapping(spec.get("strategy")).get("canary"))
    if canary:
        style = as_mapping(as_mapping(doc.get("metadata")).get("annotations")).get(ROLLING_STYLE)
        canary["enableExtraWorkloadForCanary"] = style != "partition"
    return spec


def _step(step: Any) -> Any:
    """A step in v1beta1's terms: v1alpha1's `weight` as `traffic`, and `replicas` (which lanes
    requires) as the traffic share where the step gives none, as Kruise sizes it."""
    if not isinstance(step, dict):
        return step
    converted = dict(step)
    if "weight" in converted and "traffic" not in converted:
        converted["traffic"] = f"{converted.pop('weight')}%"
    if "replicas" not in converted and isinstance(converted.get("traffic"), str):
        converted["replicas"] = converted["traffic"]
    first = [k for k in ("replicas", "traffic", "matches") if k in converted]
    return {**{k: converted[k] for k in first}, **converted}


def _check_workload(ref: dict[str, Any], refusals: Refusals) -> None:
    """Refuse a workload other than a Deployment, naming what lanes releases."""
    kind = ref.get("kind", "Deployment")
    if ref and kind != "Deployment":
        refusals.add("spec.workloadRef.kind", f"{kind!r}: lanes releases Deployments only (with an "
                                              "extra canary Deployment); keep Kruise for this one")


def _routed_service(
    doc: Body, canary: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]], refusals: Refusals
) -> str | None:
    """The Service Kruise's traffic routing names, from `trafficRoutings` or the TrafficRouting
    `trafficRoutingRef` names (which must be in the input)."""
    routings = canary.get("trafficRoutings")
    ref = canary.get("trafficRoutingRef")
    if ref:
        found = next((d for d in inputs if d.get("kind") == "TrafficRouting"
                      and str(d.get("apiVersion", "")).startswith(f"{KRUISE}/")
                      and doc_name(d) == str(ref) and doc_namespace(d) == doc_namespace(doc)), None)
        if found is None:
            refusals.add("spec.strategy.canary.trafficRoutingRef",
                         f"TrafficRouting {ref!r} is not in the input; give it with -f")
            return None
        routings = as_mapping(found.get("spec")).get("objectRef")
    for routing in routings if isinstance(routings, list) else []:
        service = as_mapping(routing).get("service")
        if service:
            return str(service)
    return None


def _lone_lanes(
    doc: Body, spec: Mapping[str, Any], service: str, inputs: Sequence[Mapping[str, Any]],
    refusals: Refusals,
) -> list[Body]:
    """A lone Rollout's group and lanes, from its Deployment in the input."""
    namespace = doc_namespace(doc)
    name = str(as_mapping(spec.get("workloadRef")).get("name", ""))
    lone = LoneCanary(name=doc_name(doc), namespace=namespace, deployment=name, service=service)
    deployment = find_deployment(inputs, namespace, name)
    if deployment is None:
        refusals.add("spec.strategy.canary.patchPodTemplateMetadata.labels",
                     f"missing, and Deployment {name} is not in the input: give it with -f (lanes "
                     "generates the canary's group and lanes from its pod labels), or give the "
                     "canary lane's pod labels for lanes you write")
        return []
    return lane_documents(lone, pod_selector(deployment))


def kruise_target(doc: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (namespace, Deployment) of a lone Rollout, whose pods join the generated stable lane."""
    spec = _v1beta1_spec(doc)
    canary = as_mapping(as_mapping(spec.get("strategy")).get("canary"))
    labels = as_mapping(as_mapping(canary.get("patchPodTemplateMetadata")).get("labels"))
    ref = as_mapping(spec.get("workloadRef"))
    routed = canary.get("trafficRoutings") or canary.get("trafficRoutingRef")
    if labels or not routed or not ref.get("name"):
        return None
    return (doc_namespace(doc), str(ref["name"]))


def kruise_notes(doc: Body, inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Where the converted Rollout behaves otherwise than Kruise would: `path: message`."""
    spec = as_mapping(doc.get("spec"))
    notes = []
    if "rolloutID" in spec:
        notes.append("spec.rolloutID: dropped; lanes starts a release on each template change")
    canary = as_mapping(as_mapping(_v1beta1_spec(doc).get("strategy")).get("canary"))
    for key in _ROUTING:
        if key in canary:
            notes.append(f"spec.strategy.canary.{key}: dropped; lanes writes the routes of the "
                         "Service it names")
    return notes


def traffic_routing(_doc: Body, _inputs: Sequence[Mapping[str, Any]] = ()) -> list[Body]:
    """A TrafficRouting becomes no document: the Rollouts naming it route its Service."""
    return []


def traffic_routing_notes(doc: Body, _inputs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Say where a TrafficRouting's parts went."""
    notes = ["converted into no document: the Rollouts naming it (trafficRoutingRef) route its "
             "Service, in the group generated for them"]
    if as_mapping(as_mapping(doc.get("spec")).get("strategy")):
        notes.append("spec.strategy: dropped; the Rollouts' own steps and matches route the "
                     "release's requests")
    return notes


IMPORTERS = (
    Importer(KRUISE, "Rollout", kruise_rollout, kruise_notes, kruise_target),
    Importer(KRUISE, "TrafficRouting", traffic_routing, traffic_routing_notes),
)
