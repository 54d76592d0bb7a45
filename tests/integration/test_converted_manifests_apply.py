"""What `kubectl lane convert` makes of each peer's manifests applies as it is: every golden
case's converted output is accepted by a real API server with lanes' CRDs (schemas and CEL rules)
and the Istio CRDs installed (server-side dry run, in the namespaces the output names)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanes_testbed.controlplane import ControlPlane
from tests.conftest import ROOT

CASES = ROOT / "tests" / "testdata" / "importers"
CONVERTED = sorted(c for c in CASES.iterdir() if (c / "expected.yaml").exists())


@pytest.mark.parametrize("case", CONVERTED, ids=lambda c: c.name)
def test_converted_output_is_accepted_by_the_api_server(control_plane: ControlPlane, case: Path) -> None:
    text = (case / "expected.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    for namespace in sorted({(d.get("metadata") or {}).get("namespace") for d in docs} - {None}):
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=text)
