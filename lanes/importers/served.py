"""ASM's and Kruise's objects served as they are: what lanes writes for one, and its status.

With the operator's peer switch on, an `ASMSwimLaneGroup`, `ASMSwimLane` or Kruise `Rollout`
in the cluster is converted in memory by the same importer `kubectl lane convert` uses, and
the lanes.dev object it becomes is applied owned by it (an ownerReference, so deleting the
peer object deletes it) and labelled with `SERVED_LABEL`. The existing controllers then run
it; what they report is written back on the peer object in the peer's own layout.

A peer object whose own controller is at work is refused, never run twice: see
`owning_controller`. Everything here is pure; `lanes.kube.peers` reads and writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.load import parse_own

from .asm import ASM
from .common import Body, as_mapping
from .kruise import KRUISE, kruise_target
from .registry import convert

SERVED_LABEL = "lanes.dev/served-from"
"""On every lanes.dev object served from a peer object: `<kind>.<group>` of that object."""
SERVED_CONDITION = "LanesServed"
"""The condition lanes writes on a peer object: whether lanes runs it, and if not, why."""


@dataclass(frozen=True)
class PeerKind:
    """A peer's kind lanes serves, and the lanes.dev kind it becomes."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    served_kind: str
    served_plural: str

    @property
    def api_version(self) -> str:
        """`group/version`."""
        return f"{self.group}/{self.version}"

    @property
    def label(self) -> str:
        """The `SERVED_LABEL` value of what it becomes."""
        return f"{self.kind.lower()}.{self.group}"

    @property
    def crd_name(self) -> str:
        """The name of the CustomResourceDefinition serving it."""
        return f"{self.plural}.{self.group}"


ASM_GROUP_KIND = PeerKind(ASM, "v1", "asmswimlanegroups", "ASMSwimLaneGroup", False,
                          "SwimLaneGroup", "swimlanegroups")
ASM_LANE_KIND = PeerKind(ASM, "v1", "asmswimlanes", "ASMSwimLane", False, "SwimLane", "swimlanes")
KRUISE_ROLLOUT_KIND = PeerKind(KRUISE, "v1beta1", "rollouts", "Rollout", True,
                               "WorkloadRollout", "workloadrollouts")
PEER_KINDS = (ASM_GROUP_KIND, ASM_LANE_KIND, KRUISE_ROLLOUT_KIND)
"""Every kind the peer switch serves."""


def peer_kind_of(body: Mapping[str, Any]) -> PeerKind | None:
    """The served kind of a peer object, by its apiVersion's group and its kind."""
    group = str(body.get("apiVersion", "")).partition("/")[0]
    return next((k for k in PEER_KINDS if (k.group, k.kind) == (group, body.get("kind"))), None)


def peer_key(kind: PeerKind, namespace: str | None, name: str) -> str:
    """A peer object's key in the work queue: `plural.group/namespace/name`."""
    return f"{kind.crd_name}/{namespace or ''}/{name}"


def parse_peer_key(key: str) -> tuple[PeerKind, str | None, str]:
    """The kind, namespace (None when cluster-scoped) and name a `peer_key` names."""
    crd, namespace, name = key.split("/", 2)
    kind = next(k for k in PEER_KINDS if k.crd_name == crd)
    return kind, namespace or None, name


def owner_of_served(body: Mapping[str, Any]) -> str | None:
    """The key of the peer object a served lanes.dev object belongs to, if it is one."""
    metadata = as_mapping(body.get("metadata"))
    if not as_mapping(metadata.get("labels")).get(SERVED_LABEL):
        return None
    for ref in metadata.get("ownerReferences") or []:
        group = str(ref.get("apiVersion", "")).partition("/")[0]
        kind = next((k for k in PEER_KINDS if (k.group, k.kind) == (group, ref.get("kind"))), None)
        if kind is not None:
            return peer_key(kind, metadata.get("namespace") if kind.namespaced else None, ref["name"])
    return None


def owning_controller(peer: Mapping[str, Any], ours: Sequence[str]) -> str | None:
    """The peer's own controller at work on this object, named; None when none is.

    Two marks, both written by the peer's controller and never by a user's `kubectl apply`:
    a finalizer in the peer's API group (kruise-rollout puts `rollouts.kruise.io/rollout` on
    every Rollout it reconciles), or the status written by a field manager other than lanes'
    (`ours`): a user cannot write status through the main resource, so whoever wrote it
    runs a controller for this kind.
    """
    kind = peer_kind_of(peer)
    metadata = as_mapping(peer.get("metadata"))
    group = kind.group if kind else ""
    for finalizer in metadata.get("finalizers") or []:
        if str(finalizer).startswith(f"{group}/"):
            return f"finalizer {finalizer}"
    for entry in metadata.get("managedFields") or []:
        if entry.get("subresource") == "status" and entry.get("manager") not in ours:
            return f"status written by field manager {entry.get('manager')!r}"
    return None


