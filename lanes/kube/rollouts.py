"""WorkloadRollout I/O: read what a rollout plans from, carry out its actions, write its status.

The planner (`lanes.rollout`) decides; this module only talks to the API server. Every write
names the `lanes` field manager, which is also how the admission webhook recognises the
operator's own changes to a base Deployment and leaves them alone.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lanes.api.common import GROUP, VERSION
from lanes.rollout import (
    CANARY_LABEL,
    HELD_ANNOTATION,
    ROLLOUT_LABEL,
    ApplyAutoscaler,
    ApplyCanary,
    Change,
    DeleteAutoscaler,
    DeleteCanary,
    Event,
    PauseBase,
    RestoreBaseTemplate,
    ScaleCanary,
    UnpauseBase,
    canary_name,
)

from .diff import MANAGER
from .lanesapi import (
    JSON_PATCH,
    MERGE_PATCH,
    event_body,
    finalizer_added,
    finalizer_removed,
    list_events,
)
from .objects import APPLY_PATCH

PLURAL = "workloadrollouts"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace kubectl would use: the context's, else the pod's own, else `default`."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context is not None:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        namespace = (active or {}).get("context", {}).get("namespace")
    except (config.ConfigException, OSError):
        namespace = None
        if os.path.exists(SERVICE_ACCOUNT_NAMESPACE):
            with open(SERVICE_ACCOUNT_NAMESPACE) as file:
                namespace = file.read().strip()
    return namespace or "default"


def label_selector(selector: Mapping) -> str:
    """A LabelSelector (`matchLabels`, `matchExpressions`) as the API's query string."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif operator == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def _missing(error: ApiException) -> bool:
    return error.status == 404


@dataclass(frozen=True)
class Workloads:
    """The raw objects one rollout plans from, as the API server returns them (camelCase).

    `autoscaler` is the base's HorizontalPodAutoscaler the rollout names, `canary_autoscaler`
    the one carrying the canary's name (read while a canary runs or an autoscaler is named).
    """

    base: dict | None
    replica_sets: list[dict]
    canary: dict | None
    autoscaler: dict | None = None
    canary_autoscaler: dict | None = None


