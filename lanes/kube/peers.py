"""Peer objects' I/O: ASM's and Kruise's kinds read, their status written, what lanes serves
for them applied and deleted, and their CRDs installed where the cluster has none.

The CRDs installed here are lanes' minimal ones: the peer's group, version, kind and scope,
an open schema, and a status subresource. A cluster that has the peer's own CRDs keeps them;
nothing here replaces or patches a CRD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes.api.common import GROUP, VERSION
from lanes.importers.served import PEER_KINDS, SERVED_LABEL, PeerKind

from .diff import MANAGER
from .lanesapi import MERGE_PATCH
from .objects import APPLY_PATCH

SERVED_MANAGER = "lanes-served"
"""The field manager of the lanes.dev objects applied for peer objects."""
OURS = (MANAGER, SERVED_MANAGER)
"""Field managers that are lanes': a status written by any other is the peer's controller's."""


def peer_crd(kind: PeerKind) -> dict[str, Any]:
    """A minimal CustomResourceDefinition serving `kind`: an open schema and a status."""
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/managed-by": "lanes"}},
        "spec": {
            "group": kind.group,
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "names": {"kind": kind.kind, "plural": kind.plural, "singular": kind.kind.lower(),
                      "listKind": f"{kind.kind}List"},
            "versions": [{
                "name": kind.version, "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": open_object, "status": open_object}}},
            }],
        },
    }


def _absent(error: ApiException) -> bool:
    return error.status == 404


class PeersApi:
    """Reads and writes of peer objects and of the lanes.dev objects served for them."""

    def __init__(self, api: client.ApiClient):
        self.custom = client.CustomObjectsApi(api)
        self.extensions = client.ApiextensionsV1Api(api)

    def install_crds(self) -> list[str]:
        """Create each peer kind's CRD the cluster lacks; the names of those created."""
        created = []
        for kind in PEER_KINDS:
            try:
                self.extensions.read_custom_resource_definition(kind.crd_name)
                continue
            except ApiException as error:
                if not _absent(error):
                    raise
            try:
                self.extensions.create_custom_resource_definition(peer_crd(kind))
                created.append(kind.crd_name)
            except ApiException as error:
                if error.status != 409:  # another replica created it meanwhile
                    raise
        return created

    def _object(self, group: str, version: str, plural: str, namespaced: bool,
                namespace: str | None, name: str) -> dict | None:
        try:
            if namespaced:
                return self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
            return self.custom.get_cluster_custom_object(group, version, plural, name)
        except ApiException as error:
            if _absent(error):
                return None
            raise

    def peer(self, kind: PeerKind, namespace: str | None, name: str) -> dict | None:
        """A peer object, or None when it is gone."""
        return self._object(kind.group, kind.version, kind.plural, kind.namespaced, namespace, name)

    def served(self, kind: PeerKind, namespace: str | None, name: str) -> dict | None:
        """The lanes.dev object of `kind`'s served kind named `name`, or None."""
        return self._object(GROUP, VERSION, kind.served_plural, kind.namespaced, namespace, name)

    def apply_served(self, kind: PeerKind, document: Mapping[str, Any]) -> dict:
        """Server-side apply a served lanes.dev object as lanes' served-object manager."""
        metadata = document["metadata"]
        common = dict(field_manager=SERVED_MANAGER, force=True, _content_type=APPLY_PATCH)
        if kind.namespaced:
            return self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, metadata["namespace"], kind.served_plural, metadata["name"],
                dict(document), **common)
        return self.custom.patch_cluster_custom_object(
            GROUP, VERSION, kind.served_plural, metadata["name"], dict(document), **common)

    def delete_served(self, kind: PeerKind, served: Mapping[str, Any]) -> None:
        """Delete a served lanes.dev object (its own finalizer, if any, still runs)."""
        metadata = served["metadata"]
        if not (metadata.get("labels") or {}).get(SERVED_LABEL):
            raise ValueError(f"{kind.served_kind} {metadata['name']} was not served from a peer")
        try:
            if kind.namespaced:
                self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, metadata["namespace"], kind.served_plural, metadata["name"])
            else:
                self.custom.delete_cluster_custom_object(
                    GROUP, VERSION, kind.served_plural, metadata["name"])
        except ApiException as error:
            if not _absent(error):
                raise

    def write_status(self, kind: PeerKind, peer: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Merge `status` into the peer object's status, as lanes' field manager, at the
        resourceVersion it was read at: a status the peer's controller wrote meanwhile is never
        overwritten (409 Conflict, and the reconcile plans again)."""
        metadata = peer["metadata"]
        body = {"metadata": {"resourceVersion": metadata["resourceVersion"]}, "status": dict(status)}
        common = dict(field_manager=MANAGER, _content_type=MERGE_PATCH)
        if kind.namespaced:
            self.custom.patch_namespaced_custom_object_status(
                kind.group, kind.version, metadata["namespace"], kind.plural, metadata["name"],
                body, **common)
        else:
            self.custom.patch_cluster_custom_object_status(
                kind.group, kind.version, kind.plural, metadata["name"], body, **common)
