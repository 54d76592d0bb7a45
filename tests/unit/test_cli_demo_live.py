"""The live demo's pure pieces: actions per state, commands shown, answers read, flavour set."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanes_testbed.cli.livestory import ACTIONS, IMAGE, PHASES, Answer, chain_of, command_line, sample_documents
from lanes_testbed.cli.story import LIVE_STORY, NO_ROUTE

from .test_cli import SAMPLE, invoke

ANSWER = ("-> mocka(version: v2, ip: 127.0.0.14)-> mockb(version: v1, ip: 127.0.0.12)"
          "-> mockc(version: v1, ip: 127.0.0.13)\n")


def test_every_live_state_has_an_action_and_rollout_phases() -> None:
    assert [ACTIONS[(s.key, s.after)] for s in LIVE_STORY][:2] == [(("apply", ""),), (("image", "mocka"),)]
    assert all(set(PHASES[s.key]) == {"mocka", "mockb", "mockc"} for s in LIVE_STORY)


@pytest.mark.parametrize(
    ("verb", "service", "line"),
    [
        ("apply", "", f"kubectl apply --server-side -f {SAMPLE}"),
        ("image", "mockb", f"kubectl set image deployment/mockb-v1 default={IMAGE}:2.0"),
        ("approve", "mocka", "kubectl lane approve rollout/rollouts-mocka"),
        ("undo", "mocka", "kubectl lane undo rollout/rollouts-mocka"),
    ],
    ids=["apply", "image", "approve", "undo"],
)
def test_each_action_is_shown_as_the_command_a_user_types(verb: str, service: str, line: str) -> None:
    assert command_line(verb, service, SAMPLE) == line


def test_an_answer_reads_as_the_story_writes_chains() -> None:
    assert chain_of(ANSWER) == "mocka v2 -> mockb v1 -> mockc v1"
    assert Answer("canary", 1, 200, ANSWER).chain == "mocka v2 -> mockb v1 -> mockc v1"
    assert Answer("canary", 1, 404, "").chain == NO_ROUTE
    assert Answer("canary", 1, 503, "no healthy upstream").chain == "HTTP 503: no healthy upstream"
    assert Answer("canary", 1, 0, "no answer: refused").chain == "HTTP 0: no answer: refused"


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_the_sample_is_applied_with_the_group_in_the_chosen_flavour(flavour: str) -> None:
    documents = sample_documents(SAMPLE, flavour)
    kinds = sorted({d["kind"] for d in documents})
    assert kinds == ["Deployment", "Gateway", "Service", "SwimLane", "SwimLaneGroup", "WorkloadRollout"]
    assert [d["spec"]["flavour"] for d in documents if d["kind"] == "SwimLaneGroup"] == [flavour]


def test_an_unknown_flavour_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = invoke("demo", "--flavour", "linkerd")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "'linkerd' is not one of istio, asm" in result.stderr
