"""Make the live generated objects of one owner equal the desired ones, writing only differences.

Writes are ordered make-before-break, as Istio advises for subsets: DestinationRules that gain
subsets go first, then VirtualServices, then DestinationRules that lose subsets, then
deletions (VirtualServices before DestinationRules), so no route ever names a missing subset.
A DestinationRule that gains some subsets and loses others (a lane's pods moving to another
lane) is written twice: first with the old subsets and the new, then as desired. Every state
between two writes is safe, so an operator killed there leaves working routes, and the next
sync, planned from the live objects alone, goes on in the same order.
https://istio.io/latest/docs/ops/best-practices/traffic-management/#avoid-503-errors-while-reconfiguring-service-routes
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lanes.render import object_key

from .diff import Changes, plan_changes
from .kinds import GENERATED, WASMPLUGIN, kind_of
from .objects import Objects
from .schema import prune

OwnerSelector = tuple[str, Mapping[str, str]]
"""An API version to list at, and the labels marking objects of one owner."""


def object_id(obj: Mapping) -> str:
    """`Kind namespace/name`, how events and logs name an object."""
    metadata = obj.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')} {where}{metadata.get('name')}"


@dataclass
class ApplyReport:
    """What one sync wrote, and what the installed CRDs drop of the desired objects."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    dropped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when anything was written."""
        return bool(self.created or self.updated or self.deleted)

    def summary(self) -> str:
        """One line for an event: counts, then the objects touched."""
        parts = []
        for verb, names in (("created", self.created), ("updated", self.updated), ("deleted", self.deleted)):
            if names:
                parts.append(f"{verb} {', '.join(names)}")
        return "; ".join(parts) or "no change"


def list_owned(objects: Objects, owners: Iterable[OwnerSelector]) -> list[dict]:
    """Every generated object any of the owner selectors marks, once each."""
    found: dict[tuple, dict] = {}
    for api_version, selector in owners:
        version = api_version.rpartition("/")[2]
        for kind in (*(k.at(version) for k in GENERATED), WASMPLUGIN):
            for obj in objects.list(kind, selector):
                found.setdefault(object_key(obj), obj)
    return list(found.values())


def managed_by(obj: Mapping, manager: str) -> bool:
    """Whether `manager` has applied this object: only then may lanes delete it.

    Labels alone are not proof: ASM itself labels its objects the same way, and a cluster
    moving from ASM may still hold objects of groups lanes never took over.
    """
    return any(
        entry.get("manager") == manager and entry.get("operation") == "Apply"
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
    )


def _subsets(obj: Mapping | None) -> list[dict]:
    return list(((obj or {}).get("spec") or {}).get("subsets") or [])


def _subset_names(obj: Mapping | None) -> set[str]:
    return {s.get("name") for s in _subsets(obj)}


def _with_old_subsets(desired: dict, live: Mapping) -> dict:
    """`desired` keeping the live subsets it drops, for the write before any route changes."""
    wanted = _subset_names(desired)
    kept = [s for s in _subsets(live) if s.get("name") not in wanted]
    return {**desired, "spec": {**desired["spec"], "subsets": [*_subsets(desired), *kept]}}


def ordered_writes(changes: Changes, live: Mapping[tuple, dict]) -> tuple[list[dict], list[dict]]:
    """The applies and the deletions of one sync, in an order where no route names a missing
    subset after any of them."""
    early, middle, late = [], [], []
    for obj in changes.apply:
        if obj.get("kind") != "DestinationRule":
            middle.append(obj)
            continue
        before = live.get(object_key(obj))
        had, wants = _subset_names(before), _subset_names(obj)
        if before is None or not had - wants:
            early.append(obj)
        elif not wants - had:
            late.append(obj)
        else:
            early.append(_with_old_subsets(obj, before))
            late.append(obj)
    return early + middle + late, _deletion_order(changes.delete)


def _deletion_order(objects: Iterable[dict]) -> list[dict]:
    return sorted(objects, key=lambda o: o.get("kind") != "VirtualService")


def pruned_desired(objects: Objects, desired: Iterable[dict]) -> tuple[list[dict], dict[str, list[str]]]:
    """Desired objects as the installed CRDs will store them, and the fields they drop."""
    kept, dropped = [], {}
    for obj in desired:
        result = prune(obj, objects.schema(kind_of(obj)))
        kept.append(result.value)
        if result.dropped:
            dropped[object_id(obj)] = result.dropped
    return kept, dropped


def sync_objects(
    objects: Objects, desired: Iterable[dict], owners: Iterable[OwnerSelector]
) -> ApplyReport:
    """Apply what differs, delete what the owners no longer desire, leave the rest untouched."""
    owners = list(owners)
    live = {object_key(o): o for o in list_owned(objects, owners)}
    wanted, dropped = pruned_desired(objects, desired)
    changes = plan_changes(wanted, live.values(), objects.manager)
    report = ApplyReport(unchanged=len(changes.unchanged), dropped=dropped)
    changes.delete = [o for o in changes.delete if managed_by(o, objects.manager)]
    writes, deletes = ordered_writes(changes, live)
    for obj in writes:
        objects.apply(obj)
        names = report.updated if object_key(obj) in live else report.created
        if object_id(obj) not in names:
            names.append(object_id(obj))
    for obj in deletes:
        if objects.delete(obj):
            report.deleted.append(object_id(obj))
    return report


def delete_owned(objects: Objects, owners: Iterable[OwnerSelector]) -> list[str]:
    """Delete every object the owner selectors mark and lanes applied; the names deleted."""
    deleted = []
    owned = [o for o in list_owned(objects, owners) if managed_by(o, objects.manager)]
    for obj in _deletion_order(owned):
        if objects.delete(obj):
            deleted.append(object_id(obj))
    return deleted
