"""The mesh CRDs lanes ships for its local stack: Istio's as released, and ASM's variant."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanes_testbed import meshcrds


def test_the_shipped_istio_crds_name_the_release_they_come_from() -> None:
    header = meshcrds.ISTIO_CRDS.read_text().splitlines()[:3]
    assert header[0].startswith("# Extracted from istio/istio tag 1.30.")
    assert "Apache-2.0" in header[1]


def test_the_shipped_extension_crds_name_the_release_they_come_from() -> None:
    header = meshcrds.ISTIO_EXTENSION_CRDS.read_text().splitlines()[:3]
    assert header[0].startswith("# Extracted from the istio.io/istio Go module")
    assert "Istio 1.30 branch" in header[0] and "Apache-2.0" in header[1]


def test_istio_crds_declare_the_networking_and_workload_kinds_and_wasmplugin() -> None:
    kinds = sorted(crd["spec"]["names"]["kind"] for crd in meshcrds.istio_crds())
    assert kinds == ["DestinationRule", "Gateway", "ServiceEntry", "Sidecar", "VirtualService",
                     "WasmPlugin", "WorkloadEntry"]


def _route_destination(crd: dict, version: str) -> dict:
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    spec = served["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec["properties"]["http"]["items"]["properties"]["route"]["items"]["properties"]


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_asm_crds_keep_fallback_on_every_virtualservice_version(version: str) -> None:
    virtual_service = next(c for c in meshcrds.mesh_crds("asm") if c["spec"]["names"]["kind"] == "VirtualService")
    assert _route_destination(virtual_service, version)["fallback"] == meshcrds.FALLBACK_SCHEMA
    istio = next(c for c in meshcrds.mesh_crds("istio") if c["spec"]["names"]["kind"] == "VirtualService")
    assert "fallback" not in _route_destination(istio, version)


def test_asm_crds_change_nothing_but_the_virtualservice() -> None:
    istio, asm = meshcrds.mesh_crds("istio"), meshcrds.mesh_crds("asm")
    assert [c for c in asm if c["spec"]["names"]["kind"] != "VirtualService"] == [
        c for c in istio if c["spec"]["names"]["kind"] != "VirtualService"
    ]


def test_unknown_flavour_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown flavour 'linkerd'"):
        meshcrds.mesh_crds("linkerd")


def test_write_manifests_gives_lanes_crds_then_the_mesh_crds(tmp_path: Path) -> None:
    paths = meshcrds.write_manifests(tmp_path, "asm")
    assert [p.name for p in paths] == [
        "lanes.dev_alertproviders.yaml",
        "lanes.dev_lanereleases.yaml",
        "lanes.dev_metrictemplates.yaml",
        "lanes.dev_swimlanegroups.yaml",
        "lanes.dev_swimlanes.yaml",
        "lanes.dev_workloadrollouts.yaml",
        "asm-networking-crds.yaml",
    ]
    root = Path(__file__).resolve().parents[2]
    for path in paths[:-1]:
        assert path.read_text() == (root / "crds" / path.name).read_text()
    assert list(yaml.safe_load_all(paths[-1].read_text())) == meshcrds.mesh_crds("asm")
