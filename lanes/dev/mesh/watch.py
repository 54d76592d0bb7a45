"""List-then-watch of one resource across all namespaces, as plain dicts, relisting on any error.

The mesh needs a full, current picture of a few kinds rather than a stream of changes, so a
`ListWatch` keeps a store per kind: a list replaces it (which also forgets objects deleted
while the watch was down), and each watch event updates it. The kubernetes client's `Watch`
raises on an expired resourceVersion when asked for raw dicts, so the loop is written here;
`stop()` shuts the socket down so a blocked read returns at once.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

WATCH_TIMEOUT_S = 240
MAX_BACKOFF_S = 5.0

Obj = dict[str, Any]
Key = tuple[str, str]
_SINGULAR = {"pods": "pod", "services": "service"}


@dataclass(frozen=True)
class Resource:
    """A kind as the REST API lists it: core (`group` empty) or custom."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


class _Expired(Exception):
    """The resourceVersion is too old (HTTP 410); only a fresh list helps."""


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


class ListWatch:
    """Keeps `store` equal to the live objects of one resource; calls `on_change` after each change.

    `reduce`, when given, shrinks each object before it is stored (pods carry much that the
    mesh never reads). `synced` is set once the first list has been stored.
    """

    def __init__(
        self,
        api: client.ApiClient,
        resource: Resource,
        on_change: Callable[[], None],
        *,
        reduce: Callable[[Obj], Obj] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.api = api
        self.resource = resource
        self.store: dict[Key, Obj] = {}
        self.synced = threading.Event()
        self.lock = threading.Lock()
        self.relists = 0
        self._on_change = on_change
        self._reduce = reduce or (lambda obj: obj)
        self._log = log or logging.getLogger("lanes.dev.mesh")
        self._stopping = threading.Event()
        self._response: Any = None

    def objects(self) -> list[Obj]:
        """A snapshot of the store, in key order."""
        with self.lock:
            return [self.store[k] for k in sorted(self.store)]

    def run(self) -> None:
        """Until `stop()`: list, then watch from the list's resourceVersion; again on failure."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                version = self._list()
                backoff = 0.2
                while not self._stopping.is_set():
                    version = self._watch(version)
            except _Expired:
                continue
            except Exception as error:  # noqa: BLE001 (any failure means: list again)
                if self._stopping.is_set():
                    return
                self._log.warning("watch of %s failed, listing again in %.1fs: %s",
                                  self.resource.plural, backoff, error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def stop(self) -> None:
        self._stopping.set()
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _get(self, timeout: Any, **query: Any) -> Any:
        resource = self.resource
        if resource.group:
            call = client.CustomObjectsApi(self.api).list_cluster_custom_object
            args: tuple[str, ...] = (resource.group, resource.version, resource.plural)
        else:
            call = getattr(client.CoreV1Api(self.api), f"list_{_SINGULAR[resource.plural]}_for_all_namespaces")
            args = ()
        return call(*args, **query, _preload_content=False, _request_timeout=timeout)

    def _list(self) -> str:
        response = self._get(30)
        listing = json.loads(response.data)
        items = {}
        for item in listing.get("items") or []:
            item.setdefault("apiVersion", self.resource.api_version)
            item.setdefault("kind", self.resource.kind)
            items[key_of(item)] = self._reduce(item)
        with self.lock:
            self.store = items
            self.relists += 1
        self.synced.set()
        self._on_change()
        return listing["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> str:
        response = self._get(
            (10, WATCH_TIMEOUT_S + 30), watch=True, resource_version=version,
            allow_watch_bookmarks=True, timeout_seconds=WATCH_TIMEOUT_S,
        )
        self._response = response
        try:
            if self._stopping.is_set():
                return version
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                version = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                with self.lock:
                    if kind == "DELETED":
                        self.store.pop(key_of(obj), None)
                    else:
                        self.store[key_of(obj)] = self._reduce(obj)
                self._on_change()
        finally:
            self._response = None
            response.close()
            response.release_conn()
        return version
