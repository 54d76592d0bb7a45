"""kubectl lane graph: Mermaid and dot drawings as pure functions, png through Graphviz."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lanes.api.observations import Observations
from lanes.api.topology import resolve
from lanes.cli.graph import dot_quote, format_dot, format_mermaid, mermaid_id
from lanes.graph import build_graph
from lanes.importers import load

from .test_cli import SAMPLE, invoke

OBSERVED = Observations(
    ready={"default/mocka": ["base", "canary"]},
    edges=[("default/mockb", "default/mockc"), ("default/mockc", "default/redis")],
)


def drawings(observed: Observations | None = None) -> list:
    bundle = load(SAMPLE)
    topology = resolve(bundle.groups[0], bundle.lanes, observed)
    return [(topology, build_graph(topology, observed))]


def test_mermaid_of_the_sample() -> None:
    assert format_mermaid(drawings()) == (
        "flowchart LR\n"
        '  subgraph rollout["group rollout"]\n'
        '    rollout__gateway(["gateway istio-system/ingressgateway"])\n'
        '    rollout__default_mocka["default/mocka<br/>lanes: base"]\n'
        '    rollout__default_mockb["default/mockb<br/>lanes: base"]\n'
        '    rollout__default_mockc["default/mockc<br/>lanes: base"]\n'
        "    rollout__gateway --> rollout__default_mocka\n"
        "    rollout__default_mocka --> rollout__default_mockb\n"
        "    rollout__default_mockb --> rollout__default_mockc\n"
        "  end\n"
    )


def test_mermaid_marks_lanes_observed_calls_and_outside_services() -> None:
    text = format_mermaid(drawings(OBSERVED))
    assert '["default/mocka<br/>lanes: base, canary"]' in text
    assert "rollout__default_mockb --> rollout__default_mockc" in text
    assert "rollout__default_mockc -.->|observed| rollout__default_redis" in text
    assert '["default/redis<br/>outside the group"]' in text
    assert text.endswith("  class rollout__default_redis outside\n")


def test_dot_of_the_sample_with_observations() -> None:
    text = format_dot(drawings(OBSERVED))
    assert text.startswith("digraph lanes {\n  rankdir=LR;\n")
    assert '    "rollout/default/mocka" [label="default/mocka\\nlanes: base, canary"];\n' in text
    redis = '"rollout/default/redis"'
    assert f'    {redis} [label="default/redis\\noutside the group", style=dashed];\n' in text
    assert '  "rollout/gateway" -> "rollout/default/mocka";\n' in text
    assert '  "rollout/default/mockb" -> "rollout/default/mockc";\n' in text
    assert f'  "rollout/default/mockc" -> {redis} [style=dashed, label="observed"];\n' in text
    assert text.endswith("}\n")


QUOTES = {
    "plain": ("a/b", '"a/b"'),
    "newline": ("a\nb", '"a\\nb"'),
    "quote": ('say "hi"', '"say \\"hi\\""'),
    "backslash": ("a\\b", '"a\\\\b"'),
}


@pytest.mark.parametrize("text,expected", QUOTES.values(), ids=QUOTES.keys())
def test_dot_quote(text: str, expected: str) -> None:
    assert dot_quote(text) == expected


def test_mermaid_ids_are_safe_and_distinct() -> None:
    assert mermaid_id("g", "ns-1/svc.x") == "g__ns_1_svc_x"
    assert mermaid_id("g", "a/b") != mermaid_id("h", "a/b")


def test_graph_verb_prints_mermaid_and_writes_files(tmp_path: Path) -> None:
    printed = invoke("graph", "-f", SAMPLE)
    assert printed.exit_code == 0
    assert printed.stdout == format_mermaid(drawings())
    target = tmp_path / "chain.dot"
    written = invoke("graph", "-f", SAMPLE, "--format", "dot", "-o", target)
    assert written.exit_code == 0
    assert written.stdout == ""
    assert target.read_text() == format_dot(drawings())


def test_graph_verb_warns_about_findings(tmp_path: Path) -> None:
    observed = tmp_path / "obs.yaml"
    observed.write_text("edges: [[default/mockc, default/redis]]\n")
    result = invoke("graph", "-f", SAMPLE, "--observed", observed)
    assert result.exit_code == 0
    assert "warning: group rollout: default/mockc: calls default/redis (observed)" in result.stderr


def test_png_without_graphviz_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = invoke("graph", "-f", SAMPLE, "--format", "png", "-o", tmp_path / "g.png")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "needs Graphviz's `dot` program, which is not on PATH" in result.stderr
    assert not (tmp_path / "g.png").exists()


def fake_dot(folder: Path, body: str) -> None:
    """A stand-in for Graphviz's `dot` on PATH."""
    program = folder / "dot"
    program.write_text(f"#!/bin/sh\n{body}\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)


def test_png_is_drawn_by_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dot(tmp_path, 'test "$1" = -Tpng && printf PNG && cat > "$(dirname "$0")/input.dot"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    target = tmp_path / "g.png"
    result = invoke("graph", "-f", SAMPLE, "--format", "png", "-o", target)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"PNG"
    assert (tmp_path / "input.dot").read_text() == format_dot(drawings())


def test_a_failing_dot_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dot(tmp_path, "echo 'syntax error in line 3' >&2; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = invoke("graph", "-f", SAMPLE, "--format", "png", "-o", tmp_path / "g.png")
    assert result.exit_code == 1
    assert "error: dot failed: syntax error in line 3" in result.stderr
