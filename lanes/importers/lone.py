"""The group and lanes a lone single-service canary needs, generated from its workload.

A Flagger Canary, an Argo Rollout or a Kruise Rollout releases one Deployment behind one
Service and says nothing of lanes; lanes routes a canary's share of traffic to the canary
lane's subset, so such a canary needs a group holding its Service, a stable lane (the
fallback, its pods the base's) and a canary lane. They are generated, as the peer derives
its own routing from the workload's pod labels:

- the stable lane selects the base's pods by the workload's selector plus
  `lanes.dev/lane: stable`, which the base's pod template is given (a Deployment in the
  input, or the one an Argo Rollout's own pod template becomes). Istio subsets select by
  label equality only, so without a label of their own the base's pods could not be told
  from the canary's, which copy every label of the base's;
- the canary lane selects the same with `lanes.dev/lane: canary`, which the rollout puts on
  the canary pods in place of the base's value (`patchPodTemplateMetadata`).

A canary whose Deployment is not in the input, and which names no lane labels, is refused:
the stable lane would select no pods, and every request would fail.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lanes.api.common import GROUP_LABEL
from lanes.api.swimlanegroup import DEFAULT_ROUTE_HEADER

from .common import Body, as_mapping, lanes_document

LANE_LABEL = "lanes.dev/lane"
"""The base's pod label the generated stable lane selects."""
STABLE = "stable"
CANARY = "canary"
CANARY_POD_LABELS = {LANE_LABEL: CANARY}
"""The labels the rollout puts on the canary pods, so the canary lane selects them alone."""


@dataclass(frozen=True)
class LoneCanary:
    """What a lone canary's group is generated from: its name and namespace, its Deployment,
    the Service callers reach it by, the gateway and hosts requests enter by, and the Service's
    own route settings and traffic policy."""

    name: str
    namespace: str
    deployment: str
    service: str
    gateway: tuple[str, str] | None = None
    hosts: tuple[str, ...] = ()
    http: Mapping[str, Any] | None = None
    traffic_policy: Mapping[str, Any] | None = None

    @property
    def group(self) -> str:
        """The generated group's name: cluster-scoped, so the namespace is part of it."""
        return f"{self.name}-{self.namespace}" if self.namespace else self.name

    @property
    def stable_lane(self) -> str:
        """The fallback lane of the base's pods; also its subset name and header value."""
        return f"{self.group}-{STABLE}"

    @property
    def canary_lane(self) -> str:
        """The lane of the canary's pods."""
        return f"{self.group}-{CANARY}"


def find_deployment(inputs: Sequence[Mapping[str, Any]], namespace: str, name: str) -> Body | None:
    """The Deployment `namespace/name` among the input documents, if it is there."""
    for doc in inputs:
        metadata = as_mapping(doc.get("metadata"))
        if (
            doc.get("kind") == "Deployment"
            and str(doc.get("apiVersion", "")).startswith("apps/")
            and metadata.get("name") == name
            and str(metadata.get("namespace") or "") == namespace
        ):
            return dict(doc)
    return None


def pod_selector(deployment: Mapping[str, Any]) -> dict[str, str]:
    """The labels a Deployment selects its pods by (`matchLabels`, else its template's)."""
    spec = as_mapping(deployment.get("spec"))
    selector = as_mapping(as_mapping(spec.get("selector")).get("matchLabels"))
    if not selector:
        template = as_mapping(spec.get("template"))
        selector = as_mapping(as_mapping(template.get("metadata")).get("labels"))
    return {str(k): str(v) for k, v in selector.items()}


def with_stable_label(deployment: Body) -> Body:
    """The Deployment with the stable lane's label on its pod template."""
    labelled = copy.deepcopy(deployment)
    template = labelled.setdefault("spec", {}).setdefault("template", {})
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**as_mapping(metadata.get("labels")), LANE_LABEL: STABLE}
    return labelled


def lane_documents(lone: LoneCanary, selector: Mapping[str, str]) -> list[Body]:
    """The group and its two lanes: the stable lane the fallback, the canary lane its canary
    pods. Requests enter at the Service's gateway (when the peer names one): the stable lane's
    rule takes only those already carrying its lane, so the rest stay untagged and the
    release's steps split them, at the gateway and at every caller in the mesh."""
    service = {"name": lone.service, "namespace": lone.namespace or "default"}
    gateway_name, gateway_namespace = lone.gateway or ("istio-ingressgateway", "istio-system")
    entry: dict[str, Any] = dict(service)
    if lone.http:
        entry["http"] = dict(lone.http)
    if lone.traffic_policy:
        entry["trafficPolicy"] = dict(lone.traffic_policy)
    group_spec = {
        "ingress": {"gateway": {"name": gateway_name, "namespace": gateway_namespace}},
        "isPermissive": True,
        "permissiveModeConfiguration": {"fallbackTarget": lone.stable_lane},
        "services": [entry],
    }
    host = f"{lone.service}.{service['namespace']}.svc.cluster.local"
    stable_spec: dict[str, Any] = {
        "labelSelector": {**selector, LANE_LABEL: STABLE},
        "services": [service],
    }
    if lone.gateway is not None:
        stable_spec["ingressRules"] = [{
            "name": f"{lone.name}-entry",
            "hosts": list(lone.hosts) or ["*"],
            "match": {"uri": {"prefix": "/"},
                      "headers": {DEFAULT_ROUTE_HEADER: {"exact": lone.stable_lane}}},
            "route": {"destination": {"host": host}},
        }]
    canary_spec = {"labelSelector": {**selector, LANE_LABEL: CANARY}, "services": [service]}
    labels = {GROUP_LABEL: lone.group}
    return [
        lanes_document("SwimLaneGroup", {"name": lone.group}, group_spec),
        lanes_document("SwimLane", {"name": lone.stable_lane, "labels": labels}, stable_spec),
        lanes_document("SwimLane", {"name": lone.canary_lane, "labels": dict(labels)}, canary_spec),
    ]


def gateway_of(text: str, namespace: str) -> tuple[str, str] | None:
    """An Istio gateway reference (`name`, `ns/name` or `name.ns.svc.cluster.local`) as
    (name, namespace), a bare name in `namespace` as Istio reads it; None for `mesh`."""
    if text == "mesh":
        return None
    if "/" in text:
        gateway_namespace, _, name = text.partition("/")
        return name, gateway_namespace
    parts = text.split(".")
    return (parts[0], parts[1]) if len(parts) > 1 else (parts[0], namespace or "default")


def service_document(name: str, namespace: str, selector: Mapping[str, str],
                     port: int, target_port: Any, port_name: str) -> Body:
    """A Service of the pods `selector` picks, as a peer that generates its Services writes it."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    spec = {
        "selector": dict(selector),
        "ports": [{"name": port_name, "port": port, "targetPort": target_port, "protocol": "TCP"}],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}
