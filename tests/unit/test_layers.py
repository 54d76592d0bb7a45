"""The import contracts in pyproject.toml hold, and they would catch a product module that
broke them: each breach is made in a copy of the tree, never in the tree itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the tree at `root` (its own `lanes` and `lanes_testbed` first on
    the path), limited to `contracts` when given."""
    env = {**os.environ, "PYTHONPATH": str(root / "testbed"), "COLUMNS": "200"}
    args = [str(LINT), "--no-cache"] + [f"--contract={c}" for c in contracts]
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the product, the test bed and the contracts."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lanes", tmp_path / "lanes", ignore=ignore)
    shutil.copytree(ROOT / "testbed" / "lanes_testbed", tmp_path / "testbed" / "lanes_testbed",
                    ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, line: str) -> None:
    """Append an import to a module of the copy."""
    module.write_text(module.read_text() + f"\n{line}\n")


def test_planning_modules_import_no_cluster_code() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def test_product_importing_the_test_bed_breaks_a_contract(tree: Path) -> None:
    add_import(tree / "lanes" / "render" / "names.py", "import lanes_testbed  # noqa")
    result = lint(tree, "no-testbed")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "The product never imports the test bed BROKEN" in result.stdout
    assert "lanes.render.names -> lanes_testbed" in result.stdout


def test_api_importing_a_higher_layer_breaks_the_layers(tree: Path) -> None:
    add_import(tree / "lanes" / "api" / "common.py", "import lanes.kube.kinds  # noqa")
    result = lint(tree, "layers")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert "lanes.api.common -> lanes.kube.kinds" in result.stdout


def test_planners_importing_each_other_breaks_the_layers(tree: Path) -> None:
    add_import(tree / "lanes" / "graph.py", "import lanes.render.facts  # noqa")
    result = lint(tree, "layers")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "lanes.graph -> lanes.render.facts" in result.stdout
