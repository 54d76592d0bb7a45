"""What both release controllers (`rollouts`, `lanereleases`) do alike, on the controller shape:
read the release fresh, hold or release it by lanes' finalizer, call out for the checks and
webhooks a plan asks for (the shape then plans again), write the status at the resourceVersion
planned from, post the events."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from kubernetes.client.exceptions import ApiException

from lanes.kube.objects import error_message
from lanes.rollout import Event

from .checks import AnalysisSettings
from .controller import Controller, Done

log = logging.getLogger("lanes.operator.releases")

M = TypeVar("M")
S = TypeVar("S")
P = TypeVar("P")


class Posting(Protocol):
    """The one call `post_events` makes of an API."""

    def post_event(self, body: Mapping[str, Any], event: Event) -> None: ...


def post_events(api: Posting, body: Mapping[str, Any], events: Iterable[Event],
                notify: Callable[[Event], None]) -> None:
    """Post each Event and send it to the release's event hooks; losing one must not fail a
    reconcile whose status is already written."""
    for event in events:
        try:
            api.post_event(body, event)
        except ApiException as error:
            log.warning("could not post event %s: %s", event.reason, error_message(error))
        notify(event)


@dataclass(frozen=True)
class Release(Generic[M]):
    """One release as read for one reconcile, planned at one `now`; `model` once it parses."""

    body: dict
    now: datetime
    model: M = None  # type: ignore[assignment]

    @property
    def namespace(self) -> str:
        return self.body["metadata"]["namespace"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    @property
    def status(self) -> dict:
        """The status stored when the release was read."""
        return self.body.get("status") or {}


class ReleaseController(Controller[Release, Release[M], S, P], Generic[M, S, P]):
    """A release kind's reconcile: keys `namespace/name`, each read fresh and planned at the
    clock's `now`; `release` says what a deleted release leaves behind."""

    def __init__(self, api: Any, *, workers: int = 4, settings: AnalysisSettings | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        super().__init__(workers=workers, describe=error_message)
        self.api = api
        self.settings = settings or AnalysisSettings.from_env()
        self.clock = clock

    def read(self, prepared: str, force: bool) -> Release | Done:
        """The release now; nothing to do once it is gone."""
        namespace, name = prepared.split("/", 1)
        body = self.api.get(namespace, name)
        return Done() if body is None else Release(body, self.clock())

    def finalize(self, read: Release) -> Release | Done:
        """Release what a deleted release held (`release`), else hold it by the finalizer."""
        if read.body["metadata"].get("deletionTimestamp"):
            return Done(self.release(read))
        return Release(self.api.add_finalizer(read.body), read.now)

    def release(self, read: Release) -> float | None:
        """Clean up after a release being deleted, then let it go; when to look again."""
        raise NotImplementedError

    def call_out(self, valid: Release[M], seen: S, plan: P) -> S | None:
        """When the plan asks for a check or webhooks, make the calls (`answer`); the shape
        then plans again from their answers at the same `now`, and carries out that plan,
        never the one that asked."""
        return self.answer(valid, seen, plan) if plan.asks else None  # type: ignore[attr-defined]

    def answer(self, valid: Release[M], seen: S, plan: P) -> S:
        """What was seen, with the answers of the check and webhooks `plan` asks for."""
        raise NotImplementedError

    def write_status(self, read: Release, wanted: dict) -> None:
        """Write `wanted` unless stored, at the resourceVersion read (a 409 plans again)."""
        if wanted != read.status:
            self.api.write_status(read.body, wanted)
