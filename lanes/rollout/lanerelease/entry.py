"""The lane's entry: the share of untagged requests the gateway puts into the lane.

This is how a lane release expresses its traffic (a WorkloadRollout's is its `traffic`
percentage): the release's status holds the weight in force, the render flavour draws it into
the gateway's routes (`entry_steps`), and the operator reads back what the gateway routes
(`ReleaseObserved.routed_weight`), which the release waits on before it acts on members.
"""

from __future__ import annotations

from collections.abc import Sequence

from lanes.api.lanerelease import LaneRelease, Mirror
from lanes.api.observations import TrafficStep
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import entry_service
from lanes.render import FLAVOURS

from ..engine import settle_left
from ..status import parse_time
from .unit import DRIVING, ENTERING, ReleaseDraft

ROUTES_POLL = 1.0
"""Seconds between looks at the gateway route while waiting for an entry weight to apply
(a change of the generated route also triggers a look at once)."""


def flavour_problem(d: ReleaseDraft) -> str | None:
    """Why the lane's group cannot carry an entry weight, or None."""
    flavour, lane = d.observed.flavour, d.observed.lane
    known = FLAVOURS.get(flavour) if flavour is not None else None
    if flavour is None or lane is None or (known is not None and known.weighted_entry):
        return None
    weighted = [name for name, f in FLAVOURS.items() if f.weighted_entry]
    return (f"SwimLaneGroup {lane.group} spec.flavour: {flavour} renders no entry weight at "
            f"the gateway, so no untagged request could enter lane {d.lane}; a lane release "
            f"needs flavour {' or '.join(weighted)}")


def routes_settled(d: ReleaseDraft, wanted: int) -> bool:
    """Whether the gateway has routed `wanted` percent into the lane for `routeSettle`."""
    routed = d.observed.routed_weight
    if routed != wanted and not (wanted == 0 and routed is None):
        d.move(routes_since=None)
        d.requeue = ROUTES_POLL
        return False
    settle = d.release.spec.route_settle_seconds
    since = parse_time(d.status.routes_since)
    if since is None:
        d.move(routes_since=d.now.isoformat())
        d.requeue = settle
        return False
    left = settle_left(since, settle, d.now)
    if left > 0:
        d.requeue = left
        return False
    return True


def driven_rollouts(release: LaneRelease) -> set[str]:
    """The rollouts a release drives now, whose own traffic steps therefore do not apply."""
    status = release.status
    if status is None or status.phase not in DRIVING:
        return set()
    return {m.name for m in status.rollouts}


def entry_weight(release: LaneRelease) -> int:
    """The share of untagged requests the release's lane should take at the gateway."""
    status = release.status
    return status.weight if status is not None and status.phase in DRIVING else 0


def mirror_in_force(release: LaneRelease) -> Mirror | None:
    """The release's `mirror` while it is at its shadow step (step 1 of a release that has
    one, progressing or paused), else None: the gateway copies requests into the lane only
    then, never while it promotes or rolls back."""
    status, mirror = release.status, release.spec.mirror
    if mirror is None or status is None or status.phase not in ("Progressing", "Paused"):
        return None
    return mirror if status.current_step_index <= len(release.spec.shadow_steps()) else None


def entry_steps(
    group: SwimLaneGroup, lanes: Sequence[SwimLane], releases: Sequence[LaneRelease]
) -> dict[str, TrafficStep]:
    """The entry step of each release in force on one of the group's lanes, by entry service.

    The step is the group's entry service's (where the gateway sends requests), marked
    `enter`, so the gateway tags what it sends into the lane and every hop keeps it there.
    The release's `matches` hold while it progresses or promotes, not while it rolls back;
    its `mirror` only at its shadow step (`mirror_in_force`).
    """
    fallback = group.spec.fallback
    own = sorted((lane for lane in lanes if lane.group == group.name),
                 key=lambda lane: (lane.name != fallback, lane.name))
    names = {lane.name for lane in own}
    entry = entry_service(group, own)
    found: dict[str, TrafficStep] = {}
    if entry is None:
        return found
    for release in sorted(releases, key=lambda r: r.metadata.name):
        lane = release.spec.swim_lane_ref.name
        status = release.status
        if lane not in names or lane == group.spec.fallback or status is None:
            continue
        matches = release.spec.matches if status.phase in ENTERING else []
        weight = entry_weight(release)
        mirror = mirror_in_force(release)
        if weight or matches or mirror is not None:
            found[entry] = TrafficStep(
                lane=lane, weight=weight, matches=[m.to_request_match() for m in matches],
                enter=True, mirror=mirror.percent if mirror is not None else 0,
                fallback_to_base=mirror is not None and mirror.fallback_to_base,
                session_affinity=release.spec.session_affinity,
            )
    return found
