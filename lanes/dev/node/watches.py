"""List-then-watch of pods with plain dicts, relisting after expiry or any error.

The kubernetes client's `Watch` raises on an expired resourceVersion when asked for raw
dicts, so this small loop does the list/watch itself; `stop()` shuts the socket down so a
blocked read returns at once instead of at the watch's timeout.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client

WATCH_TIMEOUT_S = 240
_MAX_BACKOFF_S = 10.0

Pod = dict[str, Any]


class _Expired(Exception):
    """The resourceVersion is too old (HTTP 410); only a fresh list helps."""


class PodWatch:
    """Feeds a full listing to `on_sync` and every later change to `on_event`."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        field_selector: str,
        label_selector: str | None,
        on_sync: Callable[[list[Pod]], None],
        on_event: Callable[[str, Pod], None],
        log: logging.Logger,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._selectors: dict[str, str] = {"field_selector": field_selector}
        if label_selector:
            self._selectors["label_selector"] = label_selector
        self._on_sync, self._on_event, self._log = on_sync, on_event, log
        self._stopping = threading.Event()
        self._response: Any = None

    def run(self) -> None:
        """Until `stop()`: list, then watch from the listing's resourceVersion."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                listing = json.loads(self._core.list_pod_for_all_namespaces(
                    **self._selectors, _preload_content=False, _request_timeout=30).data)
                self._on_sync(listing.get("items") or [])
                version = listing["metadata"]["resourceVersion"]
                backoff = 0.5
                while not self._stopping.is_set():
                    version = self._watch(version)
            except _Expired:
                continue
            except Exception as error:  # noqa: BLE001 (any failure means: list again)
                if self._stopping.is_set():
                    return
                self._log.warning("pod watch (%s) failed, listing again in %.1fs: %s",
                                  self._selectors["field_selector"], backoff, error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _watch(self, version: str) -> str:
        response = self._core.list_pod_for_all_namespaces(
            **self._selectors,
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
