"""Read, apply and delete objects: the only calls that touch the API server.

Writes go through server-side apply under one field manager, so ownership is tracked by the
server and a changed desired state removes exactly the fields lanes set before.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .diff import MANAGER
from .kinds import Kind, kind_of
from .schema import version_schema

APPLY_PATCH = "application/apply-patch+yaml"


def label_selector(labels: Mapping[str, str]) -> str:
    """`k=v,k2=v2` for a label equality selector."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def error_message(error: BaseException) -> str:
    """An API error as one line: the server's own message when it gave one."""
    if isinstance(error, ApiException):
        try:
            message = json.loads(error.body or "{}").get("message")
        except (ValueError, AttributeError):
            message = None
        return f"{error.status} {error.reason}: {message or error.body}"
    return str(error) or type(error).__name__


class Objects:
    """Generic object I/O for lanes' own and generated kinds, with CRD schemas cached.

    Thread-safe: the operator calls it from worker threads.
    """

    def __init__(self, api: client.ApiClient, manager: str = MANAGER):
        self.api = api
        self.manager = manager
        self.custom = client.CustomObjectsApi(api)
        self.extensions = client.ApiextensionsV1Api(api)
        self._schemas: dict[tuple[str, str], dict | None] = {}
        self._lock = threading.Lock()

    def list(self, kind: Kind, selector: Mapping[str, str] | None = None) -> list[dict]:
        """Every object of a kind in all namespaces, optionally by labels; [] if not served."""
        try:
            listing = self.custom.list_cluster_custom_object(
                kind.group,
                kind.version,
                kind.plural,
                label_selector=label_selector(selector) if selector else None,
            )
        except ApiException as error:
            if error.status == 404:
                return []
            raise
        items = listing.get("items") or []
        for item in items:
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict | None:
        """One object, or None when it does not exist."""
        try:
            if kind.namespaced:
                return self.custom.get_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, name
                )
            return self.custom.get_cluster_custom_object(kind.group, kind.version, kind.plural, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any]) -> dict:
        """Server-side apply `obj` as our field manager, taking over conflicting fields."""
        kind = kind_of(obj)
        metadata = obj["metadata"]
        common = dict(field_manager=self.manager, force=True, _content_type=APPLY_PATCH)
        if kind.namespaced:
            return self.custom.patch_namespaced_custom_object(
                kind.group, kind.version, metadata["namespace"], kind.plural, metadata["name"], obj,
                **common,
            )
        return self.custom.patch_cluster_custom_object(
            kind.group, kind.version, kind.plural, metadata["name"], obj, **common
        )

    def delete(self, obj: Mapping[str, Any]) -> bool:
        """Delete an object; False when it was already gone."""
        kind = kind_of(dict(obj))
        metadata = obj["metadata"]
        try:
            if kind.namespaced:
                self.custom.delete_namespaced_custom_object(
                    kind.group, kind.version, metadata["namespace"], kind.plural, metadata["name"]
                )
            else:
                self.custom.delete_cluster_custom_object(
                    kind.group, kind.version, kind.plural, metadata["name"]
                )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def schema(self, kind: Kind) -> dict | None:
        """The openAPIV3Schema the CRD serves for this kind and version (cached).

        Read with `list` and a field selector, which the operator's RBAC already grants for
        discovery, rather than needing `get` on CRDs.
        """
        key = (kind.crd_name, kind.version)
        with self._lock:
            if key in self._schemas:
                return self._schemas[key]
        response = self.extensions.list_custom_resource_definition(
            field_selector=f"metadata.name={kind.crd_name}", _preload_content=False
        )
        items = json.loads(response.data).get("items") or []
        crd = items[0] if items else None
        schema = version_schema(crd, kind.version) if crd else None
        with self._lock:
            self._schemas[key] = schema
        return schema

    def forget_schemas(self) -> None:
        """Drop cached schemas, after a CRD changed."""
        with self._lock:
            self._schemas.clear()
