"""Peer fields that convert with a behaviour of their own: Kruise's rolling styles, Argo's
arguments read from the Rollout, header routes and canary scale, Flagger's blue/green."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

from .test_cli import invoke

CASES = ROOT / "tests" / "testdata" / "importers"


def documents(case: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((CASES / case / "input.yaml").read_text()) if d]


def run(tmp_path: Path, docs: list[dict[str, Any]], *options: str) -> tuple[int, list[dict], str]:
    source = tmp_path / "input.yaml"
    source.write_text(yaml.safe_dump_all(docs))
    result = invoke("convert", *options, "-f", source)
    out = [d for d in yaml.safe_load_all(result.stdout) if d] if result.exit_code == 0 else []
    return result.exit_code, out, result.stderr


def kind(docs: list[dict], wanted: str) -> dict:
    [found] = [d for d in docs if d["kind"] == wanted]
    return found


@pytest.mark.parametrize(("style", "code"), [("canary", 0), ("partition", 2)])
def test_kruise_v1alpha1_rolling_style_decides_between_canary_and_in_place(
    tmp_path: Path, style: str, code: int
) -> None:
    docs = documents("kruise-v1alpha1")
    docs[1]["metadata"]["annotations"]["rollouts.kruise.io/rolling-style"] = style
    exit_code, out, stderr = run(tmp_path, docs)
    assert exit_code == code, stderr
    if code == 0:
        rollout = kind(out, "WorkloadRollout")
        assert rollout["spec"]["strategy"]["canary"]["enableExtraWorkloadForCanary"] is True
        assert "annotations" not in rollout["metadata"]
    else:
        assert "enableExtraWorkloadForCanary: unset or false" in stderr


def test_a_kruise_trafficrouting_ref_must_be_in_the_input(tmp_path: Path) -> None:
    docs = [d for d in documents("kruise-traffic-routing-ref") if d["kind"] != "TrafficRouting"]
    exit_code, _, stderr = run(tmp_path, docs)
    assert exit_code == 2
    assert "trafficRoutingRef: TrafficRouting 'mse-traffic' is not in the input" in stderr


def test_argo_args_read_labels_of_the_rollout(tmp_path: Path) -> None:
    docs = documents("argo-istio-canary")
    docs[0]["metadata"]["labels"] = {"app.kubernetes.io/name": "istio-rollout-canary"}
    step = docs[0]["spec"]["strategy"]["canary"]["steps"][5]["analysis"]
    step["args"][0] = {"name": "service", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['app.kubernetes.io/name']"}}}
    exit_code, out, stderr = run(tmp_path, docs)
    assert exit_code == 0, stderr
    template = kind(out, "MetricTemplate")
    assert 'istio-rollout-canary.default.svc.cluster.local' in template["spec"]["query"]
    assert "{{args." not in template["spec"]["query"]


def test_argo_args_naming_no_value_are_refused(tmp_path: Path) -> None:
    docs = documents("argo-istio-canary")
    step = docs[0]["spec"]["strategy"]["canary"]["steps"][5]["analysis"]
    step["args"][1]["valueFrom"]["fieldRef"]["fieldPath"] = "metadata.labels['missing']"
    exit_code, _, stderr = run(tmp_path, docs)
    assert exit_code == 2
    assert "valueFrom.fieldRef.fieldPath: \"metadata.labels['missing']\" names no value" in stderr


def test_argo_header_route_and_canary_scale_hold_until_changed(tmp_path: Path) -> None:
    docs = documents("argo-workload-ref-cluster-template")
    _, out, stderr = run(tmp_path, docs)
    steps = kind(out, "WorkloadRollout")["spec"]["strategy"]["canary"]["steps"]
    assert [s["replicas"] for s in steps] == [1, "50%"], stderr
    assert all(s["matches"][0]["headers"][0]["name"] == "x-beta" for s in steps)
    canary = docs[1]["spec"]["strategy"]["canary"]
    canary["steps"].insert(4, {"setHeaderRoute": {"name": "beta-users"}})
    _, out, _ = run(tmp_path, docs)
    steps = kind(out, "WorkloadRollout")["spec"]["strategy"]["canary"]["steps"]
    assert "matches" in steps[0] and "matches" not in steps[1]


def test_argo_blue_green_without_analysis_switches_by_argos_defaults(tmp_path: Path) -> None:
    docs = documents("argo-bluegreen")
    blue_green = docs[0]["spec"]["strategy"]["blueGreen"]
    for key in ("prePromotionAnalysis", "postPromotionAnalysis", "autoPromotionEnabled",
                "scaleDownDelaySeconds"):
        del blue_green[key]
    exit_code, out, stderr = run(tmp_path, docs)
    assert exit_code == 0, stderr
    release = kind(out, "LaneRelease")["spec"]
    assert release["blueGreen"] == {} and "analysis" not in release
    member = kind(out, "WorkloadRollout")["spec"]["strategy"]["canary"]
    assert member["steps"] == [{"replicas": "100%"}]


def test_argo_blue_green_joins_the_lane_its_labels_name(tmp_path: Path) -> None:
    docs = documents("argo-bluegreen-refused")
    blue_green = docs[0]["spec"]["strategy"]["blueGreen"]
    docs[0]["spec"]["strategy"]["blueGreen"] = {
        "activeService": blue_green["activeService"], "scaleDownDelaySeconds": 90,
        "scaleDownDelayRevisionLimit": 1, "abortScaleDownDelaySeconds": 30}
    exit_code, out, stderr = run(tmp_path, docs)
    assert exit_code == 0, stderr
    release = kind(out, "LaneRelease")["spec"]
    assert release["swimLaneRef"] == {"name": "green"}
    assert release["blueGreen"] == {"scaleDownDelaySeconds": 90}
    assert "blueGreen.scaleDownDelayRevisionLimit: dropped" in stderr
    assert "blueGreen.abortScaleDownDelaySeconds: dropped" in stderr


@pytest.mark.parametrize(("field", "value", "message"), [
    ("scaleDownDelaySeconds", -1, "scaleDownDelaySeconds: -1: must be 0 or more seconds"),
    ("autoPromotionEnabled", "no", "autoPromotionEnabled: 'no': must be true or false"),
    ("activeService", None, "activeService: missing"),
])
def test_argo_blue_green_fields_of_the_wrong_shape_are_refused(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    docs = documents("argo-bluegreen")
    docs[0]["spec"]["strategy"]["blueGreen"][field] = value
    exit_code, _, stderr = run(tmp_path, docs)
    assert exit_code == 2
    assert message in stderr


def test_argo_canary_and_blue_green_together_are_refused(tmp_path: Path) -> None:
    docs = documents("argo-bluegreen")
    docs[0]["spec"]["strategy"]["canary"] = {"steps": [{"setWeight": 50}]}
    exit_code, _, stderr = run(tmp_path, docs)
    assert exit_code == 2
    assert "spec.strategy: give either canary or blueGreen" in stderr


def test_flagger_iterations_without_matches_are_a_blue_green_release(tmp_path: Path) -> None:
    docs = copy.deepcopy(documents("flagger-mirror-refused"))
    del docs[1]["spec"]["analysis"]["mirror"], docs[1]["spec"]["analysis"]["mirrorWeight"]
    exit_code, out, stderr = run(tmp_path, docs)
    assert exit_code == 0, stderr
    steps = kind(out, "WorkloadRollout")["spec"]["strategy"]["canary"]["steps"]
    assert steps == [{"replicas": "100%"}] * 10


def test_strict_names_notes_about_whole_documents(tmp_path: Path) -> None:
    exit_code, _, stderr = run(tmp_path, documents("kruise-traffic-routing-ref"), "--strict")
    assert exit_code == 2
    assert "TrafficRouting/mse-traffic: (document): converted into no document" in stderr
