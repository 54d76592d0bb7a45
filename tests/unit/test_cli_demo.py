"""kubectl lane demo --offline: the walk of the mock-chain story without processes; the story table."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console, RenderableType

from lanes.api.load import load_observations
from lanes_testbed.cli.story import (
    LIVE_STORY,
    STORY,
    V1,
    Check,
    Seen,
    State,
    check_state,
    format_state,
    format_walk,
    walk,
)

from .test_cli import OBSERVED, SAMPLE, invoke


def test_the_offline_walk_matches_the_story() -> None:
    result = invoke("demo", "--offline")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("mock-chain story — offline walk")
    assert "MISMATCH" not in result.stdout
    assert "all 18 checks match the story" in result.stdout


def test_the_story_has_every_state_of_the_table() -> None:
    assert [state.key for state in STORY] == ["0", "1", "2", "3", "4", "U"]
    assert all(set(state.chains) == {"base", "canary"} for state in STORY)


@pytest.mark.parametrize("state", STORY, ids=[f"state-{s.key}" for s in STORY])
def test_the_pods_of_each_state_are_what_its_observation_file_reports(state: State) -> None:
    observed = load_observations(OBSERVED / f"state-{state.key}.yaml")
    for service, lanes in state.pods.items():
        assert set(lanes) == set(observed.lanes_of(service)), service


def test_a_state_showing_something_else_fails_the_demo(tmp_path: Path) -> None:
    observed = tmp_path / "observed"
    shutil.copytree(OBSERVED, observed)
    (observed / "state-3.yaml").write_text(
        "ready: {default/mocka: [base, canary], default/mockb: [base, canary], "
        "default/mockc: [base, canary]}\n"
    )
    result = invoke("demo", "--offline", "--observed-dir", observed)
    assert result.exit_code == 1
    assert "MISMATCH" in result.stdout
    assert "story: mocka: base,canary  mockb: base  mockc:" in result.stdout
    assert "story: mocka v2 -> mockb v2 -> mockc v2" in result.stdout
    assert "mocka v2 -> mockb ? -> mockc v2" in result.stdout
    assert "2 of 18 checks differ from the story" in result.stdout


def test_a_missing_observation_file_is_bad_input(tmp_path: Path) -> None:
    result = invoke("demo", "--offline", "-f", SAMPLE, "--observed-dir", tmp_path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{tmp_path / 'state-0.yaml'}: no such file or directory" in result.stderr


class FixedSource:
    """A source that shows the same thing in every state."""

    label = "fixed"

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def visit(self, state: State) -> Seen:
        return self.seen


def test_walk_compares_any_source_with_the_story() -> None:
    everything_base = Seen(
        subsets={s: ("base",) for s in ("default/mocka", "default/mockb", "default/mockc")},
        chains={"base": V1, "canary": V1},
    )
    results = walk(FixedSource(everything_base))
    passing = [state.key for state, checks in results if all(c.ok for c in checks)]
    assert passing == ["0"]


def test_check_state_reports_subsets_then_each_lane() -> None:
    state = STORY[1]
    seen = Seen(subsets=state.subsets, chains={"base": state.chains["base"]})
    checks = check_state(state, seen)
    assert [(c.what, c.ok) for c in checks] == [
        ("DR subsets", True),
        ("base", True),
        ("canary", False),
    ]
    assert checks[2] == Check(
        "canary", "no route at the gateway", "mocka v2 -> mockb v1 -> mockc v1"
    )


def test_format_walk_labels_the_source() -> None:
    state = STORY[0]
    seen = Seen(subsets=state.subsets, chains=state.chains)
    lines = _render(format_walk("offline walk", [(state, check_state(state, seen))]))
    assert lines[0] == "mock-chain story — offline walk"
    assert lines[-1] == "all 3 checks match the story"


def test_the_live_walk_takes_undo_at_state_2_then_releases_mocka_again() -> None:
    assert [(s.key, s.after) for s in LIVE_STORY] == [
        ("0", None), ("1", "0"), ("2", "1"), ("U", "2"), ("2", "U"), ("3", "2"), ("4", "3"),
    ]
    again = LIVE_STORY[4]
    assert (again.subsets, again.chains, again.pods) == (STORY[2].subsets, STORY[2].chains, STORY[2].pods)
    assert "again" in again.action


def test_format_state_shows_commands_before_checks_and_notes_after() -> None:
    state = STORY[3]
    seen = Seen(subsets=state.subsets, chains=state.chains, commands=("$ kubectl lane approve rollout/rollouts-mockb",),
                notes=("rollouts: mocka Paused",), elapsed=1.25)
    lines = _render(format_state(state, check_state(state, seen), seen, previous="2"))
    assert lines[0] == "state 3: approve rollouts-mockb  [1.2s]"
    assert lines[1] == "  $ kubectl lane approve rollout/rollouts-mockb"
    assert lines[2].split() == ["DR", "subsets", "mocka:", "base,canary", "mockb:", "base", "mockc:", "base,canary", "ok"]
    assert lines[-1] == "  rollouts: mocka Paused"


def test_format_state_names_the_state_it_starts_from_when_that_is_not_the_one_before() -> None:
    state = STORY[3]
    seen = Seen(subsets=state.subsets, chains=state.chains)
    assert _render(format_state(state, check_state(state, seen), seen, previous="U"))[0] == (
        "state 3 (from state 2): approve rollouts-mockb"
    )


def _render(renderable: RenderableType) -> list[str]:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return [line.rstrip() for line in console.export_text().splitlines()]
