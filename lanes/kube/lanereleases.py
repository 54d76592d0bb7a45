"""LaneRelease I/O: read and write a release (as `RolloutsApi` does a rollout: get, status at a
resourceVersion, intents, finalizer, events), and read its lane, group and gateway route. The
rollouts it drives are read and annotated through `rollouts`."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes.api.common import GROUP, VERSION

from .diff import MANAGER
from .kinds import ISTIO_GROUP, WASMPLUGIN
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


class LaneReleasesApi(RolloutsApi):
    """Reads and writes for LaneReleases; `rollouts` for the WorkloadRollouts they drive."""

    plural = PLURAL
    kind = KIND

    def __init__(self, api: client.ApiClient, manager: str = MANAGER):
        super().__init__(api, manager)
        self.rollouts = RolloutsApi(api, manager)

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

    def wasm_plugin(self, namespace: str, name: str) -> dict | None:
        """A WasmPlugin as the API server holds it, or None."""
        return _get(self.custom.get_namespaced_custom_object, WASMPLUGIN.group,
                    WASMPLUGIN.version, namespace, WASMPLUGIN.plural, name)
