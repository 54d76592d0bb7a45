"""LaneRelease I/O: read a release, its lane, group and gateway route; write its status,
intents and events. The rollouts it drives are read and annotated through `RolloutsApi`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes.api.common import GROUP, VERSION
from lanes.rollout import Event

from .diff import MANAGER
from .kinds import ISTIO_GROUP
from .lanesapi import (
    JSON_PATCH,
    MERGE_PATCH,
    event_body,
    finalizer_added,
    finalizer_removed,
    list_events,
)
from .rollouts import RolloutsApi

PLURAL = "lanereleases"
KIND = "LaneRelease"


def _get(call: Any, *args: Any) -> dict | None:
    try:
        return call(*args)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


class LaneReleasesApi:
    """Reads and writes for LaneReleases; `rollouts` for the WorkloadRollouts they drive."""

    def __init__(self, api: client.ApiClient, manager: str = MANAGER):
        self.api = api
        self.manager = manager
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.rollouts = RolloutsApi(api, manager)

    def get(self, namespace: str, name: str) -> dict | None:
        """A LaneRelease, or None when it does not exist."""
        return _get(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                    PLURAL, name)

    def list(self, namespace: str | None = None) -> list[dict]:
        """LaneReleases in one namespace, or in all."""
        if namespace is None:
            listing = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return listing.get("items") or []

    def swimlane(self, name: str) -> dict | None:
        """A SwimLane (cluster-scoped), or None."""
        return _get(self.custom.get_cluster_custom_object, GROUP, VERSION, "swimlanes", name)

    def group(self, name: str) -> dict | None:
        """A SwimLaneGroup (cluster-scoped), or None."""
        return _get(self.custom.get_cluster_custom_object, GROUP, VERSION, "swimlanegroups", name)

    def virtual_service(self, namespace: str, name: str) -> dict | None:
        """A VirtualService as the API server holds it, or None."""
        return _get(self.custom.get_namespaced_custom_object, ISTIO_GROUP, "v1", namespace,
                    "virtualservices", name)

    def write_status(self, body: Mapping[str, Any], status: Mapping[str, Any]) -> dict:
        """Replace a release's status at the resourceVersion it was read at (409 if stale)."""
        metadata = body["metadata"]
        new = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                         "resourceVersion": metadata["resourceVersion"]},
            "status": dict(status),
        }
        return self.custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, metadata["namespace"], PLURAL, metadata["name"], new,
            field_manager=self.manager,
        )

    def annotate(self, namespace: str, name: str, annotations: Mapping[str, str | None],
                 resource_version: str | None = None) -> dict:
        """Merge annotations into a release (None removes one): its intents."""
        metadata: dict[str, Any] = {"annotations": dict(annotations)}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": metadata},
            field_manager=self.manager, _content_type=MERGE_PATCH,
        )

    def add_finalizer(self, body: Mapping[str, Any]) -> dict:
        """Hold deletion until the canaries the release holds are released."""
        ops = finalizer_added(body["metadata"].get("finalizers"))
        return dict(body) if ops is None else self._json_patch(body, ops)

    def remove_finalizer(self, body: Mapping[str, Any]) -> None:
        """Let the release go, testing the finalizer's position so no other one is lost."""
        ops = finalizer_removed(body["metadata"].get("finalizers"))
        if ops is None:
            return
        try:
            self._json_patch(body, ops)
        except ApiException as error:
            if error.status != 404:
                raise

    def _json_patch(self, body: Mapping[str, Any], ops: list[dict]) -> dict:
        metadata = body["metadata"]
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, metadata["namespace"], PLURAL, metadata["name"], ops,
            field_manager=self.manager, _content_type=JSON_PATCH,
        )

    def post_event(self, body: Mapping[str, Any], event: Event) -> None:
        """A core/v1 Event on the release, for `kubectl describe` and `kubectl lane status`."""
        metadata = body["metadata"]
        reference = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": metadata["name"],
                     "namespace": metadata["namespace"], "uid": metadata.get("uid")}
        self.core.create_namespaced_event(
            metadata["namespace"],
            event_body(reference, metadata["namespace"], event.reason, event.message, event.type),
        )

    def events_of(self, namespace: str, name: str) -> list[dict]:
        """Events about one release, oldest first."""
        return list_events(self.core, namespace, name, KIND)