def lone_rollout(peer: Mapping[str, Any]) -> bool:
    """Whether a Rollout joins no lane of its own (no canary pod labels): `convert` generates
    its group and lanes and relabels its Deployment, which a served object cannot do."""
    return peer_kind_of(peer) == KRUISE_ROLLOUT_KIND and kruise_target(peer) is not None


def served_document(peer: Mapping[str, Any]) -> Body:
    """The lanes.dev object a peer object becomes, owned by it and labelled as served.

    Raises:
        InvalidSpec: naming each field that does not convert, as `kubectl lane convert` does.
    """
    kind = peer_kind_of(peer)
    if kind is None:
        raise ValueError(f"{peer.get('apiVersion')} {peer.get('kind')} is not a served kind")
    converted = [d for d in convert(dict(peer), [dict(peer)]) if d.get("kind") == kind.served_kind]
    metadata = as_mapping(peer.get("metadata"))
    if len(converted) != 1:
        raise InvalidSpec([FieldError(kind.kind, str(metadata.get("name")), "kind",
                                      f"converts into no {kind.served_kind}")])
    document = converted[0]
    parse_own(document)
    served_metadata = dict(as_mapping(document.get("metadata")))
    served_metadata["labels"] = {**as_mapping(served_metadata.get("labels")), SERVED_LABEL: kind.label}
    if kind.namespaced:
        served_metadata["namespace"] = metadata.get("namespace")
    else:
        served_metadata.pop("namespace", None)
    served_metadata["ownerReferences"] = [{
        "apiVersion": str(peer.get("apiVersion")),
        "kind": kind.kind,
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "controller": True,
    }]
    return {**document, "metadata": served_metadata}


