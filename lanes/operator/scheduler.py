"""Coalescing work queue: many triggers for one group become one reconcile, soon.

Events arrive in bursts (a Deployment's pods turn Ready one by one, our own writes echo back
as watch events). Each key waits a short debounce in the queue, collecting further triggers;
a key is never worked on twice at once, and a trigger that arrives while it runs queues
exactly one more run. Failures retry with exponential backoff.

Background work (the periodic full check of every group) has its own queue and one worker:
it never runs more than one key at a time, and a key an event triggers meanwhile moves to the
front, so a resync of many groups cannot hold up the reconcile a pod event asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("lanes.operator")

Work = Callable[[str, bool], Awaitable[object]]
Describe = Callable[[BaseException], str]


class Scheduler:
    """Runs `work(key, force)` for triggered keys on a few worker tasks."""

    def __init__(
        self,
        work: Work,
        *,
        workers: int = 4,
        debounce: float = 0.02,
        backoff: tuple[float, float] = (0.5, 30.0),
        describe: Describe = str,
    ):
        self.work = work
        self.workers = workers
        self.debounce = debounce
        self.backoff = backoff
        self.describe = describe
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._later: asyncio.Queue[str] = asyncio.Queue()
        # Queued keys, each True when it waits in the background queue only.
        self._queued: dict[str, bool] = {}
        self._running: set[str] = set()
        self._again: dict[str, bool] = {}
        self._force: set[str] = set()
        self._failures: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []
        self._retries: dict[str, asyncio.TimerHandle] = {}

    def trigger(self, key: str, *, force: bool = False, background: bool = False) -> None:
        """Ask for `key` to be worked on; `force` asks for a full check, not a shortcut.

        `background` work waits behind every other and runs one key at a time.
        """
        if force:
            self._force.add(key)
        if key in self._running:
            self._again[key] = self._again.get(key, True) and background
        elif key not in self._queued or (self._queued[key] and not background):
            self._queued[key] = background
            (self._later if background else self._queue).put_nowait(key)

    @property
    def busy(self) -> bool:
        """True while anything is queued or running."""
        return bool(self._queued or self._running)

    def start(self) -> None:
        """Start the workers on the running loop."""
        self._tasks = [
            asyncio.create_task(self._worker(self._queue, False), name=f"lanes-worker-{i}")
            for i in range(self.workers)
        ]
        self._tasks.append(asyncio.create_task(self._worker(self._later, True), name="lanes-background"))

    async def stop(self) -> None:
        """Cancel workers and pending retries, waiting for the workers to end."""
        for handle in self._retries.values():
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _worker(self, queue: asyncio.Queue[str], background: bool) -> None:
        while True:
            key = await queue.get()
            if self._queued.get(key) is not background:
                continue  # moved to the front meanwhile, and taken from there
            if self.debounce:
                await asyncio.sleep(self.debounce)
            if key in self._running or self._queued.get(key) is not background:
                continue
            del self._queued[key]
            self._running.add(key)
            force = key in self._force
            self._force.discard(key)
            try:
                await self.work(key, force)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                delay = self._retry(key)
                log.warning("reconciling %s failed, retrying in %.1fs: %s", key, delay, self.describe(error))
                log.debug("reconciling %s failed", key, exc_info=True)
            finally:
                self._running.discard(key)
            if key in self._again:
                self.trigger(key, background=self._again.pop(key))

    def _retry(self, key: str) -> float:
        count = self._failures.get(key, 0)
        self._failures[key] = count + 1
        first, cap = self.backoff
        delay = min(first * 2**count, cap)
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._retries.pop(key, None)
            self.trigger(key, force=True)

        old = self._retries.pop(key, None)
        if old is not None:
            old.cancel()
        self._retries[key] = loop.call_later(delay, fire)
        return delay


class RequeuingQueue:
    """A Scheduler of keys whose reconcile says when to run again.

    What a reconcile needs from the event loop (a snapshot of the watches' store) is taken
    there by `prepare`; the reconcile itself (`run`) runs in a thread and returns None (only a
    change will move the object), 0 (run again at once) or seconds until a pause, check or
    deadline is due, kept as one timer per key so a new trigger replaces it.
    """

    def __init__(self, workers: int = 4, describe: Describe = str, *, debounce: float = 0.02):
        self.scheduler = Scheduler(self.work, workers=workers, debounce=debounce, describe=describe)
        self.timers: dict[str, asyncio.TimerHandle] = {}

    def start(self) -> None:
        """Start the workers on the running loop."""
        self.scheduler.start()

    async def stop(self) -> None:
        """Cancel timers and workers."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        await self.scheduler.stop()

    def prepare(self, key: str) -> Any:
        """What `run` needs from the event loop, taken there (by default, the key itself)."""
        return key

    def run(self, prepared: Any, force: bool) -> float | None:
        """One reconcile, in a worker thread; returns when to run again."""
        raise NotImplementedError

    async def work(self, key: str, force: bool) -> None:
        """Reconcile in a worker thread, then schedule the next run if one is due."""
        prepared = self.prepare(key)
        again = await asyncio.to_thread(self.run, prepared, force)
        old = self.timers.pop(key, None)
        if old is not None:
            old.cancel()
        if again is None:
            return
        if again <= 0:
            self.scheduler.trigger(key)
            return
        self.timers[key] = asyncio.get_running_loop().call_later(again, self._fire, key)

    def _fire(self, key: str) -> None:
        self.timers.pop(key, None)
        self.scheduler.trigger(key)
