"""One pod on the local node: its containers' processes, its address and its status.

Containers run independently, as under kubelet: one whose image the node does not know
waits with ErrImagePull and never runs, while the others do. A pod gets its loopback
address when it has a container that can run; init containers are not run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import replace
from functools import partial
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lanes_testbed.node.containers import MAX_BACKOFF_S, Container
from lanes_testbed.node.env import EnvError, Lookup, Source, container_env, expand
from lanes_testbed.node.images import ImageNotKnown, Program, image_id, program_for
from lanes_testbed.node.objects import Termination, pod_conditions, pod_phase, pod_status, rfc3339
from lanes_testbed.node.probes import probe_for

NamespacedLookup = Callable[[str, Source, str], Mapping[str, str] | None]
# The env giving a pod its ServiceAccount identity, given the pod and its own directory.
Identity = Callable[[Mapping[str, Any], Path], Mapping[str, str]]

DEFAULT_PORT = 8000
DEFAULT_GRACE_S = 30.0


class PodRun:
    """The processes of one pod, keyed by its uid, driven by the node's sync thread."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        *,
        host_ip: str,
        log_dir: Path,
        base_env: Mapping[str, str],
        node_env: Mapping[str, str],
        identity: Identity | None = None,
    ) -> None:
        metadata = pod["metadata"]
        self.uid: str = metadata["uid"]
        self.namespace: str = metadata["namespace"]
        self.name: str = metadata["name"]
        self.pod: Mapping[str, Any] = pod
        self.ip: str | None = None
        self.host_ip = host_ip
        self.base_env, self.node_env = dict(base_env), dict(node_env)
        self.directory = log_dir / f"{self.namespace}_{self.name}_{self.uid}"
        self._identity = identity
        self._identity_env: Mapping[str, str] | None = None
        self.terminating = False
        self.gone = False
        self.written: dict[str, Any] | None = None
        self.start_time = _observed_start(pod) or datetime.now(UTC)
        self._since: dict[str, tuple[str, datetime]] = {}
        self.programs: dict[str, Program | None] = {}
        self.containers: list[Container] = []
        restart_policy = pod["spec"].get("restartPolicy", "Always")
        observed = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        for spec in pod["spec"]["containers"]:
            container = Container(
                name=spec["name"],
                image=spec.get("image", ""),
                image_id=image_id(spec.get("image", "")),
                restart_policy=restart_policy,
                probe=probe_for(spec, host_ip, serving_port(spec)),
                log_path=self.directory / f"{spec['name']}.log",
                restart_count=_adopted_restarts(observed.get(spec["name"])),
            )
            _adopt_ended(container, observed.get(spec["name"]))
            self._set_image(container, container.image)
            self.containers.append(container)

    def update(self, pod: Mapping[str, Any]) -> None:
        """Take a newer copy of the pod; a container whose image was changed in place is
        recreated with the new one, as kubelet does."""
        self.pod = pod
        images = {c["name"]: c.get("image", "") for c in pod["spec"]["containers"]}
        for container in self.containers:
            image = images.get(container.name, container.image)
            if image != container.image and not self.terminating:
                container.kill_now()
                container.stopping, container.restart_at = False, time.monotonic()
                self._set_image(container, image)

    def assign(self, ip: str) -> None:
        """Give the pod its address; readiness is then checked there."""
        self.ip = ip
        for container in self.containers:
            container.probe = replace(container.probe, host=ip)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def runnable(self) -> bool:
        """Whether any container has an image the node can run, so the pod needs an address."""
        return any(self.programs.values())

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self.containers if c.process is not None]

    @property
    def stopped(self) -> bool:
        return not any(c.running for c in self.containers)

    def tick(self, probes: Executor, lookup: NamespacedLookup) -> None:
        """Advance every container: notice exits, restart when due, probe readiness."""
        now = time.monotonic()
        for container in self.containers:
            container.tick(now, probes)
            due = container.restart_at is not None and now >= container.restart_at
            program = self.programs[container.name]
            if due and program is not None and not self.terminating and self.ip is not None:
                self._start(container, program, partial(lookup, self.namespace), now)

    def terminate(self) -> None:
        """The pod is being deleted: stop every container within the pod's grace period."""
        self.terminating = True
        self.halt(grace_period(self.pod))

    def halt(self, grace_s: float) -> None:
        """Stop every container without ending the pod, as when the node itself stops."""
        for container in self.containers:
            container.terminate(grace_s)

    def kill_now(self) -> None:
        """SIGKILL what is left after a graceful stop ran out of time."""
        for container in self.containers:
            container.kill_now()

    def status(self) -> dict[str, Any]:
        """The pod status to write, with condition times kept from when each last changed."""
        views = [c.view() for c in self.containers]
        restart_policy = self.pod["spec"].get("restartPolicy", "Always")
        phase = pod_phase(restart_policy, views, self.terminating and self.stopped)
        wanted = pod_conditions(self.pod, views, self.ip is not None, phase)
        now = datetime.now(UTC)
        conditions = []
        for kind, (state, reason, message) in wanted.items():
            previous = self._since.get(kind)
            if previous is None or previous[0] != state:
                self._since[kind] = previous = (state, now)
            condition = {"type": kind, "status": state, "lastTransitionTime": rfc3339(previous[1])}
            if reason:
                condition["reason"] = reason
            if message:
                condition["message"] = message
            conditions.append(condition)
        return pod_status(self.pod, views, conditions, phase=phase, pod_ip=self.ip,
                          host_ip=self.host_ip, start_time=self.start_time)

    def _set_image(self, container: Container, image: str) -> None:
        container.image, container.image_id, container.waiting = image, image_id(image), None
        try:
            self.programs[container.name] = program_for(image)
        except ImageNotKnown as error:
            self.programs[container.name] = None
            container.restart_at, container.image_id = None, ""
            container.waiting = ("ErrImagePull", str(error))

    def _start(self, container: Container, program: Program, lookup: Lookup, now: float) -> None:
        spec = next(c for c in self.pod["spec"]["containers"] if c["name"] == container.name)
        assert self.ip is not None
        try:
            own = container_env(self.pod, spec, pod_ip=self.ip, host_ip=self.host_ip, lookup=lookup)
            identity = self._identity_once()
        except EnvError as error:
            container.waiting = ("CreateContainerConfigError", str(error))
            container.restart_at = now + MAX_BACKOFF_S / 3
            return
        if program.takes_args:
            program = replace(program, argv=program.argv + container_args(spec, own))
        env = {
            **self.base_env,
            "HOSTNAME": self.name,
            **identity,
            **own,
            **program.env,
            **self.node_env,
            "POD_IP": self.ip,
            "PORT": str(serving_port(spec)),
        }
        container.start(program, env)

    def _identity_once(self) -> Mapping[str, str]:
        """The pod's identity, asked for once: every container and restart shares it."""
        if self._identity_env is None:
            self._identity_env = dict(self._identity(self.pod, self.directory)) if self._identity else {}
        return self._identity_env


