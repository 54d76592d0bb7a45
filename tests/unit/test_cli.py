"""kubectl lane as a whole: the verbs it offers, and how every verb turns away bad input."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from lanes.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "mock-chain"
OBSERVED = SAMPLE / "observed"


def invoke(*args: str | Path) -> Result:
    """Run kubectl lane in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args])


def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the mock-chain sample (without its observation files)."""
    target = tmp_path / "sample"
    target.mkdir()
    for file in SAMPLE.glob("*.yaml"):
        shutil.copy(file, target / file.name)
    return target


def sample_documents() -> list[dict]:
    """Every document of the sample, in file order."""
    return [
        doc
        for file in sorted(SAMPLE.glob("*.yaml"))
        for doc in yaml.safe_load_all(file.read_text())
    ]


def test_help_lists_every_verb() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for verb in ("render", "trace", "graph", "convert", "demo", "version", "dev"):
        assert verb in result.stdout


@pytest.mark.parametrize("args", [["version"], ["--version"]], ids=["verb", "option"])
def test_version(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 0
    assert result.stdout.startswith("kubectl-lane ")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def with_change(tmp_path: Path, kind: str, name: str, change) -> Path:
    """The sample as one file, with one object changed by `change(body)`."""
    docs = copy.deepcopy(sample_documents())
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            change(doc)
    return write(tmp_path, "changed.yaml", yaml.safe_dump_all(docs, sort_keys=False))


def set_fallback(doc: dict) -> None:
    doc["spec"]["permissiveModeConfiguration"]["fallbackTarget"] = "stable"


def misspell_field(doc: dict) -> None:
    doc["spec"]["autoUpdat"] = doc["spec"].pop("autoUpdate")


def bad_rule_host(doc: dict) -> None:
    doc["spec"]["ingressRules"][0]["route"]["destination"]["host"] = "mockz.default"


def bad_selector(doc: dict) -> None:
    doc["spec"]["labelSelector"] = {"ASM_TRAFFIC_TAG": "base"}


# Each case: files to write (name -> text, or a builder), then the text the error must carry.
BAD_INPUT = {
    "missing-file": (
        lambda tmp: tmp / "nope.yaml",
        ["nope.yaml", "no such file or directory"],
    ),
    "not-yaml": (
        lambda tmp: write(tmp, "broken.yaml", "kind: [unclosed\n"),
        ["broken.yaml: while parsing"],
    ),
    "document-not-a-mapping": (
        lambda tmp: write(tmp, "list.yaml", "- a\n- b\n"),
        ["list.yaml", "document 1", "is not a mapping"],
    ),
    "no-group": (
        lambda tmp: write(tmp, "empty.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"),
        ["empty.yaml", "holds no SwimLaneGroup"],
    ),
    "empty-directory": (
        lambda tmp: (tmp / "empty").mkdir() or tmp / "empty",
        ["empty", "holds no SwimLaneGroup"],
    ),
    "unknown-field": (
        lambda tmp: with_change(tmp, "SwimLaneGroup", "rollout", misspell_field),
        ["changed.yaml#", "SwimLaneGroup/rollout", "spec.autoUpdat", "unknown field"],
    ),
    "fallback-is-not-a-lane": (
        lambda tmp: with_change(tmp, "SwimLaneGroup", "rollout", set_fallback),
        ["changed.yaml#", "SwimLaneGroup/rollout", "permissiveModeConfiguration.fallbackTarget"],
    ),
    "rule-host-outside-group": (
        lambda tmp: with_change(tmp, "SwimLane", "canary", bad_rule_host),
        ["changed.yaml#", "SwimLane/canary", "spec.ingressRules[0].route.destination.host"],
    ),
    "two-lanes-select-the-same-pods": (
        lambda tmp: with_change(tmp, "SwimLane", "canary", bad_selector),
        ["changed.yaml#", "SwimLane/canary", "spec.labelSelector", "same pods as lane 'base'"],
    ),
    "asm-group-with-a-bad-field": (
        lambda tmp: write(
            tmp,
            "asm.yaml",
            "apiVersion: istio.alibabacloud.com/v1\nkind: ASMSwimLaneGroup\n"
            "metadata: {name: g}\nspec: {isPermissive: maybe}\n",
        ),
        ["asm.yaml", "SwimLaneGroup/g", "spec.isPermissive"],
    ),
}

VERBS = {
    "render": ["render"],
    "trace": ["trace", "-H", "x-asm-prefer-tag: canary", "--path", "/mock"],
    "graph": ["graph"],
}


@pytest.mark.parametrize("verb", VERBS.values(), ids=VERBS.keys())
@pytest.mark.parametrize("make,expected", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_named_on_stderr_with_exit_2(
    tmp_path: Path, verb: list[str], make, expected: list[str]
) -> None:
    result = invoke(*verb, "-f", make(tmp_path))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    for text in expected:
        assert text in result.stderr


OBSERVATIONS = {
    "missing": (None, ["missing.yaml", "no such file"]),
    "ready-not-a-mapping": ("ready: [a, b]\n", ["Observations/obs.yaml", "ready"]),
    "edge-not-a-pair": ("edges: [[a, b, c]]\n", ["Observations/obs.yaml", "edges[0]"]),
    "unknown-key": ("redy: {}\n", ["Observations/obs.yaml", "redy", "unknown field"]),
}


@pytest.mark.parametrize("verb", VERBS.values(), ids=VERBS.keys())
@pytest.mark.parametrize("text,expected", OBSERVATIONS.values(), ids=OBSERVATIONS.keys())
def test_bad_observations_are_named(
    tmp_path: Path, verb: list[str], text: str | None, expected: list[str]
) -> None:
    path = tmp_path / ("missing.yaml" if text is None else "obs.yaml")
    if text is not None:
        path.write_text(text)
    result = invoke(*verb, "-f", SAMPLE, "--observed", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    for part in expected:
        assert part in result.stderr


OPTIONS = {
    "unknown-flavour": (["render", "-f", SAMPLE, "--flavour", "linkerd"], "--flavour"),
    "unknown-trace-output": (["trace", "-f", SAMPLE, "-o", "yaml"], "--output"),
    "unknown-graph-format": (["graph", "-f", SAMPLE, "--format", "svg"], "--format"),
    "header-without-colon": (["trace", "-f", SAMPLE, "-H", "x-lane"], "expected 'name: value'"),
    "png-to-stdout": (["graph", "-f", SAMPLE, "--format", "png"], "give a file with -o"),
    "no-filename": (["render"], "-f"),
    "unknown-group": (["trace", "-f", SAMPLE, "-g", "other"], "--group: 'other' is not a group"),
}


@pytest.mark.parametrize("args,expected", OPTIONS.values(), ids=OPTIONS.keys())
def test_bad_options_exit_2_with_nothing_on_stdout(args: list, expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert expected in result.stderr


def test_a_lane_of_an_unknown_group_is_a_warning(tmp_path: Path) -> None:
    sample = sample_copy(tmp_path)
    (sample / "stray.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "lanes.dev/v1alpha1",
                "kind": "SwimLane",
                "metadata": {"name": "blue", "labels": {"swimlane-group": "other"}},
                "spec": {"labelSelector": {"lane": "blue"}},
            }
        )
    )
    result = invoke("graph", "-f", sample)
    assert result.exit_code == 0
    assert "warning: SwimLane/blue: metadata.labels.swimlane-group: 'other'" in result.stderr
