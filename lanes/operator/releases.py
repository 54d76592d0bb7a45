"""The reconcile steps both release controllers (`rollouts`, `lanereleases`) run the same way:
plan and call out, write the status at the resourceVersion planned from, post the events."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from lanes.kube.objects import error_message
from lanes.rollout import Event

from .checks import AnalysisSettings
from .scheduler import RequeuingQueue

log = logging.getLogger("lanes.operator.releases")


class Asking(Protocol):
    """A plan that may ask the operator to read a check or call webhooks first."""

    @property
    def asks(self) -> bool: ...


P = TypeVar("P", bound=Asking)
O = TypeVar("O")


def plan_and_call_out(plan: Callable[[O], P], observed: O, call_out: Callable[[P, O], O]) -> P:
    """Plan; when the plan asks for a check or webhooks, make the calls (`call_out` gives the
    observation with their answers) and plan again from it, at the same `now`. The operator
    carries out that second plan, never the one that asked."""
    first = plan(observed)
    return plan(call_out(first, observed)) if first.asks else first


def parse_all(bodies: list[dict], model: type) -> list[Any]:
    """The bodies that parse; one that does not is reported on its own object, and holds
    nothing here."""
    parsed = []
    for body in bodies:
        try:
            parsed.append(model.model_validate(body))
        except ValidationError:
            continue
    return parsed


def conflicted(write: Callable[[], object]) -> bool:
    """Make a write guarded by a resourceVersion; True when the object changed since it was
    read (409), so the reconcile plans again at once from a fresh read."""
    try:
        write()
    except ApiException as error:
        if error.status == 409:
            return True
        raise
    return False


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


class ReleaseQueue(RequeuingQueue):
    """A release controller's queue: each release reconciled alone, now, from fresh reads,
    by the controller's `reconcile(api, namespace, name, now, settings)`."""

    def __init__(self, api: Any, reconcile: Callable[..., float | None], workers: int,
                 settings: AnalysisSettings | None = None):
        super().__init__(self.reconcile_one, workers=workers, describe=error_message)
        self.api = api
        self.settings = settings or AnalysisSettings.from_env()
        self._release_reconcile = reconcile

    def reconcile_one(self, namespace: str, name: str) -> float | None:
        """One reconcile of one release, now."""
        return self._release_reconcile(self.api, namespace, name, datetime.now(UTC), self.settings)
