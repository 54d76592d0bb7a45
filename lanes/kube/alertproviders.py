"""Reads of AlertProviders and the Secrets holding their URLs, and their Ready condition."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes.api.common import GROUP, VERSION

from .diff import MANAGER

PLURAL = "alertproviders"
SECRET_KEY = "address"
"""The Secret key holding a provider's URL, as Flagger's AlertProvider reads it."""


class AlertProvidersApi:
    """What sending a release notice reads and writes."""

    def __init__(self, api: client.ApiClient, manager: str = MANAGER):
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.manager = manager

    def get(self, namespace: str, name: str) -> dict | None:
        """An AlertProvider, or None when it does not exist."""
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def secret_address(self, namespace: str, name: str) -> str | None:
        """The `address` key of a Secret, or None when the Secret or the key is missing."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        value = (secret.data or {}).get(SECRET_KEY)
        return base64.b64decode(value).decode().strip() if value else None

    def set_ready(self, body: dict[str, Any], condition: dict[str, Any]) -> None:
        """Write the provider's Ready condition (a merge patch of the status)."""
        metadata = body["metadata"]
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, metadata["namespace"], PLURAL, metadata["name"],
            {"status": {"conditions": [condition]}}, field_manager=self.manager,
        )
