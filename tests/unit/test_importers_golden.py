"""Golden tests of the importers, one folder per case under tests/testdata/importers/.

A case folder holds `input.yaml` (or `input.ref`, naming a file or directory relative to the
project root) and what `kubectl lane convert -f` makes of it: `expected.yaml`, its stdout;
`notes.txt`, its stderr, when it notes anything; or, for input it refuses, `error.txt`, its
stderr, and no `expected.yaml`. The input's path is written as `input.yaml` in both texts.
Regenerate on purpose with `LANES_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_importers_golden.py`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from lanes.api.load import read_documents
from lanes.cli.inputs import BAD_INPUT
from lanes.importers import importer_for, registered
from tests.conftest import ROOT

from .test_cli import invoke

CASES = ROOT / "tests" / "testdata" / "importers"
UPDATE = os.environ.get("LANES_UPDATE_GOLDEN") == "1"


def input_of(case: Path) -> Path:
    """`input.yaml` in the case folder, or the file or directory its `input.ref` names."""
    ref = case / "input.ref"
    return (ROOT / ref.read_text().strip()).resolve() if ref.exists() else case / "input.yaml"


def convert(case: Path) -> tuple[int, str, str]:
    """The exit code, stdout and stderr of `kubectl lane convert -f` on the case's input."""
    given = input_of(case)
    result = invoke("convert", "-f", given)
    return result.exit_code, result.stdout, result.stderr.replace(str(given), "input.yaml")


CASE_FOLDERS = sorted(folder for folder in CASES.iterdir() if folder.is_dir())


def write_expected(case: Path, code: int, stdout: str, stderr: str) -> None:
    """Rewrite the case's expected files from what convert did."""
    for name in ("expected.yaml", "notes.txt", "error.txt"):
        (case / name).unlink(missing_ok=True)
    if code == 0:
        (case / "expected.yaml").write_text(stdout)
        if stderr:
            (case / "notes.txt").write_text(stderr)
    else:
        (case / "error.txt").write_text(stderr)


def same(case: Path, name: str, actual: str) -> None:
    """Fail with a diff unless the case's file `name` (empty when absent) reads `actual`."""
    path = case / name
    expected = path.read_text() if path.exists() else ""
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(expected.splitlines(), actual.splitlines(), name, "actual", lineterm="")
        )
        pytest.fail(f"{case.name}: convert's output differs from {path}\n{diff}")


@pytest.mark.parametrize("case", CASE_FOLDERS, ids=lambda c: c.name)
def test_convert_matches_golden(case: Path) -> None:
    code, stdout, stderr = convert(case)
    if UPDATE:
        write_expected(case, code, stdout, stderr)
        return
    if (case / "error.txt").exists():
        assert (code, stdout) == (BAD_INPUT, ""), f"{case.name}: refused input must exit 2, stdout empty"
        same(case, "error.txt", stderr)
        return
    assert code == 0, f"{case.name}: convert failed\n{stderr}"
    assert (case / "expected.yaml").exists(), f"{case.name}: no expected.yaml (set LANES_UPDATE_GOLDEN=1)"
    same(case, "expected.yaml", stdout)
    same(case, "notes.txt", stderr)


def test_every_source_kind_has_a_golden_case() -> None:
    covered = {
        importer_for(doc.body).key
        for case in CASE_FOLDERS
        for doc in read_documents(input_of(case))
        if importer_for(doc.body) is not None
    }
    assert covered == set(registered())