class RolloutsApi:
    """Reads and writes for WorkloadRollouts and the Deployments they drive.

    Thread-safe as the underlying ApiClient is: the operator calls it from worker threads.
    The reads and writes of the object itself (`plural`, `kind`) serve LaneReleases too.
    """

    plural = PLURAL
    kind = "WorkloadRollout"

    def __init__(self, api: client.ApiClient, manager: str = MANAGER):
        self.api = api
        self.manager = manager
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)

    def get(self, namespace: str, name: str) -> dict | None:
        """A WorkloadRollout, or None when it does not exist."""
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, self.plural, name)
        except ApiException as error:
            if _missing(error):
                return None
            raise

    def list(self, namespace: str | None = None) -> list[dict]:
        """WorkloadRollouts in one namespace, or in all."""
        if namespace is None:
            listing = self.custom.list_cluster_custom_object(GROUP, VERSION, self.plural)
        else:
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, self.plural)
        return listing.get("items") or []

    def lane_releases(self, namespace: str) -> list[dict]:
        """The LaneReleases of a namespace: one may still need a rollout's canary."""
        listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "lanereleases")
        return listing.get("items") or []

    def deployment(self, namespace: str, name: str) -> dict | None:
        """A Deployment as plain camelCase JSON, or None."""
        try:
            response = self.apps.read_namespaced_deployment(name, namespace, _preload_content=False)
        except ApiException as error:
            if _missing(error):
                return None
            raise
        return json.loads(response.data)

    def replica_sets(self, namespace: str, owner_uid: str | None, selector: Mapping | None = None) -> list[dict]:
        """The ReplicaSets a Deployment controls, as plain JSON.

        With the Deployment's `selector`, only ReplicaSets carrying its labels are listed: a
        reconcile then reads its own Deployment's few, not every ReplicaSet of the namespace
        (which made each reconcile cost grow with the number of Deployments beside it).
        """
        if owner_uid is None:
            return []
        query = label_selector(selector) if selector else None
        extra = {"label_selector": query} if query else {}
        response = self.apps.list_namespaced_replica_set(namespace, _preload_content=False, **extra)
        items = json.loads(response.data).get("items") or []
        return [
            rs
            for rs in items
            if any(
                ref.get("controller") and ref.get("uid") == owner_uid
                for ref in (rs.get("metadata") or {}).get("ownerReferences") or []
            )
        ]

    def autoscaler(self, namespace: str, name: str) -> dict | None:
        """An autoscaling/v2 HorizontalPodAutoscaler as plain JSON, or None."""
        try:
            response = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(
                name, namespace, _preload_content=False
            )
        except ApiException as error:
            if _missing(error):
                return None
            raise
        return json.loads(response.data)

    def workloads(self, namespace: str, workload: str, autoscaler: str | None = None) -> Workloads:
        """The base Deployment, its ReplicaSets and the canary Deployment of a rollout, and
        with `autoscaler` (the HorizontalPodAutoscaler it names) the autoscalers it plans from."""
        base = self.deployment(namespace, workload)
        uid = (base or {}).get("metadata", {}).get("uid")
        replica_sets = self.replica_sets(namespace, uid, ((base or {}).get("spec") or {}).get("selector"))
        canary = self.deployment(namespace, canary_name(workload))
        source = self.autoscaler(namespace, autoscaler) if autoscaler else None
        copy = (
            self.autoscaler(namespace, canary_name(workload))
            if autoscaler or canary is not None else None
        )
        return Workloads(base, replica_sets, canary, source, copy)

    def carry_out(self, namespace: str, rollout: str, change: Change) -> None:
        """Make one planned change to a Deployment."""
        if isinstance(change, PauseBase):
            self._patch_deployment(
                namespace,
                change.name,
                {"metadata": {"annotations": {HELD_ANNOTATION: rollout}}, "spec": {"paused": True}},
            )
        elif isinstance(change, UnpauseBase):
            self._patch_deployment(
                namespace,
                change.name,
                {"metadata": {"annotations": {HELD_ANNOTATION: None}}, "spec": {"paused": False}},
            )
        elif isinstance(change, ApplyCanary):
            body = change.deployment
            self.apps.patch_namespaced_deployment(
                change.name, namespace, body, field_manager=self.manager, force=True,
                _content_type=APPLY_PATCH,
            )
        elif isinstance(change, ScaleCanary):
            self._patch_deployment(namespace, change.name, {"spec": {"replicas": change.replicas}})
        elif isinstance(change, DeleteCanary):
            self.delete_deployment(namespace, change.name)
        elif isinstance(change, ApplyAutoscaler):
            self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                change.name, namespace, change.autoscaler, field_manager=self.manager, force=True,
                _content_type=APPLY_PATCH,
            )
        elif isinstance(change, DeleteAutoscaler):
            try:
                self.autoscaling.delete_namespaced_horizontal_pod_autoscaler(change.name, namespace)
            except ApiException as error:
                if not _missing(error):
                    raise
        elif isinstance(change, RestoreBaseTemplate):
            # A JSON patch replaces the template whole; a merge patch would keep labels or
            # annotations that only the newer template has, and so start a new ReplicaSet.
            ops = [{"op": "replace", "path": "/spec/template", "value": change.template}]
            self.apps.patch_namespaced_deployment(
                change.name, namespace, ops, field_manager=self.manager, _content_type=JSON_PATCH
            )
        else:
            raise TypeError(f"unknown change {change!r}")

    def _patch_deployment(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict:
        return self.apps.patch_namespaced_deployment(
            name, namespace, dict(patch), field_manager=self.manager, _content_type=MERGE_PATCH
        )

    def delete_deployment(self, namespace: str, name: str) -> bool:
        """Delete a Deployment (its ReplicaSets and pods follow); False if already gone."""
        try:
            self.apps.delete_namespaced_deployment(
                name, namespace, propagation_policy="Background"
            )
        except ApiException as error:
            if _missing(error):
                return False
            raise
        return True

    def label_base(
        self, namespace: str, name: str, rollout: str | None, at_version: str | None = None
    ) -> None:
        """Mark a Deployment as the target of a rollout (None removes the mark).

        The admission webhook's objectSelector matches this label, so the API server calls it
        only for Deployments that some rollout targets. With `at_version` the mark is written
        only if the Deployment is still at that resourceVersion (409 otherwise), so of two
        rollouts claiming one Deployment at once exactly one wins.
        """
        metadata: dict[str, Any] = {"labels": {ROLLOUT_LABEL: rollout}}
        if at_version is not None:
            metadata["resourceVersion"] = at_version
        try:
            self._patch_deployment(namespace, name, {"metadata": metadata})
        except ApiException as error:
            if not _missing(error):
                raise

    def labelled_bases(self, namespace: str, rollout: str) -> list[str]:
        """Deployments (not canaries) carrying a rollout's target label."""
        listing = self.apps.list_namespaced_deployment(
            namespace, label_selector=f"{ROLLOUT_LABEL}={rollout},!{CANARY_LABEL}"
        )
        return [d.metadata.name for d in listing.items]

    def write_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> dict:
        """Replace a rollout's status, at the resourceVersion it was read at.

        A conflict (409) means the rollout changed since it was planned; the caller plans again
        rather than recording a status made from stale input.
        """
        metadata = body["metadata"]
        new = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": self.kind,
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "resourceVersion": metadata["resourceVersion"],
            },
            "status": dict(status),
        }
        return self.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, metadata["namespace"], self.plural, metadata["name"], new,
            field_manager=self.manager,
        )

    def annotate(
        self,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
        resource_version: str | None = None,
    ) -> dict:
        """Merge annotations into a rollout (None removes one): intents and their clearing.

        With `resource_version` the patch applies only to that version of the rollout (409
        otherwise), so a request checked against one state is never applied to another.
        """
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, self.plural, name, {"metadata": metadata},
            field_manager=self.manager, _content_type=MERGE_PATCH,
        )

    def add_finalizer(self, body: Mapping[str, Any]) -> dict:
        """Hold deletion until the base is released; returns the updated rollout."""
        ops = finalizer_added(body["metadata"].get("finalizers"))
        return dict(body) if ops is None else self._json_patch(body, ops)

    def remove_finalizer(self, body: Mapping[str, Any]) -> None:
        """Let the rollout go, testing the finalizer's position so no other one is lost."""
        ops = finalizer_removed(body["metadata"].get("finalizers"))
        if ops is None:
            return
        try:
            self._json_patch(body, ops)
        except ApiException as error:
            if not _missing(error):
                raise

    def _json_patch(self, body: Mapping[str, Any], ops: list[dict]) -> dict:
        metadata = body["metadata"]
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, metadata["namespace"], self.plural, metadata["name"], ops,
            field_manager=self.manager, _content_type=JSON_PATCH,
        )

    def post_event(self, body: Mapping[str, Any], event: Event) -> None:
        """A core/v1 Event on the rollout, in its namespace, for `kubectl describe`."""
        metadata = body["metadata"]
        reference = {
            "apiVersion": body.get("apiVersion", f"{GROUP}/{VERSION}"),
            "kind": self.kind,
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid"),
        }
        self.core.create_namespaced_event(
            metadata["namespace"],
            event_body(reference, metadata["namespace"], event.reason, event.message, event.type),
        )

    def events_of(self, namespace: str, name: str) -> list[dict]:
        """Events about one rollout, oldest first."""
        return list_events(self.core, namespace, name, self.kind)

    def pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict]:
        """Pods matching an equality selector, as plain JSON (for status views)."""
        text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        response = self.core.list_namespaced_pod(namespace, label_selector=text, _preload_content=False)
        return json.loads(response.data).get("items") or []

    def services(self, namespace: str) -> list[dict]:
        """The Services of a namespace, as plain JSON (an analysis names the canary's)."""
        response = self.core.list_namespaced_service(namespace, _preload_content=False)
        return json.loads(response.data).get("items") or []

    def swimlanes(self) -> list[dict]:
        """Every SwimLane (cluster-scoped): an analysis names the canary's lane."""
        listing = self.custom.list_cluster_custom_object(GROUP, VERSION, "swimlanes")
        return listing.get("items") or []

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded, or None when it does not exist (Prometheus credentials)."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if _missing(error):
                return None
            raise
        return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}

    def metric_template(self, namespace: str, name: str) -> dict | None:
        """A MetricTemplate, or None when it does not exist."""
        try:
            return self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "metrictemplates", name
            )
        except ApiException as error:
            if _missing(error):
                return None
            raise

