"""The peer controller: ASM's swimlanes and Kruise's Rollouts served as they are (opt-in).

On the controller shape: read the peer object -> (no finalizer: what it serves is owned by it,
so the garbage collector deletes that with it) -> read the lanes.dev object served for it ->
`plan_serving` -> apply or delete it -> the peer's status in its own layout. The controllers
that run lanes' own kinds then run the served object; its status changes trigger the peer's
reconcile (by its `lanes.dev/served-from` label and ownerReference), so the peer's status
follows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf

from lanes.api.common import GROUP, VERSION
from lanes.importers.served import (
    PEER_KINDS,
    SERVED_LABEL,
    PeerKind,
    ServingPlan,
    owner_of_served,
    parse_peer_key,
    peer_key,
    plan_serving,
)
from lanes.kube.peers import OURS, PeersApi

from .controller import Controller, Done

log = logging.getLogger("lanes.operator.peers")


@dataclass(frozen=True)
class Read:
    """A peer object as read, and its kind."""

    kind: PeerKind
    body: dict[str, Any]


class PeerController(Controller[Read, Read, "dict | None", ServingPlan]):
    """Serves each peer object through the lanes.dev object it converts into."""

    def __init__(self, api: PeersApi, *, workers: int = 2):
        super().__init__(workers=workers)
        self.api = api

    def read(self, prepared: str, force: bool) -> Read | Done:
        kind, namespace, name = parse_peer_key(prepared)
        body = self.api.peer(kind, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Done()
        return Read(kind, body)

    def finalize(self, state: Read) -> Read:
        return state

    def validate(self, state: Read) -> Read:
        return state

    def observe(self, valid: Read) -> dict | None:
        metadata = valid.body["metadata"]
        return self.api.served(valid.kind, metadata.get("namespace"), metadata["name"])

    def plan(self, valid: Read, seen: dict | None) -> ServingPlan:
        return plan_serving(valid.body, seen, OURS)

    def carry_out(self, valid: Read, plan: ServingPlan) -> None:
        if plan.apply is not None:
            self.api.apply_served(valid.kind, plan.apply)
        if plan.delete:
            served = self.observe(valid)
            if served is not None:
                self.api.delete_served(valid.kind, served)
                log.info("%s %s: its own controller runs it; deleted what lanes served for it",
                         valid.kind.kind, valid.body["metadata"]["name"])

    def status(self, valid: Read, plan: ServingPlan) -> float | None:
        if plan.status is not None:
            self.api.write_status(valid.kind, valid.body, plan.status)
        return None

    def on_peer(self, kind: PeerKind, namespace: str | None, name: str) -> None:
        """A peer object was listed, changed or deleted."""
        self.trigger(peer_key(kind, namespace, name))

    def on_served(self, body: Any) -> None:
        """A served lanes.dev object changed (its status, say): its peer's status may follow."""
        key = owner_of_served(body)
        if key is not None:
            self.trigger(key)


def register(registry: kopf.OperatorRegistry, peers: PeerController) -> kopf.OperatorRegistry:
    """Add the peer handlers to `registry`, each bound to `peers`; install the peer kinds'
    CRDs the cluster lacks first, so the watches find them."""

    async def peer_crds_startup(**_: Any) -> None:
        """Install the CRDs of the peer kinds the cluster has none of."""
        for name in peers.api.install_crds():
            log.info("installed CustomResourceDefinition %s", name)

    kopf.on.startup(registry=registry, id="peer_crds_startup")(peer_crds_startup)
    for kind in PEER_KINDS:
        kopf.on.event(kind.group, kind.version, kind.plural, registry=registry,
                      id=f"peer_{kind.plural}")(_peer_event(peers, kind))

    async def served_event(body: kopf.Body, **_: Any) -> None:
        """A served lanes.dev object changed."""
        peers.on_served(body)

    for plural in sorted({k.served_plural for k in PEER_KINDS}):
        kopf.on.event(GROUP, VERSION, plural, registry=registry, id=f"served_{plural}",
                      labels={SERVED_LABEL: kopf.PRESENT})(served_event)
    return registry


def _peer_event(peers: PeerController, kind: PeerKind) -> Any:
    """The event handler of one peer kind."""

    async def peer_event(namespace: str | None, name: str, **_: Any) -> None:
        """A peer object was listed, changed or deleted."""
        peers.on_peer(kind, namespace if kind.namespaced else None, name)

    return peer_event
