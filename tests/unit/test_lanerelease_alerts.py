"""A lane release's chat notices: its events worded for a lane, and the move into a step that
waits for approval told once."""

from __future__ import annotations

from datetime import timedelta

from lanes.alerts import notices_of
from lanes.operator.lanereleases import release_notices
from lanes.rollout import Event
from lanes.rollout.lanerelease import ReleaseObserved, plan_release

from .test_lanerelease import LANE, NOW, advance, release, rollouts


def test_a_lane_releases_events_are_worded_for_the_lane() -> None:
    events = [
        Event("Started", "lanerelease/seed started: rollouts-mocka released together"),
        Event("Advance", "Advance lanerelease/seed: entry weight 25% into lane canary"),
        Event("Succeeded", "lane canary promoted"),
        Event("RolledBack", "lane canary rolled back (Aborted): every rollout is on its stable "
                            "revision", "Warning"),
        Event("WaitingForPromotion", "not a move a person follows"),
    ]
    made = notices_of("lanerelease", "seed", "shop", events)
    assert [(n.severity, n.title) for n in made] == [
        ("info", "lane release started"),
        ("info", "next step: the lane's entry weight moves on"),
        ("info", "lane promoted"),
        ("error", "lane rolled back"),
    ]
    assert made[-1].subject == "lanerelease/seed.shop" and "(Aborted)" in made[-1].text


def test_a_rollouts_events_keep_their_own_words() -> None:
    [made] = notices_of("workloadrollout", "r", "shop", [Event("Promoted", "done")])
    assert made.title == "promoted"
    assert notices_of("workloadrollout", "r", "shop", [Event("Started", "x")]) == []


def test_a_lane_release_tells_of_the_move_into_an_approval_wait_once() -> None:
    rel = release(steps=[{"weight": 10, "pause": {}}], analysis=None)
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    assert rel.status.phase == "Waiting"
    plan = plan_release(rel, observed, NOW + timedelta(seconds=1))
    assert plan.status.phase == "Progressing"
    made = release_notices(rel, plan)
    assert [n.title for n in made] == ["lane release started", "waiting for approval"]
    assert "kubectl lane approve lanerelease/seed -n default" in made[-1].text
    rel = advance(rel, plan)
    again = plan_release(rel, observed, NOW + timedelta(seconds=2))
    assert release_notices(rel, again) == []


def test_a_step_under_analysis_without_pause_waits_for_no_one() -> None:
    rel = release(steps=[{"weight": 10}])
    observed = ReleaseObserved(LANE, rollouts())
    rel = advance(rel, plan_release(rel, observed, NOW))
    plan = plan_release(rel, observed, NOW + timedelta(seconds=1))
    assert [n.title for n in release_notices(rel, plan)] == ["lane release started"]
