"""Watches the benchmarks time against: the latest object of each key, and a wait on them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from kubernetes import watch


class Latest:
    """Follows list calls in daemon threads, keeping the latest object by `key`.

    `wait` returns the monotonic time a predicate was first seen to hold, which is what the
    benchmarks measure against.
    """

    def __init__(self, what: str, timeout: float):
        self.latest: dict[Hashable, Any] = {}
        self.changed = threading.Condition()
        self._what, self._timeout = what, timeout
        self._streams: list[watch.Watch] = []
        self._stopped = False

    def follow(self, key: Callable[[Any], Hashable], list_call: Callable[..., Any], *args: Any) -> None:
        """Watch `list_call(*args)` from now on, storing each object under `key(obj)`."""
        stream = watch.Watch()
        self._streams.append(stream)
        threading.Thread(target=self._follow, args=(stream, key, list_call, args), daemon=True).start()

    def _follow(self, stream: watch.Watch, key: Callable[[Any], Hashable], list_call: Callable[..., Any],
                args: tuple[Any, ...]) -> None:
        try:
            for event in stream.stream(list_call, *args):
                obj = event["object"]
                with self.changed:
                    if event["type"] == "DELETED":
                        self.latest.pop(key(obj), None)
                    else:
                        self.latest[key(obj)] = obj
                    self.changed.notify_all()
        except Exception:
            if not self._stopped:
                raise

    def wait(self, predicate: Callable[[dict], bool], timeout: float | None = None) -> float:
        """Block until `predicate(latest)` holds; the monotonic time it was first seen to hold."""
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        with self.changed:
            while not predicate(self.latest):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._what)
                self.changed.wait(remaining)
            return time.monotonic()

    def stop(self) -> None:
        self._stopped = True
        for stream in self._streams:
            stream.stop()
