"""What the watches bring, kept by key with named indexes, as client-go's `cache.Indexer`.

A controller asks "which objects carry this label", "which groups list this service": each
such question is a named index function, kept in step with the objects on the one path every
add, update and delete goes through, so a lookup costs the number of matches, never a scan.

The same path answers whether an event changes anything a controller reads: each store is
given an `essence` of its objects (for a custom resource, its generation, labels, finalizers
and deletion, not its status), and `put` says whether it moved. Without that check, every
status write of the operator's own would echo back as an event and a reconcile.
"""

from __future__ import annotations

import copy

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Key = Hashable
IndexFunc = Callable[[T], Iterable[Hashable]]
"""The values an object is found under in one index (none: it is not in that index)."""
Essence = Callable[[T], Hashable]
"""What of an object counts as a change; two objects of equal essence are the same to readers."""


@dataclass(frozen=True)
class Change(Generic[T]):
    """What one `put` or `delete` did: the object before and after, and whether it counts.

    `changed` is True when the object is new, gone, or its essence moved.
    """

    old: T | None
    new: T | None
    changed: bool


class Store(Generic[T]):
    """Objects by key, with named indexes and an essence that tells changes from echoes.

    Index functions read only what the essence holds (an object's index values move only
    when its essence does), so an echo of a status write is kept without indexing it again.
    Not thread-safe: the operator's event loop owns it; reconciles read copies (snapshots).
    """

    def __init__(self, indexers: Mapping[str, IndexFunc[T]] | None = None, essence: Essence[T] | None = None):
        self._indexers: dict[str, IndexFunc[T]] = dict(indexers or {})
        self._essence = essence
        self._objects: dict[Key, T] = {}
        self._essences: dict[Key, Hashable] = {}
        # Per index: value -> keys found under it; and per key the values it is under.
        # Buckets are dicts, not sets, so lookups list objects in the order they were indexed.
        self._indexes: dict[str, dict[Hashable, dict[Key, None]]] = {name: {} for name in self._indexers}
        self._values: dict[str, dict[Key, frozenset[Hashable]]] = {name: {} for name in self._indexers}

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __iter__(self) -> Iterator[Key]:
        return iter(self._objects)

    def get(self, key: Key) -> T | None:
        """The object kept under `key`, or None."""
        return self._objects.get(key)

    def keys(self) -> list[Key]:
        """Every key, in the order first added."""
        return list(self._objects)

    def values(self) -> list[T]:
        """Every object, in the order first added."""
        return list(self._objects.values())

    def put(self, key: Key, obj: T) -> Change[T]:
        """Add or replace the object under `key`, keeping every index in step."""
        old = self._objects.get(key)
        self._objects[key] = obj
        changed = old is None
        if self._essence is not None:
            essence = self._essence(obj)
            changed = changed or self._essences.get(key) != essence
            self._essences[key] = essence
        elif old is not None:
            changed = old != obj
        if changed:
            for name, function in self._indexers.items():
                self._reindex(name, key, frozenset(function(obj)))
        return Change(old, obj, changed)

    def record(self, event_type: str | None, key: Key, body: Mapping[str, Any]) -> Change[T]:
        """What one watch event does: DELETED drops the object, any other keeps a copy of
        `body` (the watch's own may change under us)."""
        if event_type == "DELETED":
            return self.delete(key)
        return self.put(key, copy.deepcopy(dict(body)))  # type: ignore[arg-type]

    def unchanged(self, key: Key, obj: T) -> bool:
        """Whether `obj` has the essence of the object kept under `key` (False when none is)."""
        if key not in self._objects:
            return False
        if self._essence is None:
            return self._objects[key] == obj
        return self._essences.get(key) == self._essence(obj)

    def delete(self, key: Key) -> Change[T]:
        """Drop the object under `key` (if any) from the store and every index."""
        old = self._objects.pop(key, None)
        self._essences.pop(key, None)
        for name in self._indexers:
            self._reindex(name, key, frozenset())
        return Change(old, None, True)

    def _reindex(self, name: str, key: Key, values: frozenset[Hashable]) -> None:
        """Move `key` to exactly `values` in index `name`, touching only what differs."""
        before = self._values[name].get(key, frozenset())
        if before == values:
            return
        index = self._indexes[name]
        for value in before - values:
            bucket = index[value]
            del bucket[key]
            if not bucket:
                del index[value]
        for value in values - before:
            index.setdefault(value, {})[key] = None
        if values:
            self._values[name][key] = values
        else:
            self._values[name].pop(key, None)

    def index_keys(self, name: str, value: Hashable) -> frozenset[Key]:
        """The keys of the objects found under `value` in index `name`."""
        return frozenset(self._indexes[name].get(value, ()))

    def by_index(self, name: str, value: Hashable) -> list[T]:
        """The objects found under `value` in index `name`."""
        return [self._objects[key] for key in self._indexes[name].get(value, ())]

    def indexed_values(self, name: str, key: Key) -> frozenset[Hashable]:
        """The values the object under `key` is found under in index `name`."""
        return self._values[name].get(key, frozenset())

    def index(self, name: str) -> Mapping[Hashable, Mapping[Key, None]]:
        """Index `name` itself, value -> keys, for lookups that combine buckets; read only."""
        return self._indexes[name]

    def intersect(self, name: str, values: Iterable[Hashable]) -> set[Key]:
        """The keys found under every one of `values` in index `name` (none when no values),
        starting from the smallest bucket."""
        index = self._indexes[name]
        buckets = sorted((index.get(value, {}) for value in values), key=len)
        if not buckets:
            return set()
        found = set(buckets[0])
        for bucket in buckets[1:]:
            found &= bucket.keys()
            if not found:
                break
        return found


def metadata_essence(body: Mapping[str, Any]) -> tuple:
    """What of a custom resource its reconcile reads besides status: spec (by generation),
    labels, finalizers and deletion; a status write leaves it as it was."""
    metadata = body.get("metadata") or {}
    return (
        metadata.get("generation"),
        tuple(sorted((metadata.get("labels") or {}).items())),
        tuple(metadata.get("finalizers") or ()),
        metadata.get("deletionTimestamp"),
    )
