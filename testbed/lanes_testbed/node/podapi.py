"""The node's writes and reads about pods: bind, status, confirm deletion, env sources, tokens.

Each call states what a failure means for the node: a pod that is gone or was replaced
(404, 409) is no error, since the watch reports it shortly.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lanes_testbed.node.env import EnvError, Source
from lanes_testbed.node.objects import binding

log = logging.getLogger("lanes_testbed.node")

TIMEOUT_S = 10
_GONE = (404, 409)
T = TypeVar("T")


class PodApi:
    """Pod calls of one node, with plain dicts in and no response decoding."""

    def __init__(self, api: client.ApiClient, node: str) -> None:
        self._core = client.CoreV1Api(api)
        self.node = node

    def bind(self, pod: Mapping[str, Any]) -> None:
        """Bind `pod` here; losing the race to another binder is fine.

        Raises:
            ApiException: any other refusal, so the caller can retry.
        """
        metadata = pod["metadata"]
        try:
            self._core.create_namespaced_pod_binding(
                metadata["name"], metadata["namespace"], binding(pod, self.node),
                _preload_content=False, _request_timeout=TIMEOUT_S,
            )
        except ApiException as error:
            if error.status not in _GONE:
                raise

    def write_status(self, namespace: str, name: str, uid: str, status: Mapping[str, Any],
                     timeout: float = TIMEOUT_S) -> bool | None:
        """Replace the status fields we own; the uid keeps a same-named successor untouched.

        Returns True when written, False when the pod is gone, None on another failure.
        """
        body = {"metadata": {"uid": uid}, "status": status}
        try:
            self._core.patch_namespaced_pod_status(
                name, namespace, body, _content_type="application/merge-patch+json",
                _preload_content=False, _request_timeout=timeout,
            )
        except ApiException as error:
            if error.status in _GONE:
                return False
            log.warning("status of %s/%s failed: %s", namespace, name, error)
            return None
        return True

    def confirm_deletion(self, metadata: Mapping[str, Any]) -> None:
        """Remove a terminating pod whose processes are gone, as kubelet does."""
        options = client.V1DeleteOptions(grace_period_seconds=0,
                                          preconditions=client.V1Preconditions(uid=metadata["uid"]))
        try:
            self._core.delete_namespaced_pod(metadata["name"], metadata["namespace"], body=options,
                                             _preload_content=False, _request_timeout=TIMEOUT_S)
        except ApiException as error:
            if error.status not in _GONE:
                log.warning("deleting %s/%s failed: %s", metadata["namespace"], metadata["name"], error)

    def lookup(self, namespace: str, kind: Source, name: str) -> dict[str, str] | None:
        """A ConfigMap's or Secret's data for a container's env; None if it does not exist.

        Raises:
            EnvError: it could not be read, so the container waits and is tried again.
        """
        what = f"reading {kind} {namespace}/{name}"
        if kind == "configmap":
            found = _for_env(what, lambda: self._core.read_namespaced_config_map(
                name, namespace, _request_timeout=TIMEOUT_S))
            return None if found is None else dict(found.data or {})
        secret = _for_env(what, lambda: self._core.read_namespaced_secret(
            name, namespace, _request_timeout=TIMEOUT_S))
        return None if secret is None else {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A pod's ServiceAccount as a dict; None if it does not exist.

        Raises:
            EnvError: it could not be read, so the container waits and is tried again.
        """
        found = _for_env(f"reading serviceaccount {namespace}/{name}", lambda: (
            self._core.read_namespaced_service_account(name, namespace, _request_timeout=TIMEOUT_S)))
        return None if found is None else self._core.api_client.sanitize_for_serialization(found)

    def request_token(self, namespace: str, account: str, request: Mapping[str, Any]) -> str:
        """A token of `namespace/account` from the TokenRequest API.

        Raises:
            EnvError: the API server refused or could not be reached; the container waits.
        """
        answer = _for_env(f"token for serviceaccount {namespace}/{account}", lambda: (
            self._core.create_namespaced_service_account_token(
                account, namespace, request, _request_timeout=TIMEOUT_S)), missing_ok=False)
        return answer.status.token


def _for_env(what: str, call: Callable[[], T], *, missing_ok: bool = True) -> T | None:
    """Make an API call a container's start needs; None for a 404 when `missing_ok`.

    Raises:
        EnvError: `what` failed, with the API server's status or the connection's error.
    """
    try:
        return call()
    except ApiException as error:
        if missing_ok and error.status == 404:
            return None
        raise EnvError(f"{what}: {error.status} {error.reason}") from None
    except urllib3.exceptions.HTTPError as error:
        raise EnvError(f"{what}: {error}") from None
