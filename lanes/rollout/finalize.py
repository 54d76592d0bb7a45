"""What to do when a WorkloadRollout is deleted: leave the base Deployment a plain one.

- During the canary steps or a roll back, the base goes back to the stable revision: its
  template is restored from the stable ReplicaSet, the canary Deployment is deleted and the
  base is unpaused, so no pod of the running version restarts and the unapproved revision
  reaches no more pods. To ship that revision afterwards, apply the Deployment's new
  template again: with no WorkloadRollout it rolls out as a plain Deployment; with a new
  WorkloadRollout it goes through the canary steps again. If no ReplicaSet runs the stable
  revision any more, only the canary is deleted and the base stays paused on the new
  template for its owner to decide.
- During promotion the revision was approved and the base is already rolling to it, so the
  promotion finishes: the canary is deleted and the base unpaused.
- A rollout a LaneRelease drives is finalized only once that release no longer sends
  untagged requests into its lane (`lanes.rollout.lanerelease.canary_holder`; the operator
  waits until then), so its canary never leaves a lane that requests still enter.
- When no release is in progress, a leftover canary is deleted, and a base this rollout (or
  the admission webhook on its behalf) holds, or one paused on a template that never started
  a release, is unpaused so the change rolls out as it would without a rollout. A base its
  owner paused on the stable revision is left alone.

The canary Deployment (and its copy of the base's autoscaler) is owned by the WorkloadRollout,
so the garbage collector removes it even if these actions never run; deleting it here just
does so before the rollout is gone.
"""

from __future__ import annotations

from lanes.api.workloadrollout import WorkloadRollout

from .actions import (
    HELD_ANNOTATION,
    Change,
    DeleteAutoscaler,
    DeleteCanary,
    RestoreBaseTemplate,
    UnpauseBase,
)
from .autoscaler import owns_autoscaler
from .canary import owns
from .observed import Observed
from .status import IN_STEPS, status_of


def plan_finalize(rollout: WorkloadRollout, observed: Observed) -> tuple[Change, ...]:
    """The changes that release the base Deployment from a rollout being deleted.

    Carry them out in order and stop at the first failure: the base is unpaused only after
    its template is back on the stable revision. A rollout that never drove the base (another
    one does) leaves it alone.
    """
    if observed.driven_by is not None:
        return ()
    status = status_of(rollout)
    stable = status.canary_status.stable_revision if status.canary_status else None
    base, canary = observed.base, observed.canary
    actions: list[Change] = []
    if base is not None and base.revision != stable and status.phase in (*IN_STEPS, "RollingBack"):
        replica_set = observed.replica_set_of(stable or "")
        if replica_set is None:
            copy = observed.canary_autoscaler
            return tuple(
                [DeleteCanary(canary.name)] if canary and owns(rollout, canary) else []
            ) + ((DeleteAutoscaler(copy.name),) if copy and owns_autoscaler(rollout, copy) else ())
        actions.append(RestoreBaseTemplate(base.name, replica_set.deployment_template))
    if canary is not None and owns(rollout, canary):
        actions.append(DeleteCanary(canary.name))
    copy = observed.canary_autoscaler
    if copy is not None and owns_autoscaler(rollout, copy):
        actions.append(DeleteAutoscaler(copy.name))
    if base is not None and base.paused:
        held = base.annotations.get(HELD_ANNOTATION) == rollout.metadata.name
        in_release = status.phase in (*IN_STEPS, "RollingBack", "Promoting")
        if held or in_release or (stable is not None and base.revision != stable):
            actions.append(UnpauseBase(base.name))
    return tuple(actions)
