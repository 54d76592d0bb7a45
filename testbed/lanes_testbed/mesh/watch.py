"""List-then-watch of one resource across all namespaces, as plain dicts, relisting on any error.

The mesh needs a full, current picture of a few kinds rather than a stream of changes, so a
`ListWatch` keeps a store per kind: a list replaces it (which also forgets objects deleted
while the watch was down), and each watch event updates it; the loop itself is the one in
`lanes_testbed.listwatch` the local node uses too.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from lanes_testbed.listwatch import ListCall, ListWatchLoop, Obj

MAX_BACKOFF_S = 5.0

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
        self._loop = ListWatchLoop(
            self._list_call(), on_list=self._stored, on_event=self._changed,
            what=f"watch of {resource.plural}", log=log or logging.getLogger("lanes_testbed.mesh"),
            backoff=(0.2, MAX_BACKOFF_S),
        )

    def objects(self) -> list[Obj]:
        """A snapshot of the store, in key order."""
        with self.lock:
            return [self.store[k] for k in sorted(self.store)]

    def run(self) -> None:
        """Until `stop()`: list, then watch from the list's resourceVersion; again on failure."""
        self._loop.run()

    def stop(self) -> None:
        self._loop.stop()

    def _list_call(self) -> ListCall:
        resource = self.resource
        if resource.group:
            call = client.CustomObjectsApi(self.api).list_cluster_custom_object
            return functools.partial(call, resource.group, resource.version, resource.plural)
        return getattr(client.CoreV1Api(self.api), f"list_{_SINGULAR[resource.plural]}_for_all_namespaces")

    def _stored(self, items: list[Obj]) -> None:
        store = {}
        for item in items:
            item.setdefault("apiVersion", self.resource.api_version)
            item.setdefault("kind", self.resource.kind)
            store[key_of(item)] = self._reduce(item)
        with self.lock:
            self.store = store
            self.relists += 1
        self.synced.set()
        self._on_change()

    def _changed(self, kind: str, obj: Obj) -> None:
        with self.lock:
            if kind == "DELETED":
                self.store.pop(key_of(obj), None)
            else:
                self.store[key_of(obj)] = self._reduce(obj)
        self._on_change()
