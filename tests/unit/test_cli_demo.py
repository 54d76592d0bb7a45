"""kubectl lane demo: the offline walk of the mock-chain story, checked state by state."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lanes.api.load import load_observations
from lanes.cli.demo import STORY, V1, Check, Seen, State, check_state, format_walk, walk

from .test_cli import OBSERVED, SAMPLE, invoke


def test_the_offline_walk_matches_the_story() -> None:
    result = invoke("demo")
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
    result = invoke("demo", "--observed-dir", observed)
    assert result.exit_code == 1
    assert "MISMATCH" in result.stdout
    assert "story: mocka: base,canary  mockb: base  mockc:" in result.stdout
    assert "story: mocka v2 -> mockb v2 -> mockc v2" in result.stdout
    assert "mocka v2 -> mockb ? -> mockc v2" in result.stdout
    assert "2 of 18 checks differ from the story" in result.stdout


def test_a_missing_observation_file_is_bad_input(tmp_path: Path) -> None:
    result = invoke("demo", "-f", SAMPLE, "--observed-dir", tmp_path)
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
    text = str(format_walk("offline walk", [(state, check_state(state, seen))]).renderables[0])
    assert text == "mock-chain story — offline walk"
