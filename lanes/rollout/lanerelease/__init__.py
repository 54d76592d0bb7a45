"""The LaneRelease state machine: (release, observed lane and rollouts, readings, now) -> plan.

The lane is one unit of the step engine (`lanes.rollout.engine`), a WorkloadRollout the other.
Its planner is made of `unit` (the observation, the draft, the plan), `members`, `entry` (the
entry weight), `steps`, `gates` (checks and webhooks) and `intents`.

A lane release drives the WorkloadRollouts of one lane as one unit. It moves at most one phase
per reconcile and keeps everything it needs in its status, so a restarted operator resumes
where the last one stopped. The phases:

- Initial -> Waiting: the members are resolved (the rollouts named in `spec.rollouts`, else
  every rollout of the namespace whose `patchPodTemplateMetadata` labels the lane selects).
  Each member's last step must wait for approval (no analysis of its own, no timed pause): the
  lane release is what approves it.
- Waiting -> Progressing at step 1 once every member has its canary pods ready at its last
  step (StepPaused); the lane's entry weight is then step 1's.
- With `spec.mirror`, step 1 is the shadow step: entry weight 0, while the gateway copies a
  share of the untagged requests into the lane (`entry.mirror_in_force`), so the checks of
  that step judge the lane on the copies and no user is served by it.
- Each step: under analysis, a check is due every `interval` (the first one interval after the
  start, so the lane has had traffic to judge); the metrics of every member are judged with
  `lanes.analysis.verdict.judge` on that member's service and lane subset, and a check fails
  for the lane when any member's does (the event names service, metric, value and range).
  Failed checks count for the whole release. A step ends as a WorkloadRollout's does
  (`lanes.rollout.checks`): without pause on a passing check, `pause: {duration}` once the
  duration is over (and a check passed), `pause: {}` on approve.
- After the last step -> Promoting: the entry weight goes to 100, so every untagged request
  runs through the lane, whose chain is entirely the new version. Once the gateway has routed
  100 (`ReleaseObserved.routed_weight`) for `spec.routeSettle`, every member is approved, all
  in the same reconcile, and marked with `LANE_RELEASE_ANNOTATION`, so its rollout keeps its
  canary after its base has rolled. Once every base runs the new version on every replica
  (`ReleaseObserved.rolled_out`) the entry weight goes back to 0; once the gateway has routed 0
  for `routeSettle` the marks are removed, the rollouts drop their canaries and finish, and the
  release is Succeeded. Requests that explicitly ask for the base lane see each base service as
  it rolls: a mix of old and new pods, as in any rolling update.
- `promote --full` in the steps: straight to Promoting, the remaining steps, their analysis and
  gates skipped.
- Roll back (failed checks reach `threshold`, Prometheus unavailable for threshold x interval,
  `undo` or `abort`, a member failing or vanishing, the lane deleted) -> RollingBack: the entry
  weight goes to 0 at once; only once the gateway has routed 0 into the lane for `routeSettle`
  is every member undone (bases are never restarted: each rollout restores its stable
  template). Once no member is in progress -> Failed, Succeeded=False with the reason.

While a lane release drives them, the members' own traffic steps do not apply: the lane's entry
weight decides which untagged requests see the new versions (`driven_rollouts`).

Edge cases, each ending with base traffic on one version per service:

- A member deleted mid-release: the release rolls back (`RolloutDeleted`), entry weight 0
  first, as for a failure of the unit. The deleted rollout's finalizer keeps its canary while
  the release may still send untagged requests into the lane (`canary_holder`): only once the
  gateway has routed 0 for `routeSettle` does it restore the base to the stable revision and
  delete the canary, so no request in the lane meets that service's old version. Deleted
  while promoting before it took the approval: the same roll back. Deleted after it took it
  (its base already rolling to the new version): it counts as done, its canary kept until the
  entry weight is back to 0. Deleted in the moment between the approvals and its own taking
  of one: its base stays on the stable revision, the others finish, and the release ends
  Failed (`RolloutDeleted`), naming it.
- The lane deleted: no request can enter it any more; the release rolls back (`LaneDeleted`).
- A member failing on its own (undone, rolled back, restarted on another template, Failed past
  its progress deadline): the release rolls back (`RolloutFailed`), naming it.
- While Waiting none of this is a failure yet: the release waits, saying for what. A
  `spec.swimLaneRef.name` naming no SwimLane is said at once: `Ready=False`, reason
  `SwimLaneNotFound`, naming the field, and one event; the release starts once it exists.
- After a roll back each member rollout keeps its failed revision (`failedRevision`), so the
  members' templates applied again start nothing; `retry` on the Failed release has each
  member retry and starts the release again from Initial.

Webhooks of `spec.analysis`, with Flagger's meaning (`lanes.rollout.hooks` has the shared
rules; the plan names the calls in `ReleasePlan.hooks_due`, the operator calls them with
Flagger's payload for the release and plans again with `ReleaseObserved.hooks`):

- `pre-rollout`: called once every member is ready at its last step, before step 1. All 2xx:
  the release starts; any failure: the release rolls back (`PreRolloutFailed`) with the entry
  weight never above 0, so no request entered the lane.
- `rollout`: called with every check; a failure is a failed check of the lane.
- `rollback`: called with every check; any 2xx rolls the whole lane back at once
  (`RolledBackByWebhook`).
- `confirm-promotion`: a gate after the last step, before the all-or-nothing promotion, asked
  every `interval` until every such hook answers 2xx.
- `post-rollout`: called once the release has ended, either way; its answer is only reported.
- `event`: `ReleasePlan.event_hooks`, sent every event the release posts, best effort.
"""

