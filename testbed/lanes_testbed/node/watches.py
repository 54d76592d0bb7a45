"""The node's pod watches: a full listing to `on_sync`, every later change to `on_event`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client

from lanes_testbed.listwatch import ListWatchLoop

_MAX_BACKOFF_S = 10.0

Pod = dict[str, Any]


class PodWatch(ListWatchLoop):
    """List-then-watch of the pods the selectors pick, across all namespaces."""

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
        selectors: dict[str, str] = {"field_selector": field_selector}
        if label_selector:
            selectors["label_selector"] = label_selector
        super().__init__(
            functools.partial(client.CoreV1Api(api).list_pod_for_all_namespaces, **selectors),
            on_list=on_sync, on_event=on_event, what=f"pod watch ({field_selector})", log=log,
            backoff=(0.5, _MAX_BACKOFF_S),
        )
