"""The page's view of the cluster, kept by watches on the API server, and its buttons.

One thread per kind lists it, then watches from that list's resourceVersion, so a change
reaches the page as the API server sends it (no polling); an expired watch lists again. Every
read uses the user's kubeconfig, so the page sees what `kubectl` would: a kind RBAC hides is
reported on the page, not fatal. The buttons go through `lanes.cli.intents.send_intent`, the
verbs' own check-then-request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from lanes.cli.intents import RELEASE, ROLLOUT, Refused, send_intent
from lanes.kube.kinds import LANERELEASE, SWIMLANE, SWIMLANEGROUP, WORKLOADROLLOUT, Kind
from lanes.kube.objects import error_message

from .views import snapshot

log = logging.getLogger(__name__)

INTENTS = frozenset({"approve", "pause", "resume", "undo"})
WATCH_TIMEOUT_S = 300
RETRY_S = 2.0


@dataclass(frozen=True)
class Watched:
    """One kind the page shows, and how to list it."""

    name: str
    kind: Kind | None


WATCHED = (
    Watched("groups", SWIMLANEGROUP), Watched("lanes", SWIMLANE),
    Watched("rollouts", WORKLOADROLLOUT), Watched("releases", LANERELEASE),
    Watched("events", None),
)


def _key(body: dict[str, Any]) -> str:
    metadata = body.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


class ClusterView:
    """Live copies of groups, lanes, rollouts, releases and their events.

    `version` rises with every change; `wait_change(seen)` blocks until it passes `seen`.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.version = 0
        self.objects: dict[str, dict[str, dict[str, Any]]] = {w.name: {} for w in WATCHED}
        self.problems: dict[str, str] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> ClusterView:
        """Start one watching thread per kind."""
        for watched in WATCHED:
            thread = threading.Thread(target=self._keep, args=(watched,), daemon=True,
                                      name=f"watch-{watched.name}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop watching (threads end at their next event or timeout)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    def _lister(self, watched: Watched) -> Callable[..., Any]:
        if watched.kind is None:
            return client.CoreV1Api(self.api).list_event_for_all_namespaces
        kind = watched.kind
        custom = client.CustomObjectsApi(self.api)

        def list_kind(**options: Any) -> Any:
            return custom.list_cluster_custom_object(kind.group, kind.version, kind.plural,
                                                     **options)
        return list_kind

    def _keep(self, watched: Watched) -> None:
        lister = self._lister(watched)
        while not self._stop.is_set():
            try:
                listed = self.api.sanitize_for_serialization(lister())
                items = {_key(item): item for item in listed.get("items") or []}
                self._replace(watched.name, items, None)
                version = (listed.get("metadata") or {}).get("resourceVersion")
                stream = watch.Watch()
                for event in stream.stream(lister, resource_version=version,
                                           timeout_seconds=WATCH_TIMEOUT_S):
                    if self._stop.is_set():
                        stream.stop()
                        return
                    body = event["object"]
                    if not isinstance(body, dict):
                        body = self.api.sanitize_for_serialization(body)
                    if event["type"] == "ERROR":
                        break
                    self._apply(watched.name, event["type"], body)
            except ApiException as error:
                self._replace(watched.name, None, f"{watched.name}: {error_message(error)}")
                self._stop.wait(RETRY_S)
            except Exception as error:  # noqa: BLE001 - shown on the page, then retried
                log.debug("watching %s", watched.name, exc_info=True)
                self._replace(watched.name, None, f"{watched.name}: {error_message(error)}")
                self._stop.wait(RETRY_S)

    def _replace(self, name: str, items: dict[str, dict[str, Any]] | None,
                 problem: str | None) -> None:
        with self._changed:
            if items is not None:
                self.objects[name] = items
            if problem is None:
                self.problems.pop(name, None)
            else:
                self.problems[name] = problem
            self.version += 1
            self._changed.notify_all()

    def _apply(self, name: str, kind: str, body: dict[str, Any]) -> None:
        with self._changed:
            if kind == "DELETED":
                self.objects[name].pop(_key(body), None)
            else:
                self.objects[name][_key(body)] = body
            self.version += 1
            self._changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> int:
        """The version once it passes `seen`, or the same after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > seen or self._stop.is_set(), timeout)
            return self.version

    def snapshot(self) -> dict[str, Any]:
        """What the page shows now."""
        with self._changed:
            current = {name: list(items.values()) for name, items in self.objects.items()}
            problems = sorted(self.problems.values())
            version = self.version
        view = snapshot(current["groups"], current["lanes"], current["rollouts"],
                        current["releases"], current["events"], problems)
        return {"version": version, **view}

    def act(self, intent: str, kind: str, namespace: str, name: str) -> str:
        """Carry out a button as its verb does; what a granted request says.

        Raises:
            Refused: the verb's refusal, or the API server's message (RBAC's included).
        """
        if intent not in INTENTS:
            raise Refused(f"{intent!r} is not an action here; known: {', '.join(sorted(INTENTS))}")
        target = {"lanerelease": RELEASE, "rollout": ROLLOUT}.get(kind)
        if target is None:
            raise Refused(f"{kind!r} is not a kind of release; known: lanerelease, rollout")
        return send_intent(intent, target, namespace, name, self.api)  # type: ignore[arg-type]
