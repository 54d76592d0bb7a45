"""The CustomResourceDefinitions a local stack installs: lanes' own and the mesh's.

Istio's networking CRDs (VirtualService, DestinationRule, Gateway; ServiceEntry, WorkloadEntry,
Sidecar; WasmPlugin) ship with the test bed, copied unchanged from Istio's release, so the demo
needs nothing but a clone. The ASM flavour routes with `fallback`, an ASM extension Istio's schema
does not declare and the API server would prune; a stack for that flavour serves ASM's
VirtualService schema instead: Istio's plus `fallback` on HTTP route destinations.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lanes.api.crds import crd_files

ISTIO_CRDS = Path(__file__).resolve().parent / "istio-networking-crds.yaml"
# WasmPlugin, which loads the trace-affinity module (lanes/traceaffinity) into proxies.
ISTIO_EXTENSION_CRDS = Path(__file__).resolve().parent / "istio-extensions-crds.yaml"
# ServiceEntry, WorkloadEntry and Sidecar, which the local istiod serves: the local node's pods
# are WorkloadEntries, since the API server refuses their loopback addresses in EndpointSlices.
ISTIO_WORKLOAD_CRDS = Path(__file__).resolve().parent / "istio-workload-crds.yaml"
FLAVOURS = ("istio", "asm")

FALLBACK_SCHEMA: dict[str, Any] = {
    "description": "ASM extension: where the request goes when the routed subset has no endpoints.",
    "type": "object",
    "properties": {
        "target": {
            "type": "object",
            "properties": {
                "host": {"type": "string"},
                "subset": {"type": "string"},
                "port": {
                    "type": "object",
                    "properties": {
                        "number": {"type": "integer", "minimum": 0, "maximum": 4294967295}
                    },
                },
            },
        }
    },
}


def istio_crds() -> list[dict[str, Any]]:
    """Istio's networking, workload and WasmPlugin CRDs, as shipped."""
    return [
        d for path in (ISTIO_CRDS, ISTIO_WORKLOAD_CRDS, ISTIO_EXTENSION_CRDS)
        for d in yaml.safe_load_all(path.read_text()) if d
    ]


def asm_extended(crds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CRDs with `fallback` declared on every version's HTTP route destinations."""
    extended = copy.deepcopy(crds)
    for crd in extended:
        if crd["spec"]["names"]["kind"] != "VirtualService":
            continue
        for version in crd["spec"]["versions"]:
            spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
            route = spec["properties"]["http"]["items"]["properties"]["route"]["items"]
            route["properties"]["fallback"] = FALLBACK_SCHEMA
    return extended


def mesh_crds(flavour: str) -> list[dict[str, Any]]:
    """The mesh CRDs a control plane of `flavour`'s mesh serves."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r} (known: {', '.join(FLAVOURS)})")
    crds = istio_crds()
    return asm_extended(crds) if flavour == "asm" else crds


def write_manifests(directory: Path, flavour: str) -> list[Path]:
    """Write lanes' CRDs and the mesh's into `directory`; return the files to install."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sorted(crd_files().items()):
        path = directory / name
        path.write_text(text)
        paths.append(path)
    mesh = directory / f"{flavour}-networking-crds.yaml"
    mesh.write_text(yaml.safe_dump_all(mesh_crds(flavour), sort_keys=False))
    paths.append(mesh)
    return paths
