"""The wheel and the image hold the product only: no test-bed module, no Envoy."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    """The wheel built from a copy of the tracked tree; its names and its METADATA."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    # A copy of the tracked tree, so the build writes nothing into the checkout.
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split("\0")
    for name in filter(None, files):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("lanes-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    return wheel, names, metadata


def test_the_wheel_holds_no_test_bed_and_needs_no_envoy(built_wheel) -> None:
    wheel, names, metadata = built_wheel
    top = {name.split("/")[0] for name in names}
    assert top == {"lanes", wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info"}
    assert not [n for n in names if "testbed" in n or n.startswith("lanes/dev/")]
    assert "lanes/operator/run.py" in names and "lanes/traceaffinity/src/lib.rs" in names
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requirements and not [r for r in requirements if "envoy" in r.lower()]


def test_the_wheel_ships_the_built_dashboard_page_and_not_its_sources(built_wheel) -> None:
    _, names, _ = built_wheel
    assert "lanes/dashboard/static/index.html" in names
    assert [n for n in names if n.startswith("lanes/dashboard/static/assets/") and n.endswith(".js")]
    assert not [n for n in names if n.startswith("lanes/dashboard/web/")]


def test_the_image_copies_the_product_only() -> None:
    copies = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY") and "--from" not in line]
    assert copies and all(not c.startswith("testbed") for c in copies)
    assert "lanes" in copies
