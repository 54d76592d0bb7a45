"""Input that is not what a verb can read ends in exit 2 and one line naming the file."""

from __future__ import annotations

from pathlib import Path

from .test_cli import SAMPLE, invoke, sample_copy


def test_a_file_that_is_not_text_is_refused_naming_it(tmp_path: Path) -> None:
    binary = tmp_path / "x.yaml"
    binary.write_bytes(bytes(range(256)) * 4 + b"\xff\xfe\x00")
    result = invoke("render", "-f", binary)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {binary}: is not UTF-8 text\n"


def test_a_lane_pasted_twice_is_refused_naming_both_documents(tmp_path: Path) -> None:
    sample = sample_copy(tmp_path)
    lanes = (sample / "lanes.yaml").read_text()
    (sample / "lanes.yaml").write_text(lanes + "\n---\n" + lanes.split("---\n")[2])
    result = invoke("render", "-f", sample)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "SwimLane/canary: metadata.name: defined twice" in result.stderr
    assert f"in {sample / 'lanes.yaml'}#3 and in {sample / 'lanes.yaml'}#4" in result.stderr


def test_asm_rule_based_spelling_routes_as_rule_based(tmp_path: Path) -> None:
    sample = sample_copy(tmp_path)
    text = (sample / "lanes.yaml").read_text()
    assert "ingressRoutingStrategy: rule_based" in text
    (sample / "lanes.yaml").write_text(text.replace("rule_based", "rule-based"))
    result = invoke("render", "-f", sample)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == invoke("render", "-f", SAMPLE).stdout
