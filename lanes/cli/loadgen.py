"""The load a `kubectl lane loadtester` generates: what a webhook's metadata asks for, and running it.

A Flagger load tester runs the shell command a webhook's `metadata.cmd` names. Lanes never
runs a command taken from a payload: the metadata describes the load with fields of its own,
each checked and bounded, and the load is made here with httpx:

    url          http://... (plain http only: the in-mesh address of the canary)
    rps          requests per second, 1..1000 (default 10)
    duration     a Go duration, up to 10m (e.g. "30s", "1m")
    concurrency  requests in flight at most, 1..64 (default 2)
    headers      "name: value" lines, or a JSON object of names to values
    method       GET (the only one offered: load must not change what it tests)

An error from parsing names the field, so the webhook's failure message says what to fix.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import TypeAdapter, ValidationError

from lanes.api.analysis import Duration, seconds

log = logging.getLogger("lanes.loadtester")

FIELDS = ("url", "rps", "duration", "concurrency", "headers", "method")
DEFAULT_RPS = 10
MAX_RPS = 1000
DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 64
MAX_DURATION_S = 600.0
MAX_HEADERS = 32
REQUEST_TIMEOUT_S = 5.0
_DURATION = TypeAdapter(Duration)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_INTEGER = re.compile(r"^[0-9]{1,7}$")


class LoadError(ValueError):
    """Metadata that does not describe a load; `field` names the metadata key at fault."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"metadata.{field_name}: {problem}")
        self.field = field_name


@dataclass(frozen=True)
class LoadSpec:
    """One load, checked: GET `url` at `rps` for `duration_s`, at most `concurrency` at once."""

    url: str
    rps: int
    duration: str
    duration_s: float
    concurrency: int
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def total(self) -> int:
        """How many requests the load sends when the target keeps up: rps x duration."""
        return max(1, round(self.rps * self.duration_s))


def parse_load(metadata: Mapping[str, Any]) -> LoadSpec:
    """The load a webhook's metadata describes; LoadError naming the first field at fault.

    Unknown keys are refused rather than ignored, so a misspelt `rps` is not silently 10.
    """
    unknown = sorted(set(metadata) - set(FIELDS))
    if unknown:
        raise LoadError(unknown[0], f"unknown field; the load is described by {', '.join(FIELDS)}")
    _method(metadata.get("method", "GET"))
    duration, duration_s = _duration(metadata.get("duration"))
    return LoadSpec(
        url=_url(metadata.get("url")),
        rps=_bounded("rps", metadata.get("rps", DEFAULT_RPS), MAX_RPS),
        duration=duration,
        duration_s=duration_s,
        concurrency=_bounded(
            "concurrency", metadata.get("concurrency", DEFAULT_CONCURRENCY), MAX_CONCURRENCY
        ),
        headers=_headers(metadata.get("headers", "")),
    )


