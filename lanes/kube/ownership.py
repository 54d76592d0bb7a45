"""Which objects lanes generated, and for which group: the labels that say so, read both ways.

Each traffic flavour names its own labels (`managed_labels` on everything it generates,
`owner_labels` naming the group too); this module is the one place the operator, the CLI and
the kube layer turn those into selectors, read them back off a live object, and key the
operator's owner index by them. Cleanup and pruning look in every flavour, so changing a
group's flavour removes the objects of the old one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lanes.api.common import GROUP_LABEL as LANE_GROUP_LABEL
from lanes.render import FLAVOURS
from lanes.render.istio import MANAGED_BY, MANAGER

OwnerSelector = tuple[str, Mapping[str, str]]
"""An API version to list at, and the labels marking objects of one owner."""
OwnerMark = tuple[str, tuple[tuple[str, str | None], ...]]
"""A flavour's name and the owner labels (beyond its managed ones) an object carries."""

MANAGED_BY_LANES: dict[str, str] = {MANAGED_BY: MANAGER}
"""The label on objects lanes makes that no flavour renders (its webhook certificate)."""


def owners(group: str) -> list[OwnerSelector]:
    """Owner selectors of a group in every flavour, each with the API version to list at."""
    return [(f.api_version, f.owner_labels(group)) for f in FLAVOURS.values()]


def generated_by_any() -> list[OwnerSelector]:
    """Selectors of every object lanes generates, for any group, in every flavour."""
    return [(f.api_version, f.managed_labels()) for f in FLAVOURS.values()]


def _carries(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def is_generated(labels: Mapping[str, str]) -> bool:
    """Whether labels are those of an object some flavour generated."""
    return any(_carries(labels, f.managed_labels()) for f in FLAVOURS.values())


def owner_among(groups: Iterable[str], obj: Mapping[str, Any]) -> str | None:
    """Which of `groups` generated `obj`, by its owner labels in any flavour."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for name in sorted(groups):
        if any(_carries(labels, selector) for _, selector in owners(name)):
            return name
    return None


def owner_marks(group: str) -> list[OwnerMark]:
    """The marks a group's generated objects carry, one per flavour: the owner index's values."""
    marks = []
    for flavour in FLAVOURS.values():
        managed = flavour.managed_labels()
        owned = flavour.owner_labels(group)
        marks.append((flavour.name, tuple((k, v) for k, v in owned.items() if k not in managed)))
    return marks


def marks_of(labels: Mapping[str, str]) -> list[tuple[OwnerMark, list[str]]]:
    """The marks a generated object's labels carry, per flavour it belongs to, each with the
    owner label values themselves (the group's name, when no known group matches)."""
    found = []
    for flavour in FLAVOURS.values():
        managed = flavour.managed_labels()
        if not _carries(labels, managed):
            continue
        keys = [k for k in flavour.owner_labels("x") if k not in managed]
        mark = (flavour.name, tuple((k, labels.get(k)) for k in keys))
        found.append((mark, [labels[k] for k in keys if k in labels]))
    return found


def lane_group_of(lane: Mapping[str, Any]) -> str | None:
    """The group a lane body joins by its label, if any (the lane's own, written by users)."""
    return ((lane.get("metadata") or {}).get("labels") or {}).get(LANE_GROUP_LABEL) or None


def _hosts_of(key: str) -> tuple[str, set[str]]:
    """A service key's namespace and the names Istio reads as its host from anywhere."""
    namespace, _, name = key.partition("/")
    return namespace, {f"{name}.{namespace}", f"{name}.{namespace}.svc",
                       f"{name}.{namespace}.svc.cluster.local"}


def foreign_routes(keys: Iterable[str], objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """The VirtualServices and DestinationRules lanes did not generate that route one of the
    services `keys` (`namespace/name`), each as `Kind namespace/name (host)`.

    Istio merges two VirtualServices of one host, or two DestinationRules, in no fixed order,
    so such an object fights the routes lanes writes; lanes names it rather than overwrite it.
    A short host (`name`) counts in the service's own namespace, as Istio reads it there.
    """
    wanted = [(key, *_hosts_of(key)) for key in keys]
    found = []
    for obj in objects:
        metadata = obj.get("metadata") or {}
        if is_generated(metadata.get("labels") or {}):
            continue
        spec = obj.get("spec") or {}
        hosts = spec.get("hosts") if obj.get("kind") == "VirtualService" else [spec.get("host")]
        own = metadata.get("namespace") or "default"
        for key, namespace, full in wanted:
            short = key.partition("/")[2]
            hit = next((h for h in hosts or [] if isinstance(h, str)
                        and (h in full or (h == short and own == namespace))), None)
            if hit is not None:
                found.append(f"{obj.get('kind')} {own}/{metadata.get('name')} ({hit})")
                break
    return sorted(found)