def served_by(obj: Mapping[str, Any] | None, peer: Mapping[str, Any]) -> bool:
    """Whether a live lanes.dev object is the one served from `peer` (owned by its uid)."""
    uid = as_mapping(peer.get("metadata")).get("uid")
    refs = as_mapping(as_mapping(obj).get("metadata")).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def condition(status: str, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    """The `SERVED_CONDITION`, Kubernetes-style."""
    return {"type": SERVED_CONDITION, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation}


def peer_status(peer: Mapping[str, Any], served: Mapping[str, Any] | None) -> dict[str, Any]:
    """The status of a served peer object, in its own layout, from its lanes.dev object's.

    A Kruise Rollout gets Kruise's: `phase` (Initial, Healthy, Progressing; lanes' Paused,
    Promoting and RollingBack are Kruise's Progressing, its step state telling which),
    `canaryStatus` (revisions, step index and state, replicas), `currentStepIndex` and
    `currentStepState`, Kruise's `Progressing` condition (reasons InRolling, Paused,
    Finalising, Cancelling, Completed) and `Succeeded` once a release completed, `message`
    and `observedGeneration`. ASM's reference shows no status of its swimlanes: an ASM object
    gets `observedGeneration` and the conditions of the lanes.dev object it became.
    """
    kind = peer_kind_of(peer)
    generation = as_mapping(peer.get("metadata")).get("generation")
    own = as_mapping(as_mapping(served).get("status"))
    served_generation = as_mapping(as_mapping(served).get("metadata")).get("generation")
    caught_up = served is not None and own.get("observedGeneration") == served_generation
    status: dict[str, Any] = {}
    if caught_up:
        status["observedGeneration"] = generation
    name = as_mapping(peer.get("metadata")).get("name")
    served_condition = condition("True", "Served",
                                 f"run as {kind.served_kind if kind else ''} {name}", generation)
    if kind == KRUISE_ROLLOUT_KIND:
        status.update(_kruise_status(own))
        status["conditions"] = [*status.get("conditions", []), served_condition]
        return status
    status["conditions"] = [
        *(c for c in own.get("conditions") or [] if c.get("type") != SERVED_CONDITION),
        served_condition,
    ]
    if own.get("message"):
        status["message"] = own["message"]
    return status


KRUISE_PHASES = {"Paused": "Progressing", "Promoting": "Progressing", "RollingBack": "Progressing"}
_KRUISE_REASONS = {"Progressing": "InRolling", "Paused": "InRolling", "Promoting": "Finalising",
                   "RollingBack": "Cancelling"}


def _kruise_status(own: Mapping[str, Any]) -> dict[str, Any]:
    """A WorkloadRollout's status in the layout of Kruise's v1beta1 Rollout status."""
    phase = str(own.get("phase") or "Initial")
    canary = as_mapping(own.get("canaryStatus"))
    status: dict[str, Any] = {"phase": KRUISE_PHASES.get(phase, phase)}
    if own.get("message"):
        status["message"] = own["message"]
    conditions = []
    if phase in _KRUISE_REASONS:
        reason = "Paused" if own.get("paused") else _KRUISE_REASONS[phase]
        conditions.append({"type": "Progressing", "status": "True", "reason": reason,
                           "message": str(own.get("message") or "")})
    elif canary and phase in ("Healthy", "Failed"):
        conditions.append({"type": "Progressing", "status": "False",
                           "reason": "Completed" if phase == "Healthy" else "Cancelling",
                           "message": str(own.get("message") or "")})
        if phase == "Healthy" and canary.get("currentStepState") == "Completed":
            conditions.append({"type": "Succeeded", "status": "True", "reason": "Completed",
                               "message": "Rollout progressing has been completed"})
    status["conditions"] = conditions
    if canary:
        revision = canary.get("canaryRevision")
        status["canaryStatus"] = {k: v for k, v in {
            "stableRevision": canary.get("stableRevision"),
            "canaryRevision": revision,
            "podTemplateHash": revision,
            "currentStepIndex": canary.get("currentStepIndex", 0),
            "currentStepState": canary.get("currentStepState"),
            "canaryReplicas": canary.get("canaryReplicas", 0),
            "canaryReadyReplicas": canary.get("canaryReadyReplicas", 0),
            "lastUpdateTime": canary.get("lastUpdateTime"),
        }.items() if v is not None}
        status["currentStepIndex"] = canary.get("currentStepIndex", 0)
        if canary.get("currentStepState"):
            status["currentStepState"] = canary["currentStepState"]
    return status


def same_status(live: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the live status already says what `wanted` does (a write would change nothing)."""
    return all(live.get(key) == value for key, value in wanted.items())


@dataclass(frozen=True)
class ServingPlan:
    """What to do for one peer object: apply its lanes.dev object, delete it, write status."""

    apply: Body | None = None
    delete: bool = False
    status: dict[str, Any] | None = None


def plan_serving(peer: Mapping[str, Any], live: Mapping[str, Any] | None,
                 ours: Sequence[str]) -> ServingPlan:
    """The changes that serve `peer`, given its live lanes.dev object (None: none yet).

    Refused, with `SERVED_CONDITION` False and a reason: a peer object its own controller
    runs (`owning_controller`; what lanes served for it before is deleted, so the two never
    act together), a lone Kruise Rollout, a name a lanes.dev object of someone else's holds,
    or a spec that does not convert (the object served from its last good spec keeps
    running). Writes only what differs from what is live.
    """
    kind = peer_kind_of(peer)
    if kind is None:
        return ServingPlan()
    metadata = as_mapping(peer.get("metadata"))
    generation = metadata.get("generation")
    ours_live = live is not None and served_by(live, peer)
    owner = owning_controller(peer, ours)
    if owner is not None:
        return _refused(peer, "OwnedByPeerController",
                        f"{kind.kind}'s own controller runs this object ({owner}); lanes leaves it "
                        f"to that controller (turn lanes' peer serving off, or remove that "
                        f"controller, to have lanes run it)", delete=ours_live)
    if lone_rollout(peer):
        return _refused(peer, "LoneRollout",
                        "no spec.strategy.canary.patchPodTemplateMetadata.labels: the canary's pods "
                        "would join no lane; give the canary lane's pod labels, or convert it with "
                        "`kubectl lane convert`, which generates its group and lanes")
    if live is not None and not ours_live:
        return _refused(peer, "NameTaken",
                        f"{kind.served_kind} {metadata.get('name')} exists and was not served "
                        f"from this object; lanes leaves it as it is")
    try:
        document = served_document(peer)
    except InvalidSpec as error:
        return _refused(peer, "Invalid", "; ".join(f"{e.path}: {e.message}" for e in error.errors))
    status = peer_status(peer, live)
    live_status = as_mapping(peer.get("status"))
    return ServingPlan(
        apply=None if live is not None and _contains(live, document) else document,
        status=None if same_status(live_status, status) else status,
    )


def _refused(peer: Mapping[str, Any], reason: str, message: str, *, delete: bool = False) -> ServingPlan:
    """The plan of a refused peer object: its conditions with lanes' refusal among them."""
    metadata = as_mapping(peer.get("metadata"))
    live_status = as_mapping(peer.get("status"))
    conditions = list(live_status.get("conditions") or [])
    wanted = condition("False", reason, message, metadata.get("generation"))
    if wanted in conditions:
        return ServingPlan(delete=delete)
    kept = [c for c in conditions if as_mapping(c).get("type") != SERVED_CONDITION]
    return ServingPlan(delete=delete, status={"conditions": [*kept, wanted]})


def _contains(live: Any, wanted: Any) -> bool:
    """Whether `live` holds everything `wanted` says (the server may add defaults and more)."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and _contains(live[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(
            _contains(a, b) for a, b in zip(live, wanted, strict=True))
    return bool(live == wanted)
