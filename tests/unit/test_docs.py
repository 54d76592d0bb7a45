"""The manual builds with --strict, and its generated reference covers the whole API.

The site is built once per module into a temporary folder, as `make docs` builds it; a broken
link or anchor fails the build, and so this suite.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
import yaml
from prometheus_client import CollectorRegistry

from lanes.analysis.queries import BUILTIN_METRICS, SOURCES
from lanes.api.crds import KINDS, crd
from lanes.cli.main import app
from lanes.operator.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def build(site: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of `config` into `site`."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site."""
    folder = tmp_path_factory.mktemp("site")
    result = build(folder)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return folder


def page(site: Path, name: str) -> str:
    """The HTML of one built page, e.g. `reference/cli`, without the line-break hints."""
    return (site / name / "index.html").read_text().replace("<wbr>", "")


def crd_paths(node: dict, path: str = "") -> Iterator[str]:
    """Every property path of a CRD schema: `spec.services[].name`, `...headers.*.exact`."""
    for name, sub in node.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        yield here
        yield from crd_paths(sub, here)
    if isinstance(node.get("items"), dict):
        yield from crd_paths(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from crd_paths(node["additionalProperties"], f"{path}.*")


def kind_paths(entry: dict) -> list[str]:
    """The spec and status field paths of one kind's generated CRD."""
    schema = crd(entry)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [p for p in crd_paths(schema) if p.split(".")[0].split("[")[0] in ("spec", "status")]


def test_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "reference" / "swimlanegroup" / "index.html").is_file()


@pytest.mark.parametrize("entry", KINDS, ids=[e["kind"] for e in KINDS])
def test_every_crd_field_is_in_the_reference(site: Path, entry: dict) -> None:
    text = page(site, f"reference/{entry['kind'].lower()}")
    missing = [p for p in kind_paths(entry) if f"<code>{html.escape(p)}</code>" not in text]
    assert not missing, f"fields of {entry['kind']} missing from its reference page: {missing}"


def test_field_notes_name_only_real_fields() -> None:
    notes = yaml.safe_load((DOCS / "reference" / "field-notes.yaml").read_text())
    kinds = {e["kind"]: set(kind_paths(e)) for e in KINDS}
    stale = [
        f"{kind}: {path}"
        for kind, fields in notes.items()
        for path in fields
        if path not in kinds.get(kind, set())
    ]
    assert not stale, f"docs/reference/field-notes.yaml names fields that do not exist: {stale}"


def test_every_verb_is_in_the_cli_reference(site: Path) -> None:
    text = page(site, "reference/cli")

    def verbs(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            yield [*words, name]
            yield from verbs(sub, [*words, name])

    missing = [
        " ".join(words)
        for words in verbs(typer.main.get_command(app), [])
        if f"<code>{html.escape(' '.join(words))}</code>" not in text
    ]
    assert not missing, f"verbs missing from the CLI reference: {missing}"


def test_every_builtin_query_is_in_the_metrics_reference(site: Path) -> None:
    text = page(site, "reference/metrics")
    for metric in BUILTIN_METRICS:
        for source in SOURCES:
            assert f'id="{metric}-{source}"' in text, (metric, source)


def test_every_chart_value_is_in_the_reference(site: Path) -> None:
    values = yaml.safe_load((ROOT / "charts" / "lanes" / "values.yaml").read_text())

    def leaves(node, path):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{path}.{key}" if path else key)
        else:
            yield path

    text = page(site, "reference/chart-values")
    missing = [p for p in leaves(values, "") if f"<code>{html.escape(p)}</code>" not in text]
    assert not missing, f"chart values missing from the reference: {missing}"


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs, ignore=shutil.ignore_patterns("__pycache__"))
    with (docs / "index.md").open("a") as index:
        index.write("\n[broken](reference/swimlanegroup.md#no-such-field)\n")
    (tmp_path / "mkdocs.yml").write_text(
        (ROOT / "mkdocs.yml").read_text()
        .replace("docs_dir: docs", f"docs_dir: {docs}")
        .replace("  - docs/hooks.py", f"  - {DOCS / 'hooks.py'}")
    )
    result = build(tmp_path / "site", tmp_path / "mkdocs.yml")
    assert result.returncode != 0
    assert "no-such-field" in result.stdout + result.stderr


def test_every_operator_metric_is_in_the_metrics_reference(site: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.read_releases(lambda: [])
    text = page(site, "reference/metrics")
    missing = [f.name for f in metrics.registry.collect() if f"<code>{f.name}" not in text]
    assert not missing, f"metrics missing from the reference: {missing}"
