"""List-then-watch of one resource as plain dicts, relisting after expiry or any error.

The local node and the local mesh both follow pods (the mesh also Istio objects and services)
without kopf. The kubernetes client's `Watch` raises on an expired resourceVersion when asked
for raw dicts, so the loop is written here once; `stop()` shuts the socket down so a blocked
read returns at once instead of at the watch's timeout. It lives in `lanes.dev` rather than
`lanes.kube` because only these dev tools read the API server this way: the operator watches
through kopf.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

WATCH_TIMEOUT_S = 240

Obj = dict[str, Any]
ListCall = Callable[..., Any]


class _Expired(Exception):
    """The resourceVersion is too old (HTTP 410); only a fresh list helps."""


class ListWatchLoop:
    """Feeds each full listing to `on_list` and every later change to `on_event`.

    `list_call` is a kubernetes client `list_*` method with its own arguments bound; the loop
    adds the watch and transport arguments. `what` names the watch in log lines.
    """

    def __init__(
        self,
        list_call: ListCall,
        *,
        on_list: Callable[[list[Obj]], None],
        on_event: Callable[[str, Obj], None],
        what: str,
        log: logging.Logger,
        backoff: tuple[float, float],
    ) -> None:
        self._list_call = list_call
        self._on_list, self._on_event = on_list, on_event
        self._what, self._log = what, log
        self._first_backoff, self._max_backoff = backoff
        self._stopping = threading.Event()
        self._response: Any = None

    def run(self) -> None:
        """Until `stop()`: list, then watch from the listing's resourceVersion; again on failure."""
        backoff = self._first_backoff
        while not self._stopping.is_set():
            try:
                listing = json.loads(self._list_call(_preload_content=False, _request_timeout=30).data)
                self._on_list(listing.get("items") or [])
                version = listing["metadata"]["resourceVersion"]
                backoff = self._first_backoff
                while not self._stopping.is_set():
                    version = self._watch(version)
            except _Expired:
                continue
            except Exception as error:  # noqa: BLE001 (any failure means: list again)
                if self._stopping.is_set():
                    return
                self._log.warning("%s failed, listing again in %.1fs: %s", self._what, backoff, error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def stop(self) -> None:
        self._stopping.set()
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _watch(self, version: str) -> str:
        response = self._list_call(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
            _preload_content=False,
            _request_timeout=(10, WATCH_TIMEOUT_S + 30),
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
                if kind != "BOOKMARK":
                    self._on_event(kind, obj)
        finally:
            self._response = None
            response.close()
            response.release_conn()
        return version
