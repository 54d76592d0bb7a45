"""Golden tests of the renderer, one folder per case under tests/testdata/render/.

A case folder holds `input.yaml`, optionally `observed.yaml`, a `flavour` file, optionally
`trace-affinity.yaml` (the trace-affinity module's url, sha256 and limits, for groups in ASM's
trace-ID mode), and `expected.yaml`. Any of the YAML files may instead be a `<name>.ref` file naming a path relative
to the project root (the reference material is under `tests/testdata/reference/`). Regenerate on purpose
with `LANES_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_render_golden.py`; a case whose
expected output is a reference file is never rewritten.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lanes.api.load import load_observations
from lanes.cli.yamlout import Dumper
from lanes.importers import load
from lanes.render import TraceAffinityModule, render_group
from tests.conftest import REFERENCE, ROOT
from tests.istio_schema import problems

CASES = ROOT / "tests" / "testdata" / "render"
UPDATE = os.environ.get("LANES_UPDATE_GOLDEN") == "1"


@dataclass(frozen=True)
class Case:
    """One golden case folder."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def flavour(self) -> str:
        return (self.folder / "flavour").read_text().strip()

    def path(self, stem: str) -> Path | None:
        """`<stem>.yaml` in the folder, or the file its `<stem>.ref` names."""
        own = self.folder / f"{stem}.yaml"
        if own.exists():
            return own
        ref = self.folder / f"{stem}.ref"
        if ref.exists():
            return (ROOT / ref.read_text().strip()).resolve()
        return None

    def render(self) -> list[dict]:
        bundle = load(self.path("input"))
        observed_path = self.path("observed")
        observed = load_observations(observed_path) if observed_path else None
        objects = []
        for group in bundle.groups:
            objects.extend(
                render_group(group, bundle.lanes, observed, self.flavour, self.trace_affinity)
            )
        return objects

    @property
    def trace_affinity(self) -> TraceAffinityModule | None:
        path = self.folder / "trace-affinity.yaml"
        if not path.exists():
            return None
        given = yaml.safe_load(path.read_text())
        return TraceAffinityModule(
            url=given["url"],
            sha256=given.get("sha256"),
            max_entries=given.get("maxEntries", TraceAffinityModule.max_entries),
            max_age_seconds=given.get("maxAgeSeconds", TraceAffinityModule.max_age_seconds),
        )


def all_cases() -> list[Case]:
    return [Case(folder) for folder in sorted(CASES.iterdir()) if folder.is_dir()]


def dump(objects: list[dict]) -> str:
    return yaml.dump_all(objects, Dumper=Dumper, sort_keys=False, width=120)


def read_expected(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_render_matches_golden(case: Case) -> None:
    actual = case.render()
    expected_path = case.path("expected")
    if UPDATE and (expected_path is None or expected_path.parent == case.folder):
        (case.folder / "expected.yaml").write_text(dump(actual))
        return
    assert expected_path is not None, f"{case.name}: no expected.yaml (set LANES_UPDATE_GOLDEN=1)"
    expected = read_expected(expected_path)
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                dump(expected).splitlines(),
                dump(actual).splitlines(),
                "expected",
                "actual",
                lineterm="",
            )
        )
        pytest.fail(f"{case.name}: rendered objects differ from {expected_path}\n{diff}")


def test_asm_state_0_is_the_reference_output() -> None:
    case = Case(CASES / "asm-state-0")
    reference = REFERENCE / "asm-mock-chain-expected.yaml"
    assert case.path("expected") == reference.resolve()
    assert case.render() == read_expected(case.path("expected"))


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.name)
def test_golden_output_passes_the_istio_schema(case: Case) -> None:
    # ASM's `fallback` is an extension plain Istio prunes; everything else must hold.
    allowed = ("fallback",) if case.flavour == "asm" else ()
    found = [
        f"{obj['kind']}/{obj['metadata']['name']}: {problem}"
        for obj in case.render()
        for problem in problems(obj, allow_pruned=allowed)
    ]
    assert found == []


# The story's table: DestinationRule subsets of mocka / mockb / mockc in each state.
STORY_SUBSETS = {
    "0": (["base"], ["base"], ["base"]),
    "1": (["base", "canary"], ["base"], ["base"]),
    "2": (["base", "canary"], ["base", "canary"], ["base", "canary"]),
    "3": (["base", "canary"], ["base"], ["base", "canary"]),
    "4": (["base"], ["base"], ["base"]),
    "U": (["base"], ["base", "canary"], ["base", "canary"]),
}


@pytest.mark.parametrize("flavour", ["asm", "istio"])
@pytest.mark.parametrize("state", list(STORY_SUBSETS))
def test_destination_rule_subsets_follow_the_story(flavour: str, state: str) -> None:
    objects = Case(CASES / f"{flavour}-state-{state}").render()
    subsets = {
        obj["spec"]["host"].split(".")[0]: [s["name"] for s in obj["spec"]["subsets"]]
        for obj in objects
        if obj["kind"] == "DestinationRule"
    }
    assert (subsets["mocka"], subsets["mockb"], subsets["mockc"]) == STORY_SUBSETS[state]


@pytest.mark.parametrize("state", [s for s in STORY_SUBSETS if s != "0"])
def test_asm_states_change_only_destination_rules(state: str) -> None:
    # ASM routes by `$asm-label` with a fallback, so only the subsets follow the pods.
    first = Case(CASES / "asm-state-0").render()
    later = Case(CASES / f"asm-state-{state}").render()
    assert [o for o in later if o["kind"] == "VirtualService"] == [
        o for o in first if o["kind"] == "VirtualService"
    ]