def container_args(container: Mapping[str, Any], env: Mapping[str, str]) -> tuple[str, ...]:
    """The container's `args`, `$(VAR)` expanded from its own env as kubelet does."""
    return tuple(expand(str(arg), env) for arg in container.get("args") or [])


def serving_port(container: Mapping[str, Any]) -> int:
    """The port the program listens on: a literal PORT env, the first containerPort, or 8000."""
    for var in container.get("env") or []:
        if var.get("name") == "PORT" and str(var.get("value", "")).isdigit():
            return int(var["value"])
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else DEFAULT_PORT


def pod_ports(pod: Mapping[str, Any]) -> list[int]:
    return sorted({serving_port(c) for c in pod["spec"]["containers"]})


def grace_period(pod: Mapping[str, Any]) -> float:
    """The deletion's grace period, else the pod's terminationGracePeriodSeconds, else 30 s."""
    grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
    if grace is None:
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return float(DEFAULT_GRACE_S if grace is None else grace)


def _observed_start(pod: Mapping[str, Any]) -> datetime | None:
    raw = (pod.get("status") or {}).get("startTime")
    return _parse(raw) if raw else None


def _adopt_ended(container: Container, observed: Mapping[str, Any] | None) -> None:
    """A container that ended for good under an earlier node process stays ended: the API
    server refuses a status taking it from terminated back to running."""
    ended = ((observed or {}).get("state") or {}).get("terminated")
    if not ended:
        return
    code = int(ended.get("exitCode", 0))
    policy = container.restart_policy
    if policy == "Always" or (policy == "OnFailure" and code != 0):
        return
    container.ended = Termination(code, ended.get("reason", ""), _parse(ended.get("startedAt")),
                                  _parse(ended.get("finishedAt")), ended.get("containerID", ""))
    container.stopping, container.restart_at = True, None


def _parse(raw: str | None) -> datetime:
    if not raw:
        return datetime.now(UTC)
    return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _adopted_restarts(observed: Mapping[str, Any] | None) -> int:
    """A pod that ran under an earlier node process restarts, as after a kubelet restart."""
    if not observed:
        return 0
    return int(observed.get("restartCount", 0)) + (1 if observed.get("containerID") else 0)
