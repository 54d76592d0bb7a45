"""ASM's published lane scenarios: their manifests, their lanes, and the hop tables they promise.

Every scenario has the lanes of ASM's permissive-mode pages: s1 is the baseline with v1 of
mocka, mockb and mockc; s2 holds v2 of mocka and mockc; s3 holds v3 of mockb. A request in a
lane is served, hop by hop, by its lane's version where the lane has the service and by s1's
elsewhere. The end-to-end tests (Istio's own config generation and real Envoy sidecars) check
that table, from the files under `tests/testdata/asm-scenarios/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lanes.api.load import Bundle, Document
from lanes.api.observations import Observations
from lanes_testbed.mesh import Endpoint
from lanes.importers import convert, convert_document, parse_documents
from lanes.render import TraceAffinityModule, render_group

SCENARIOS = Path(__file__).resolve().parent / "testdata" / "asm-scenarios"
CHAIN = ("mocka", "mockb", "mockc")
FALLBACK = "s1"
VERSION = {"s1": "v1", "s2": "v2", "s3": "v3"}
MEMBERS = {"s1": CHAIN, "s2": ("mocka", "mockc"), "s3": ("mockb",)}
LANE_LABEL = "ASM_TRAFFIC_TAG"


def hop_table(lane: str) -> list[str]:
    """The version serving mocka, mockb and mockc for a request in `lane` (ASM's table)."""
    return [VERSION[lane] if service in MEMBERS[lane] else VERSION[FALLBACK] for service in CHAIN]


def observed() -> Observations:
    """Every lane's services have ready pods, as in ASM's walkthroughs."""
    ready = {f"default/{s}": [lane for lane in VERSION if s in MEMBERS[lane]] for s in CHAIN}
    return Observations(ready=ready)


def pods() -> list[tuple[str, str]]:
    """(service, lane) of each pod the scenarios run: one per service of each lane."""
    return [(service, lane) for lane in VERSION for service in MEMBERS[lane]]


def endpoint(ip: str, service: str, lane: str) -> Endpoint:
    """A pod of `service` in `lane`, labelled as ASM's scenario Deployments label theirs."""
    return Endpoint(ip, {"app": service, LANE_LABEL: VERSION[lane]})


def documents(name: str) -> list[dict[str, Any]]:
    """The Gateway and Services every scenario shares, then the scenario file's documents."""
    found = []
    for path in (SCENARIOS / "app.yaml", SCENARIOS / f"{name}.yaml"):
        found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def bundle(name: str) -> Bundle:
    """A scenario's lane group and lanes, converted from ASM's kinds by `convert_document`."""
    docs = [
        Document(f"{name}.yaml#{i}", convert_document(d)) for i, d in enumerate(documents(name))
    ]
    return parse_documents(docs)


def converted(name: str) -> list[dict[str, Any]]:
    """A scenario's documents as `kubectl lane convert` gives them: each converted with all the
    others in view (a user's gateway route's ASM `fallback` turns the group's
    `fallbackSubsets` on)."""
    docs = documents(name)
    return [body for doc in docs for body in convert(doc, docs)]


def mesh_objects(
    name: str,
    flavour: str,
    state: Observations | None = None,
    trace_affinity: TraceAffinityModule | None = None,
    as_converted: bool = False,
) -> list[dict]:
    """What the mesh serves for a scenario: shared objects, the user's own Istio objects, and
    lanes' rendered routes for `state` (every lane's pods ready when None), with the
    trace-affinity WasmPlugins when `trace_affinity` is given and the group is in trace-ID mode.

    The documents are converted one by one, or, with `as_converted`, together as
    `kubectl lane convert` converts a file (`converted`)."""
    docs = converted(name) if as_converted else documents(name)
    lanes_bundle = (
        parse_documents([Document(f"{name}.yaml#{i}", d) for i, d in enumerate(docs)])
        if as_converted else bundle(name)
    )
    [group] = lanes_bundle.groups
    plain = [d for d in docs if d["apiVersion"].startswith(("v1", "networking."))]
    rendered = render_group(group, lanes_bundle.lanes, state or observed(), flavour, trace_affinity)
    return [*plain, *rendered]
