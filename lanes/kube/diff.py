"""Decide which generated objects need a write: pure, so "zero writes when nothing changed" is
a property of a function that unit tests can pin down.

The comparison follows server-side apply's semantics, since that is how objects are written:
after an apply, the live object holds every field we sent (lists are atomic in Istio's CRDs,
so a list equals ours exactly) and keeps fields other managers own. So a write is needed when
a field we send differs or is missing, or when our field manager still owns a field we no
longer send (the apply removes it). Extra fields set by someone else do not count: an apply
could not remove them, and counting them would write on every reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lanes.render import object_key

MANAGER = "lanes"

Path = tuple[str, ...]
_COMPARED_METADATA = ("labels", "annotations")


def contains(live: Any, desired: Any) -> bool:
    """Whether `live` holds everything in `desired`: maps may have extra keys, lists may not."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value) for key, value in desired.items()
        )
    return live == desired


def essentials(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an object we own: everything but server metadata, status and identity."""
    metadata = obj.get("metadata") or {}
    core: dict[str, Any] = {
        k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")
    }
    kept = {k: metadata[k] for k in _COMPARED_METADATA if metadata.get(k)}
    if kept:
        core["metadata"] = kept
    return core


def field_paths(value: Any, prefix: Path = ()) -> set[Path]:
    """Leaf paths of a value, maps walked and lists kept whole, as fieldsV1 records them."""
    if isinstance(value, Mapping) and value:
        paths: set[Path] = set()
        for key, item in value.items():
            paths |= field_paths(item, (*prefix, key))
        return paths
    return {prefix}


def _fields_v1_paths(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    names = [k for k in fields if k.startswith("f:")]
    keyed = any(k[:2] in ("k:", "v:", "i:") for k in fields)
    if not names or keyed:
        return {prefix}
    paths: set[Path] = set()
    for key in names:
        paths |= _fields_v1_paths(fields[key] or {}, (*prefix, key[2:]))
    return paths


def owned_paths(live: Mapping[str, Any], manager: str = MANAGER) -> set[Path]:
    """The field paths `manager` owns in `live` through apply, from its managedFields."""
    paths: set[Path] = set()
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            paths |= _fields_v1_paths(entry.get("fieldsV1") or {})
    return paths


def _covered(path: Path, desired: set[Path]) -> bool:
    return any(path[: len(d)] == d or d[: len(path)] == path for d in desired)


def _compared(path: Path) -> bool:
    if not path or path[0] in ("apiVersion", "kind", "status"):
        return False
    if path[0] == "metadata":
        return len(path) > 1 and path[1] in _COMPARED_METADATA
    return True


def stale_fields(desired: Mapping[str, Any], live: Mapping[str, Any], manager: str = MANAGER) -> list[str]:
    """Fields `manager` owns in `live` that `desired` no longer sets, as dotted paths."""
    wanted = field_paths(essentials(desired))
    stale = []
    for path in owned_paths(live, manager):
        if _compared(path) and not _covered(path, wanted):
            stale.append(".".join(path))
    return sorted(stale)


def needs_write(desired: Mapping[str, Any], live: Mapping[str, Any], manager: str = MANAGER) -> bool:
    """Whether applying `desired` would change `live`."""
    return not contains(essentials(live), essentials(desired)) or bool(
        stale_fields(desired, live, manager)
    )


@dataclass
class Changes:
    """What a reconcile must do to make the live objects equal the desired ones."""

    apply: list[dict] = field(default_factory=list)
    delete: list[dict] = field(default_factory=list)
    unchanged: list[dict] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing needs writing."""
        return not self.apply and not self.delete


def plan_changes(
    desired: Iterable[dict], live: Iterable[dict], manager: str = MANAGER
) -> Changes:
    """Sort desired objects into apply / unchanged, and live ones nobody desires into delete.

    `desired` must already be pruned to what the server stores; see lanes.kube.schema.
    """
    live_by_key = {object_key(obj): obj for obj in live}
    changes = Changes()
    wanted = set()
    for obj in desired:
        key = object_key(obj)
        wanted.add(key)
        current = live_by_key.get(key)
        if current is None or needs_write(obj, current, manager):
            changes.apply.append(obj)
        else:
            changes.unchanged.append(obj)
    changes.delete = [obj for key, obj in live_by_key.items() if key not in wanted]
    return changes
