"""What `kubectl lane convert` makes of each peer's manifests applies as it is: every golden
case's converted output is accepted by a real API server with lanes' CRDs (schemas and CEL rules)
and the Istio CRDs installed (server-side dry run, in the namespaces the output names).

The one exception is a document convert passes through with a note that plain Istio refuses it
(ASM's `fallback`): there the API server must refuse it, as the note says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanes_testbed.controlplane import ControlPlane
from tests.conftest import ROOT

CASES = ROOT / "tests" / "testdata" / "importers"
CONVERTED = sorted(c for c in CASES.iterdir() if (c / "expected.yaml").exists())
ASM_ONLY = "ASM's extension, which plain Istio"


def asm_only(case: Path) -> bool:
    """Whether the case's notes say its output holds a field only ASM accepts."""
    notes = case / "notes.txt"
    return notes.exists() and ASM_ONLY in notes.read_text()


def dry_run(control_plane: ControlPlane, text: str) -> None:
    docs = [d for d in yaml.safe_load_all(text) if d]
    for namespace in sorted({(d.get("metadata") or {}).get("namespace") for d in docs} - {None}):
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=text)


@pytest.mark.parametrize("case", [c for c in CONVERTED if not asm_only(c)], ids=lambda c: c.name)
def test_converted_output_is_accepted_by_the_api_server(control_plane: ControlPlane, case: Path) -> None:
    dry_run(control_plane, (case / "expected.yaml").read_text())


@pytest.mark.parametrize("case", [c for c in CONVERTED if asm_only(c)], ids=lambda c: c.name)
def test_asm_only_fields_are_refused_by_plain_istio_as_noted(control_plane: ControlPlane, case: Path) -> None:
    with pytest.raises(RuntimeError, match="fallback"):
        dry_run(control_plane, (case / "expected.yaml").read_text())
