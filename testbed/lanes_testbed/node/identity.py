"""A pod's ServiceAccount identity on the local node: a bound token in a kubeconfig file.

A kubelet projects the pod's ServiceAccount token into
`/var/run/secrets/kubernetes.io/serviceaccount/`, a fixed path that processes sharing one
filesystem cannot each have. The local node's stand-in: it asks the API server for a token of
the pod's ServiceAccount bound to the pod (the TokenRequest API, as kubelet does), writes it
into a kubeconfig in the pod's own directory with the API server's address and CA, and names
that file in the containers' `KUBECONFIG`. Clients that honour $KUBECONFIG (kubectl, the
kubernetes client, lanes' own) then act as the pod's ServiceAccount, with its RBAC only.

Pure: the API calls are the caller's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

# Kubelet asks for an hour and refreshes the file; the node writes it once, so a day
# outlasts any test or demo. A pod that runs longer loses its identity until restarted.
TOKEN_EXPIRATION_S = 86400
KUBECONFIG_FILE = "serviceaccount.kubeconfig"


def account_of(pod: Mapping[str, Any]) -> str:
    """The pod's ServiceAccount (admission sets `default` when the pod names none)."""
    return (pod.get("spec") or {}).get("serviceAccountName") or "default"


def mounts_token(pod: Mapping[str, Any], account: Mapping[str, Any] | None) -> bool:
    """Whether the pod gets a token: its own `automountServiceAccountToken` if set, else its
    ServiceAccount's, else yes, as the ServiceAccount admission plugin decides."""
    own = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if own is not None:
        return bool(own)
    shared = (account or {}).get("automountServiceAccountToken")
    return True if shared is None else bool(shared)


def token_request(pod: Mapping[str, Any], expiration_s: int = TOKEN_EXPIRATION_S) -> dict[str, Any]:
    """A TokenRequest bound to the pod, so the token dies with it; the API server's own
    audiences (no `audiences` given) make it valid for the API server."""
    metadata = pod["metadata"]
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": expiration_s,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                               "name": metadata["name"], "uid": metadata["uid"]},
        },
    }


def kubeconfig_document(server: str, ca_pem: bytes, token: str, namespace: str, account: str) -> dict[str, Any]:
    """A self-contained kubeconfig acting as `namespace/account`, defaulting to `namespace`
    as an in-cluster client does."""
    user = f"system:serviceaccount:{namespace}:{account}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "local", "user": user, "namespace": namespace}}],
        "current-context": "pod",
    }