from __future__ import annotations

from datetime import datetime

from lanes.api.lanerelease import LaneRelease

from .entry import driven_rollouts, entry_steps, entry_weight, mirror_in_force
from .gates import flagger_phase, release_checksum, under_analysis
from .intents import (
    check_release_intent,
    drop_intents,
    release_intent_patch,
    retry,
    take_intent,
)
from .members import (
    canary_holder,
    deleting,
    member_problem,
    member_rollouts,
    member_trouble,
    promote,
    ready_at_last_step,
    roll_back,
)
from .steps import lane_found, run_steps, start, wait_for_members
from .unit import ENDED, ReleaseDraft, ReleaseObserved, ReleasePlan, RolloutIntent

__all__ = [
    "ReleaseObserved",
    "ReleasePlan",
    "RolloutIntent",
    "canary_holder",
    "check_release_intent",
    "deleting",
    "driven_rollouts",
    "entry_steps",
    "entry_weight",
    "flagger_phase",
    "member_problem",
    "member_rollouts",
    "mirror_in_force",
    "plan_release",
    "ready_at_last_step",
    "release_checksum",
    "release_intent_patch",
    "under_analysis",
]


def plan_release(release: LaneRelease, observed: ReleaseObserved, now: datetime) -> ReleasePlan:
    """The next status of a lane release and what gets it there, moving at most one phase.

    Planning again from the returned status with the same observation asks for nothing new
    (member intents are asked for only while the member has not acted on them).
    """
    d = ReleaseDraft(release, observed, now,
                     *member_rollouts(release, observed.lane, observed.rollouts))
    phase = d.status.phase
    if phase in ENDED:
        if not retry(d):
            drop_intents(d)
        return d.plan()
    if take_intent(d):
        return d.plan()
    if phase in ("Initial", "Waiting") and not lane_found(d):
        return d.plan()
    if phase == "Initial":
        start(d)
    elif phase == "Waiting":
        wait_for_members(d)
    elif phase in ("Progressing", "Paused"):
        if not member_trouble(d):
            run_steps(d)
    elif phase == "Promoting":
        promote(d)
    else:
        roll_back(d)
    return d.plan()
