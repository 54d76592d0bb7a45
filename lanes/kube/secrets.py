"""A Secret every replica shares: read it, create it when absent, replace it when unfit.

Made for the webhook's certificate: whichever replica starts first creates it, the others
(and every later start) read the same one, so the caBundle the API server trusts never
changes under a running replica. Creation races are settled by the API server (409: someone
else created it first, so read theirs), replacement by resourceVersion.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .ownership import MANAGED_BY_LANES

Data = dict[str, bytes]


def _decoded(secret: client.V1Secret) -> Data:
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _body(name: str, data: Mapping[str, bytes], version: str | None = None) -> dict:
    metadata: dict = {"name": name, "labels": dict(MANAGED_BY_LANES)}
    if version is not None:
        metadata["resourceVersion"] = version
    return {
        "metadata": metadata,
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
    }


def shared_secret(
    api: client.ApiClient,
    namespace: str,
    name: str,
    make: Callable[[], Data],
    fits: Callable[[Data], bool],
) -> Data:
    """The Secret's data: the stored one if it `fits`, else a new one from `make`, stored.

    Needs `get` and `update` on this one Secret and `create` on Secrets in `namespace`.
    """
    core = client.CoreV1Api(api)
    for _ in range(5):
        try:
            secret = core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            try:
                core.create_namespaced_secret(namespace, _body(name, made := make()))
                return made
            except ApiException as error:
                if error.status != 409:
                    raise
                continue
        data = _decoded(secret)
        if fits(data):
            return data
        try:
            core.replace_namespaced_secret(
                name, namespace, _body(name, made := make(), secret.metadata.resource_version)
            )
            return made
        except ApiException as error:
            if error.status != 409:
                raise
    raise RuntimeError(f"Secret {namespace}/{name} kept changing while it was read")
