"""Strict lane mode: every lane holds every service, hops follow the caller's lane, no fallback.

The sample under samples/strict/ is ASM's strict-mode example: lanes s1, s2, s3 select the v1,
v2, v3 pods of mocka -> mockb -> mockc.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lanes.api.load import Bundle, Document, read_documents
from lanes.api.observations import Observations
from lanes.api.topology import resolve
from lanes.graph import build_graph, explain
from lanes.importers import load, parse_documents
from lanes.render import render_group
from tests.conftest import ROOT

from .test_cli import invoke

STRICT = ROOT / "samples" / "strict"
LANES = STRICT / "lanes.yaml"
SERVICES = ["default/mocka", "default/mockb", "default/mockc"]
SELECTORS = {"s1": {"ASM_TRAFFIC_TAG": "v1"}, "s2": {"ASM_TRAFFIC_TAG": "v2"},
             "s3": {"ASM_TRAFFIC_TAG": "v3"}}


def documents() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(LANES.read_text()))


def write(tmp_path: Path, docs: list[dict[str, Any]]) -> Path:
    path = tmp_path / "lanes.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def rendered(docs: list[dict[str, Any]] | None = None, observed: Observations | None = None,
             flavour: str | None = None) -> list[dict]:
    bundle = load(LANES) if docs is None else _bundle(docs)
    return render_group(bundle.groups[0], bundle.lanes, observed, flavour)


def _bundle(docs: list[dict[str, Any]]) -> Bundle:
    return parse_documents([Document(f"lanes.yaml#{i + 1}", d) for i, d in enumerate(docs)])


def mesh_vs(objects: list[dict], service: str) -> dict:
    host = f"{service.split('/')[1]}.default.svc.cluster.local"
    return next(o for o in objects
                if o["kind"] == "VirtualService" and o["spec"]["hosts"] == [host]
                and "gateways" not in o["spec"])


def test_each_hop_is_routed_by_the_calling_pods_lane_before_any_header() -> None:
    objects = rendered()
    for service in SERVICES:
        http = mesh_vs(objects, service)["spec"]["http"]
        host = f"{service.split('/')[1]}.default.svc.cluster.local"
        by_source = [(r["match"][0]["sourceLabels"], r["route"][0]["destination"]) for r in http[:3]]
        assert by_source == [(SELECTORS[lane], {"host": host, "subset": lane})
                             for lane in ("s1", "s2", "s3")]
        by_header = [(r["match"][0]["headers"], r["route"][0]["destination"]["subset"])
                     for r in http[3:]]
        assert by_header == [({"x-asm-prefer-tag": {"exact": lane}}, lane)
                             for lane in ("s1", "s2", "s3")]
        assert all("match" in route for route in http), "strict mode has no default route"


def test_gateway_routes_each_lanes_rule_to_its_own_subset() -> None:
    ingress = next(o for o in rendered() if "gateways" in o["spec"])
    routes = {r["name"]: r["route"][0] for r in ingress["spec"]["http"]}
    assert sorted(routes) == ["s1", "s2", "s3"]
    for lane, route in routes.items():
        assert route["destination"]["subset"] == lane
        assert route["headers"]["request"]["set"] == {"x-asm-prefer-tag": lane}


def test_asm_flavour_routes_by_source_then_by_lane_header_without_fallback() -> None:
    objects = rendered(flavour="asm")
    for o in objects:
        assert "fallback" not in yaml.safe_dump(o), o["metadata"]["name"]
    vs = next(o for o in objects if o["metadata"]["name"] == "trafficlabel-vs-mock-default-mockb")
    http = vs["spec"]["http"]
    assert [r.get("match", [{}])[0].get("sourceLabels") for r in http] == [
        SELECTORS["s1"], SELECTORS["s2"], SELECTORS["s3"], None]
    assert http[-1]["route"] == [{"destination": {"host": "mockb.default.svc.cluster.local",
                                                  "subset": "$asm-label"}}]


def test_routes_and_subsets_stay_whatever_pods_are_ready() -> None:
    docs = documents()
    docs[0]["spec"]["autoUpdate"] = True
    observed = Observations(ready={"default/mocka": ["s1", "s2", "s3"], "default/mockb": ["s1"],
                                   "default/mockc": []})
    with_pods = rendered(docs)
    assert rendered(docs, observed) == with_pods
    for obj in with_pods:
        if obj["kind"] == "DestinationRule":
            assert [s["name"] for s in obj["spec"]["subsets"]] == ["s1", "s2", "s3"]


def test_a_request_in_a_lane_never_leaves_it_even_where_the_lane_has_no_ready_pods() -> None:
    docs = documents()
    docs[0]["spec"]["autoUpdate"] = True
    bundle = _bundle(docs)
    observed = Observations(ready={"default/mocka": ["s1", "s2"], "default/mockb": ["s1"],
                                   "default/mockc": ["s1", "s2"]})
    topology = resolve(bundle.groups[0], bundle.lanes, observed)
    trace = explain(topology, build_graph(topology), {"x-asm-prefer-tag": "s2"}, "/mock")
    [route] = trace.routes
    assert route.lane == "s2"
    assert [(h.service, h.subset, h.fallback) for h in route.hops] == [
        (service, "s2", False) for service in SERVICES]
    assert any("strict mode" in note for note in trace.notes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d[3]["spec"]["services"].pop(),
         "error: lanes.yaml#4: SwimLane/s3: spec.services: in strict mode (isPermissive: false) "
         "a lane must list every group service; missing default/mockc\n"),
        (lambda d: d[0]["spec"].update(permissiveModeConfiguration={"fallbackTarget": "s1"}),
         "error: lanes.yaml#1: SwimLaneGroup/mock: spec.permissiveModeConfiguration."
         "fallbackTarget: strict mode (isPermissive: false or unset) has no fallback lane; set "
         "isPermissive: true for a fallback, or remove fallbackTarget\n"),
        (lambda d: d[0]["spec"].update(isPermissive=True),
         "error: lanes.yaml#1: SwimLaneGroup/mock: spec.permissiveModeConfiguration: required "
         "in permissive mode (isPermissive: true); set fallbackTarget to the lane that serves "
         "what a lane lacks\n"),
        (lambda d: d[0]["spec"].update(isPermissive=True, permissiveModeConfiguration={}),
         "error: lanes.yaml#1: SwimLaneGroup/mock: spec.permissiveModeConfiguration."
         "fallbackTarget: required in permissive mode (isPermissive: true)\n"),
    ],
    ids=["lane-missing-a-service", "fallback-in-strict", "permissive-without-config",
         "permissive-without-fallback"],
)
def test_mode_errors_exit_2_naming_the_object_and_field(tmp_path: Path, change, message) -> None:
    docs = documents()
    change(docs)
    path = write(tmp_path, docs)
    result = invoke("render", "-f", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == message.replace("lanes.yaml#", f"{path}#")


def weighted(docs: list[dict[str, Any]], weights: dict[str, int]) -> list[dict[str, Any]]:
    docs[0]["spec"]["ingress"]["ingressRouting"] = {"ingressRoutingStrategy": "weighted"}
    for doc in docs[1:]:
        doc["spec"]["ingressWeight"] = {
            "weight": weights[doc["metadata"]["name"]],
            "destination": {"host": "mocka.default.svc.cluster.local"},
        }
    return docs


def test_weighted_entry_must_add_up_to_100_as_no_fallback_takes_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, weighted(documents(), {"s1": 60, "s2": 20, "s3": 10}))
    result = invoke("render", "-f", path)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}#1: SwimLaneGroup/mock: spec.ingress.ingressRouting: lane weights add up "
        "to 90; in strict mode there is no fallback lane to take the rest, so under weighted "
        "routing they must add up to 100\n")


def test_weighted_entry_splits_60_20_20_each_share_tagged_with_its_lane() -> None:
    objects = rendered(weighted(documents(), {"s1": 60, "s2": 20, "s3": 20}))
    ingress = next(o for o in objects if "gateways" in o["spec"])
    [route] = ingress["spec"]["http"]
    assert [(d["destination"]["subset"], d["weight"], d["headers"]["request"]["set"])
            for d in route["route"]] == [
        ("s1", 60, {"x-asm-prefer-tag": "s1"}),
        ("s2", 20, {"x-asm-prefer-tag": "s2"}),
        ("s3", 20, {"x-asm-prefer-tag": "s3"}),
    ]


def test_an_asm_strict_manifest_renders_as_the_sample(tmp_path: Path) -> None:
    docs = documents()
    for doc in docs:
        doc["apiVersion"] = "istio.alibabacloud.com/v1"
        doc["kind"] = "ASM" + doc["kind"]
        for service in doc["spec"].get("services") or []:
            service.pop("calls", None)
    path = write(tmp_path, docs)
    converted = invoke("convert", "-f", path)
    assert converted.exit_code == 0, converted.stderr
    back = list(yaml.safe_load_all(converted.stdout))
    assert back[0]["kind"] == "SwimLaneGroup"
    assert "isPermissive" not in back[0]["spec"]
    result = invoke("render", "-f", path)
    assert result.exit_code == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == rendered()


def test_the_sample_app_passes_on_no_header() -> None:
    deployments = [d.body for d in read_documents(STRICT / "app.yaml")
                   if d.body["kind"] == "Deployment"]
    assert len(deployments) == 9
    for deployment in deployments:
        env = {e["name"]: e["value"]
               for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["forward"] == "none"
        lane_label = deployment["spec"]["template"]["metadata"]["labels"]["ASM_TRAFFIC_TAG"]
        assert lane_label == env["version"]
