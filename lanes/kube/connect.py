"""Connect to the API server from a kubeconfig or in-cluster, with every write counted.

Counting sits in the one place every request passes (`ApiClient.call_api`), so the count
is exact whatever API class made the call; the operator exports it as a metric and tests
use it to prove an idle operator writes nothing.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlparse

from kubernetes import client, config

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

WriteHook = Callable[[str, str], None]


def resource_of(url: str) -> str:
    """The resource a request URL names, e.g. `virtualservices` or `swimlanegroups/status`.

    Paths look like `/api/v1/namespaces/NS/pods/NAME` or
    `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/SUBRESOURCE]]`.
    """
    parts = [p for p in urlparse(url).path.split("/") if p]
    if not parts:
        return ""
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return ""
    if len(rest) >= 3:
        return f"{rest[0]}/{rest[2]}"
    return rest[0]


class WritesFenced(RuntimeError):
    """A write refused before it was sent: this replica does not lead (any more)."""


class MeteredApiClient(client.ApiClient):
    """An ApiClient that counts writes by (method, resource) and reports each to a hook.

    `may_write`, when set, is asked before every write; a False answer refuses the write
    (`WritesFenced`), which is how a replica that is not the leader never writes.
    """

    def __init__(self, configuration: client.Configuration | None = None, on_write: WriteHook | None = None):
        super().__init__(configuration)
        self.writes: Counter[tuple[str, str]] = Counter()
        self.on_write = on_write
        self.may_write: Callable[[], bool] | None = None
        self._lock = threading.Lock()

    def call_api(self, method, url, *args, **kwargs):  # noqa: D102 - ApiClient's own signature
        if method.upper() in WRITE_METHODS:
            if self.may_write is not None and not self.may_write():
                raise WritesFenced(f"{method.upper()} {urlparse(url).path}: this replica is not the leader")
            key = (method.upper(), resource_of(url))
            with self._lock:
                self.writes[key] += 1
            if self.on_write is not None:
                self.on_write(*key)
        return super().call_api(method, url, *args, **kwargs)

    @property
    def write_count(self) -> int:
        """All writes made so far."""
        with self._lock:
            return sum(self.writes.values())


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> client.Configuration:
    """Configuration from `kubeconfig`, else $KUBECONFIG / ~/.kube/config, else in-cluster.

    In a pod without a kubeconfig the service account is used, as `kubectl` itself does.
    """
    configuration = client.Configuration()
    default_file = os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)
    in_cluster = (
        kubeconfig is None
        and not os.environ.get("KUBECONFIG")
        and not os.path.exists(default_file)
        and os.environ.get("KUBERNETES_SERVICE_HOST")
    )
    if in_cluster:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return configuration


def connect(
    kubeconfig: str | None = None, context: str | None = None, on_write: WriteHook | None = None
) -> MeteredApiClient:
    """A metered ApiClient for the chosen cluster."""
    return MeteredApiClient(load_configuration(kubeconfig, context), on_write=on_write)
