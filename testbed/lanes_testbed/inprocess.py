"""Run an operator inside this process and drive pods without a kubelet: for tests and benchmarks.

The local control plane has no kubelet, so nothing ever marks a pod Ready; `make_pod` and
`set_ready` write pod status the way a kubelet would. Unscheduled pods are deleted at once
by the API server, which lets a test remove a lane's pods instantly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

import kopf
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from lanes.operator.run import serve
from lanes.operator.runtime import Options, Runtime
from lanes.operator.wiring import wire

T = TypeVar("T")


class OperatorThread:
    """An operator running on a background thread, stopped on exit."""

    def __init__(self, options: Options, runtime: Runtime | None = None, memo: kopf.Memo | None = None):
        self.options = options
        self.operator = wire(options, runtime or Runtime(options))
        self.runtime = self.operator.runtime
        self.memo = memo if memo is not None else kopf.Memo()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="lanes-operator", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await serve(
                self.options, operator=self.operator, memo=self.memo,
                stop_flag=self._stop, ready_flag=self._ready,
            )

        try:
            asyncio.run(main())
        except BaseException as error:  # re-raised by stop()
            self._error = error
            self._ready.set()

    def __enter__(self) -> OperatorThread:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            self.stop()
            raise RuntimeError("the operator did not start within 60s")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop and join; re-raise what ended the operator abnormally."""
        self._stop.set()
        self._thread.join(60)
        if self._error is not None:
            raise self._error

    def trigger(self, group: str, force: bool = True) -> None:
        """Queue a reconcile from outside the operator's loop."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: self.runtime.trigger(group, force=force))

    @property
    def busy(self) -> bool:
        """Whether a reconcile of a group or of a rollout is queued or running."""
        return self.runtime.scheduler.busy or self.operator.rollouts.scheduler.busy

    def settle(self, quiet: float = 0.5, timeout: float = 30.0) -> None:
        """Wait until no reconcile has been queued or running for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        calm_since = None
        while time.monotonic() < deadline:
            if self.busy:
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            elif time.monotonic() - calm_since >= quiet:
                return
            time.sleep(0.02)
        raise TimeoutError(f"the operator kept working for {timeout}s")

    @property
    def writes(self) -> int:
        """API writes the operator made so far."""
        return self.runtime.api.write_count


def eventually(probe: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy; raise naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def rfc3339() -> str:
    """Now, as pod conditions record it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_pod(
    core: client.CoreV1Api, namespace: str, name: str, labels: Mapping[str, str], ready: bool = True
) -> None:
    """Create a pod with these labels and mark it Ready (or not), as a kubelet would."""
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1.0"}]},
        },
    )
    set_ready(core, namespace, name, ready)


def set_ready(core: client.CoreV1Api, namespace: str, name: str, ready: bool) -> None:
    """Write the pod's Ready condition."""
    value = "True" if ready else "False"
    core.patch_namespaced_pod_status(
        name,
        namespace,
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": value, "lastTransitionTime": rfc3339()},
                    {"type": "ContainersReady", "status": value, "lastTransitionTime": rfc3339()},
                ],
            }
        },
    )


def delete_pod(core: client.CoreV1Api, namespace: str, name: str) -> None:
    """Delete a pod at once (unscheduled pods need no grace period)."""
    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except ApiException as error:
        if error.status != 404:
            raise


class Background:
    """A daemon thread running `_run` for the length of a `with` block; `_run` polls `_stop`."""

    def __init__(self, name: str):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        raise NotImplementedError


class PodReadier(Background):
    """Marks each new pod of a namespace Ready, standing in for a kubelet."""

    def __init__(self, api: client.ApiClient, namespace: str):
        super().__init__("pod-readier")
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_namespaced_pod, self.namespace, timeout_seconds=2
                ):
                    if self._stop.is_set():
                        break
                    pod = event["object"]
                    if event["type"] != "DELETED" and not _ready(pod):
                        self._mark_ready(pod.metadata.name)
            except ApiException as error:
                if error.status not in (404, 410):
                    logging.getLogger(__name__).warning("pod watch: %s", error)
            finally:
                stream.stop()

    def _mark_ready(self, name: str) -> None:
        now = rfc3339()
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("Initialized", "ContainersReady", "Ready", "PodScheduled")
        ]
        try:
            self.core.patch_namespaced_pod_status(
                name, self.namespace,
                {"status": {"phase": "Running", "startTime": now, "conditions": conditions}},
            )
        except ApiException as error:
            if error.status != 404:
                raise


def _ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp:
        return True
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
