"""What `undo --to-revision N` may go back to: the base Deployment's own revision history.

lanes keeps no history of its own. The Deployment controller keeps one ReplicaSet per template
the base ran, numbered by `deployment.kubernetes.io/revision` and pruned to the base's
`revisionHistoryLimit`; the canary Deployment's ReplicaSets are another Deployment's and are
not counted. Going back to revision N writes that ReplicaSet's template into the base, as
`kubectl rollout undo --to-revision` does, and the rollout treats it like any template change:
on the stable revision it rolls back, otherwise it releases the older template through the
steps (Argo's `undo` does the same), so an old version is checked as carefully as a new one.
"""

from __future__ import annotations

from lanes.api.workloadrollout import WorkloadRollout

from .observed import Observed, ReplicaSetView
from .status import status_of


def numbered(observed: Observed, number: int) -> ReplicaSetView | None:
    """The base's ReplicaSet with revision number `number`, if the history still holds it."""
    return next((rs for rs in observed.replica_sets if rs.revision_number == number), None)


def check_undo_to(rollout: WorkloadRollout, observed: Observed, number: int) -> str | None:
    """Why the base cannot go back to revision `number` now, or None when it can."""
    name = f"workloadrollout/{rollout.metadata.name}"
    status = status_of(rollout)
    if status.phase in ("Promoting", "RollingBack"):
        return f"{name} is {status.phase.lower()}; undo to a revision once it is Healthy"
    if observed.base is None:
        return (f"{name}: Deployment {rollout.spec.workload_ref.name} not found; "
                "it has no revisions to go back to")
    found = numbered(observed, number)
    if found is None:
        kept = sorted(rs.revision_number for rs in observed.replica_sets if rs.revision_number)
        listed = ", ".join(map(str, kept)) or "none"
        return (f"{name}: Deployment {observed.base.name} has no revision {number} "
                f"(it keeps {listed}; spec.revisionHistoryLimit prunes older ones)")
    if found.revision == observed.base.revision:
        return (f"{name}: Deployment {observed.base.name} already carries revision {number} "
                f"({found.revision})")
    failed = status.failed_revision
    if failed is not None and failed.revision == found.revision:
        return (f"{name}: revision {number} ({found.revision}) failed ({failed.reason}) and "
                f"would be held; run `kubectl lane retry rollout/{rollout.metadata.name}` first")
    return None
