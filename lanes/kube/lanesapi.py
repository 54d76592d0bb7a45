"""Reads and writes on lanes' own objects and the cluster state it observes.

Status goes to the status subresource (so spec writers and the operator never conflict),
finalizers are added and removed with JSON patches that name the exact list position, and
events are core/v1 Events, which `kubectl describe` and `kubectl events` show.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kinds import Kind

FINALIZER = "lanes.dev/cleanup"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
EVENT_NAMESPACE = "default"


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def finalizer_added(finalizers: list[str] | None) -> list[dict] | None:
    """The JSON patch that adds our finalizer, or None when it is there already."""
    if finalizers and FINALIZER in finalizers:
        return None
    if finalizers:
        return [{"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}]
    return [{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]


def finalizer_removed(finalizers: list[str] | None) -> list[dict] | None:
    """The JSON patch that removes our finalizer, testing its position so no other is lost."""
    finalizers = list(finalizers or [])
    if FINALIZER not in finalizers:
        return None
    index = finalizers.index(FINALIZER)
    return [
        {"op": "test", "path": f"/metadata/finalizers/{index}", "value": FINALIZER},
        {"op": "remove", "path": f"/metadata/finalizers/{index}"},
    ]


def event_body(involved: Mapping[str, Any], namespace: str, reason: str, message: str, type_: str) -> dict:
    """A core/v1 Event about `involved` (an involvedObject reference), kept in `namespace`."""
    stamp = now()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{involved['name']}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
        "involvedObject": dict(involved),
        "reason": reason,
        "message": message[:1024],
        "type": type_,
        "source": {"component": "lanes"},
        "reportingComponent": "lanes",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def list_events(core: client.CoreV1Api, namespace: str, name: str, kind: str) -> list[dict]:
    """Events in `namespace` about the object `kind`/`name`, oldest first."""
    response = core.list_namespaced_event(
        namespace,
        field_selector=f"involvedObject.name={name},involvedObject.kind={kind}",
        _preload_content=False,
    )
    items = json.loads(response.data).get("items") or []
    return sorted(items, key=lambda e: e.get("lastTimestamp") or "")


class LanesApi:
    """Status, finalizers, events and listings for the operator and the CLI."""

    def __init__(self, api: client.ApiClient):
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def list_kind(self, kind: Kind) -> list[dict]:
        """Every object of a cluster-scoped lanes kind."""
        listing = self.custom.list_cluster_custom_object(kind.group, kind.version, kind.plural)
        return listing.get("items") or []

    def patch_status(self, kind: Kind, name: str, status: Mapping[str, Any]) -> dict:
        """Merge `status` into an object's status subresource; None values remove keys."""
        return self.custom.patch_cluster_custom_object_status(
            kind.group, kind.version, kind.plural, name, {"status": dict(status)},
            _content_type=MERGE_PATCH,
        )

    def add_finalizer(self, kind: Kind, body: Mapping[str, Any]) -> None:
        """Add our finalizer, so deleting the object waits for cleanup."""
        ops = finalizer_added((body.get("metadata") or {}).get("finalizers"))
        if ops is not None:
            self._json_patch(kind, body, ops)

    def remove_finalizer(self, kind: Kind, body: Mapping[str, Any]) -> None:
        """Remove our finalizer, testing its position first so no other finalizer is lost."""
        ops = finalizer_removed((body.get("metadata") or {}).get("finalizers"))
        if ops is not None:
            self._json_patch(kind, body, ops)

    def _json_patch(self, kind: Kind, body: Mapping[str, Any], ops: list[dict]) -> None:
        try:
            self.custom.patch_cluster_custom_object(
                kind.group, kind.version, kind.plural, body["metadata"]["name"], ops,
                _content_type=JSON_PATCH,
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def post_event(
        self, involved: Mapping[str, Any], reason: str, message: str, type_: str = "Normal"
    ) -> None:
        """Record a core/v1 Event about a cluster-scoped object (kept in `default`)."""
        metadata = involved.get("metadata") or {}
        reference = {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
        }
        self.core.create_namespaced_event(
            EVENT_NAMESPACE, event_body(reference, EVENT_NAMESPACE, reason, message, type_)
        )

    def events_of(self, name: str, kind: str) -> list[dict]:
        """Events about one cluster-scoped object, oldest first."""
        return list_events(self.core, EVENT_NAMESPACE, name, kind)

    def list_pods(self, selector: str | None = None) -> list[dict]:
        """Pods in all namespaces as plain dicts, optionally by a label selector string."""
        response = self.core.list_pod_for_all_namespaces(
            label_selector=selector, _preload_content=False
        )
        return json.loads(response.data).get("items") or []

    def service_selectors(self) -> dict[str, dict[str, str] | None]:
        """Every Service's selector by `namespace/name`."""
        response = self.core.list_service_for_all_namespaces(_preload_content=False)
        items = json.loads(response.data).get("items") or []
        return {
            f"{s['metadata']['namespace']}/{s['metadata']['name']}": (s.get("spec") or {}).get("selector")
            for s in items
        }