def _url(value: Any) -> str:
    """An http:// URL with a host: the load is aimed at a service, not at a file or a scheme."""
    if value is None:
        raise LoadError("url", "missing; give the http:// URL to load")
    if not isinstance(value, str) or any(c.isspace() for c in value):
        raise LoadError("url", f"{value!r} is not a URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise LoadError("url", f"{value!r} is not a URL") from None
    if parts.scheme != "http" or not parts.hostname:
        raise LoadError("url", f"{value!r} is not an http:// URL with a host")
    return value


def _bounded(name: str, value: Any, most: int) -> int:
    """A whole number in 1..`most`, given as a number or as digits (webhook metadata is strings)."""
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise LoadError(name, f"{value!r} is not a whole number")
    if not 1 <= number <= most:
        raise LoadError(name, f"{number} is not between 1 and {most}")
    return number


def _duration(value: Any) -> tuple[str, float]:
    """A Go duration up to 10m: long loads belong to a load-testing tool, not a webhook."""
    if value is None:
        raise LoadError("duration", "missing; give a duration like 30s or 1m")
    try:
        text = _DURATION.validate_python(value)
    except ValidationError:
        raise LoadError("duration", f"{value!r} is not a duration like 30s, 1m or 1m30s") from None
    length = seconds(text)
    if length > MAX_DURATION_S:
        raise LoadError("duration", f"{text} is longer than 10m")
    return text, length


def _method(value: Any) -> None:
    """Only GET: a load test must not write to the service it tests."""
    if value != "GET":
        raise LoadError("method", f"{value!r} is not offered; only GET")


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    """Request headers from "name: value" lines or a JSON object (given as a string or not)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise LoadError("headers", f"not a JSON object: {error.msg}") from None
    if isinstance(value, Mapping):
        pairs = [(k, v) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = [_header_line(line) for line in value.splitlines() if line.strip()]
    else:
        raise LoadError("headers", f"{value!r} is neither header lines nor a mapping")
    if len(pairs) > MAX_HEADERS:
        raise LoadError("headers", f"{len(pairs)} headers, more than {MAX_HEADERS}")
    return tuple(_header(name, val) for name, val in pairs)


def _header_line(line: str) -> tuple[str, str]:
    """One "name: value" line."""
    name, colon, val = line.partition(":")
    if not colon:
        raise LoadError("headers", f"{line.strip()!r} is not a 'name: value' line")
    return name.strip(), val.strip()


def _header(name: Any, value: Any) -> tuple[str, str]:
    """A header whose name is an HTTP token and whose value is one line of text."""
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise LoadError("headers", f"{name!r} is not a header name")
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise LoadError("headers", f"the value of {name!r} is not one line of text")
    return name, value


@dataclass
class Load:
    """One running load: `spec` sent for the rollout `namespace`/`name`, counted as it goes.

    Requests are paced by a schedule (request i is due at start + i / rps), shared by
    `concurrency` workers, so a slow answer delays only its worker. A request whose time
    comes after the duration is over is not sent: the load never outlasts its duration by
    more than one request's timeout.
    """

    namespace: str
    name: str
    spec: LoadSpec
    requests: int = 0
    errors: int = 0
    started: float = field(default_factory=time.time)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0
    _done: threading.Event = field(default_factory=threading.Event)
    _stopped_early: bool = False

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self) -> None:
        """Start the load in the background and log it."""
        log.info(
            "load started for %s/%s: GET %s at %d rps for %s, concurrency %d",
            self.namespace, self.name, self.spec.url, self.spec.rps, self.spec.duration,
            self.spec.concurrency,
        )
        threading.Thread(target=self._run, name=f"load-{self.namespace}-{self.name}",
                         daemon=True).start()

    def stop(self) -> None:
        """Stop sending (a replacement or shutdown); requests in flight finish on their own."""
        self._stopped_early = not self._done.is_set()
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the load is over; whether it is."""
        return self._done.wait(timeout)

    def snapshot(self) -> dict[str, Any]:
        """The load as `GET /status` shows it."""
        with self._lock:
            requests, errors = self.requests, self.errors
        return {
            "namespace": self.namespace, "name": self.name, "url": self.spec.url,
            "rps": self.spec.rps, "duration": self.spec.duration,
            "concurrency": self.spec.concurrency, "running": self.running,
            "requests": requests, "errors": errors,
        }

    def _run(self) -> None:
        """Run the workers to the end, then log the counts."""
        begin = time.monotonic()
        limits = httpx.Limits(max_connections=self.spec.concurrency)
        with httpx.Client(trust_env=False, follow_redirects=False, limits=limits,
                          timeout=REQUEST_TIMEOUT_S, headers=list(self.spec.headers)) as client:
            workers = [
                threading.Thread(target=self._work, args=(client, begin), daemon=True)
                for _ in range(self.spec.concurrency)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        self._done.set()
        log.info(
            "load %s for %s/%s: %d requests, %d errors",
            "replaced" if self._stopped_early else "finished",
            self.namespace, self.name, self.requests, self.errors,
        )

    def _work(self, client: httpx.Client, begin: float) -> None:
        """Send the requests this worker takes from the schedule until none is left."""
        while (due := self._take(begin)) is not None:
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            if time.monotonic() - begin > self.spec.duration_s:
                return
            self._count(self._send(client))

    def _take(self, begin: float) -> float | None:
        """The time the next request is due, or None when the schedule is used up or stopped."""
        with self._lock:
            if self._stop.is_set() or self._next >= self.spec.total:
                return None
            index, self._next = self._next, self._next + 1
        return begin + index / self.spec.rps

    def _send(self, client: httpx.Client) -> bool:
        """One GET; whether it failed as the success-rate metric counts it (no answer or 5xx)."""
        try:
            return client.get(self.spec.url).status_code >= 500
        except httpx.HTTPError:
            return True

    def _count(self, failed: bool) -> None:
        with self._lock:
            self.requests += 1
            self.errors += int(failed)


class Loads:
    """The loads by rollout (namespace, name): a new one for a rollout replaces its running one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loads: dict[tuple[str, str], Load] = {}

    def start(self, namespace: str, name: str, spec: LoadSpec) -> Load:
        """Start `spec` for the rollout, stopping the load it had running."""
        load = Load(namespace, name, spec)
        with self._lock:
            previous = self._loads.get((namespace, name))
            self._loads[(namespace, name)] = load
        if previous is not None:
            previous.stop()
        load.start()
        return load

    def get(self, namespace: str, name: str) -> Load | None:
        """The rollout's latest load, running or over."""
        with self._lock:
            return self._loads.get((namespace, name))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every rollout's latest load, ordered by namespace and name."""
        with self._lock:
            loads = [self._loads[key] for key in sorted(self._loads)]
        return [load.snapshot() for load in loads]

    def stop_all(self) -> None:
        """Stop every load, for shutdown."""
        with self._lock:
            loads = list(self._loads.values())
        for load in loads:
            load.stop()
