"""kubectl lane convert: Flagger and Argo Rollouts canaries become WorkloadRollouts and
MetricTemplates the lanes models accept, and every field without a lanes equivalent is refused
by name."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lanes.api.analysis import MetricTemplate
from lanes.api.load import Document
from lanes.api.workloadrollout import WorkloadRollout
from lanes.importers import parse_documents

from .test_cli import ROOT, SAMPLE, invoke

PROGRESSIVE = ROOT / "tests" / "testdata" / "progressive"
FLAGGER = PROGRESSIVE / "flagger-podinfo.yaml"
ARGO = PROGRESSIVE / "argo-rollout.yaml"
MATCH = [{"headers": [{"name": "x-canary", "value": "insider", "type": "Exact"}]}]
LABELS = {"labels": {"ASM_TRAFFIC_TAG": "canary"}}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def write(tmp_path: Path, docs: list[dict[str, Any]]) -> Path:
    source = tmp_path / "input.yaml"
    source.write_text(yaml.safe_dump_all(docs))
    return source


def converted(path: Path) -> list[dict[str, Any]]:
    result = invoke("convert", "-f", path)
    assert result.exit_code == 0, result.output
    return list(yaml.safe_load_all(result.stdout))


def parsed(docs: list[dict[str, Any]]) -> tuple[list[WorkloadRollout], list[MetricTemplate]]:
    """The converted documents as the lanes models read them."""
    bundle = parse_documents([Document(f"#{i}", d) for i, d in enumerate(docs)])
    return bundle.rollouts, bundle.templates


def refused(tmp_path: Path, docs: list[dict[str, Any]]) -> list[str]:
    """The error lines of a conversion that must fail, after checking it failed cleanly."""
    result = invoke("convert", "-f", write(tmp_path, docs))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def canary(**analysis: Any) -> dict[str, Any]:
    """The podinfo Canary, its analysis updated with `analysis`."""
    doc = copy.deepcopy(documents(FLAGGER)[0])
    doc["spec"]["analysis"].update(analysis)
    return doc


def test_flagger_podinfo_canary_converts_to_the_expected_rollout() -> None:
    rollout, template = converted(FLAGGER)
    assert rollout == {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "WorkloadRollout",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "strategy": {
                "canary": {
                    "enableExtraWorkloadForCanary": True,
                    "steps": [
                        {"replicas": f"{w}%", "traffic": f"{w}%", "matches": MATCH}
                        for w in (10, 20, 30, 40, 50)
                    ],
                    "patchPodTemplateMetadata": LABELS,
                    "analysis": {
                        "interval": "1m",
                        "threshold": 5,
                        "metrics": [
                            {"name": "request-success-rate", "thresholdRange": {"min": 99},
                             "interval": "1m"},
                            {"name": "latency",
                             "templateRef": {"name": "latency", "namespace": "istio-system"},
                             "thresholdRange": {"max": 500}, "interval": "1m"},
                        ],
                        "webhooks": [
                            {"name": "load-test", "url": "http://flagger-loadtester.test/",
                             "timeout": "5s",
                             "metadata": {"cmd": "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"}},
                        ],
                    },
                }
            },
        },
    }
    assert template["kind"] == "MetricTemplate"
    [model], _ = parsed([rollout, template])
    assert [s.weight for s in model.spec.strategy.canary.steps] == [10, 20, 30, 40, 50]
    assert all(s.pause is None for s in model.spec.strategy.canary.steps)


def test_flagger_service_ports_are_dropped_with_a_note() -> None:
    result = invoke("convert", "-f", FLAGGER)
    assert result.exit_code == 0, result.output
    notes = result.stderr.splitlines()
    assert [n.split(": ")[3] for n in notes] == ["spec.service.port", "spec.service.targetPort"]
    assert all(n.startswith(f"note: {FLAGGER}#1: Canary/podinfo: ") for n in notes)


def test_flagger_step_weights_give_one_step_each(tmp_path: Path) -> None:
    doc = canary(stepWeights=[1, 5, 25, 60])
    del doc["spec"]["analysis"]["stepWeight"], doc["spec"]["analysis"]["maxWeight"]
    [rollout] = converted(write(tmp_path, [doc]))
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s["traffic"] for s in steps] == ["1%", "5%", "25%", "60%"]


def test_flagger_step_weight_stops_at_max_weight(tmp_path: Path) -> None:
    [rollout] = converted(write(tmp_path, [canary(stepWeight=20, maxWeight=50)]))
    steps = rollout["spec"]["strategy"]["canary"]["steps"]
    assert [s["traffic"] for s in steps] == ["20%", "40%", "50%"]


def test_flagger_regex_matches_keep_their_type(tmp_path: Path) -> None:
    match = [{"headers": {"user-agent": {"regex": ".*Firefox.*"}, "x-user": {"exact": "a"}}}]
    [rollout] = converted(write(tmp_path, [canary(match=match)]))
    assert rollout["spec"]["strategy"]["canary"]["steps"][0]["matches"] == [
        {"headers": [
            {"name": "user-agent", "value": ".*Firefox.*", "type": "RegularExpression"},
            {"name": "x-user", "value": "a", "type": "Exact"},
        ]}
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mirror", True),
        ("mirrorWeight", 10),
        ("sessionAffinity", {"cookieName": "flagger-cookie"}),
        ("canaryReadyThreshold", 100),
        ("primaryReadyThreshold", 100),
        ("stepWeightPromotion", 50),
    ],
)
def test_flagger_analysis_fields_without_an_equivalent_are_refused(
    tmp_path: Path, field: str, value: Any
) -> None:
    [line] = refused(tmp_path, [canary(**{field: value})])
    assert f"Canary/podinfo: spec.analysis.{field}: " in line


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("skipAnalysis", True),
        ("provider", "nginx"),
        ("service.sessionAffinity", {"cookieName": "x"}),
    ],
)
def test_flagger_spec_fields_without_an_equivalent_are_refused(
    tmp_path: Path, path: str, value: Any
) -> None:
    doc = canary()
    doc["spec"]["autoscalerRef"] = {"apiVersion": "autoscaling/v2",
                                    "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
    *parents, last = path.split(".")
    target = doc["spec"]
    for parent in parents:
        target = target[parent]
    target[last] = value
    [line] = refused(tmp_path, [doc])
    assert f"Canary/podinfo: spec.{path}: " in line


def test_flagger_autoscaler_ref_converts_to_the_rollouts(tmp_path: Path) -> None:
    doc = canary()
    doc["spec"]["autoscalerRef"] = {"apiVersion": "autoscaling/v2",
                                    "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
    [rollout] = [d for d in converted(write(tmp_path, [doc])) if d and d["kind"] == "WorkloadRollout"]
    assert rollout["spec"]["autoscalerRef"] == {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
    assert WorkloadRollout.model_validate(rollout).spec.autoscaler_ref.name == "podinfo"


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        ({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo"}, "kind"),
        ({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "name": "podinfo"}, "apiVersion"),
        ({"kind": "HorizontalPodAutoscaler"}, "name"),
    ],
    ids=["scaled-object", "v1", "no-name"],
)
def test_flagger_autoscaler_refs_lanes_cannot_copy_are_refused(
    tmp_path: Path, ref: dict, field: str
) -> None:
    doc = canary()
    doc["spec"]["autoscalerRef"] = ref
    lines = refused(tmp_path, [doc])
    assert any(f"Canary/podinfo: spec.autoscalerRef.{field}: " in line for line in lines), lines


def test_flagger_metric_and_webhook_extras_and_prefix_matches_are_refused(tmp_path: Path) -> None:
    doc = canary(match=[{"headers": {"x-a": {"prefix": "b"}}, "uri": {"prefix": "/"}}])
    doc["spec"]["analysis"]["metrics"][0]["query"] = "up"
    doc["spec"]["analysis"]["webhooks"][0]["muteAlert"] = True
    lines = refused(tmp_path, [doc])
    paths = sorted(line.split(": ")[3] for line in lines)
    assert paths == [
        "spec.analysis.match[0].headers.x-a",
        "spec.analysis.match[0].uri",
        "spec.analysis.metrics[0].query",
        "spec.analysis.webhooks[0].muteAlert",
    ]


def test_a_canary_without_lane_labels_is_refused_naming_the_annotation(tmp_path: Path) -> None:
    doc = canary()
    del doc["metadata"]["annotations"]
    [line] = refused(tmp_path, [doc])
    assert "Canary/podinfo: metadata.annotations.lanes.dev/canary-labels: missing" in line
    assert "lanes.dev/canary-labels: ASM_TRAFFIC_TAG=canary" in line


def test_the_canary_labels_annotation_takes_several_labels(tmp_path: Path) -> None:
    doc = canary()
    doc["metadata"]["annotations"]["lanes.dev/canary-labels"] = "ASM_TRAFFIC_TAG=canary, tier=web"
    [rollout] = converted(write(tmp_path, [doc]))
    canary_spec = rollout["spec"]["strategy"]["canary"]
    assert canary_spec["patchPodTemplateMetadata"] == {
        "labels": {"ASM_TRAFFIC_TAG": "canary", "tier": "web"}
    }
    assert "annotations" not in rollout["metadata"]


def test_flagger_target_other_than_a_deployment_is_refused(tmp_path: Path) -> None:
    doc = canary()
    doc["spec"]["targetRef"]["kind"] = "DaemonSet"
    [line] = refused(tmp_path, [doc])
    assert "Canary/podinfo: spec.targetRef.kind: 'DaemonSet'" in line


def test_flagger_metric_template_converts(tmp_path: Path) -> None:
    template = documents(FLAGGER)[1]
    [result] = converted(write(tmp_path, [template]))
    assert result == {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "MetricTemplate",
        "metadata": {"name": "latency", "namespace": "istio-system"},
        "spec": {"provider": {"type": "prometheus", "address": "http://prometheus.istio-system:9090"},
                 "query": template["spec"]["query"]},
    }
    _, [model] = parsed([result])
    assert "{{ target }}" in model.spec.query


def test_flagger_metric_template_of_another_provider_is_refused(tmp_path: Path) -> None:
    template = documents(FLAGGER)[1]
    template["spec"]["provider"] = {"type": "datadog", "secretRef": {"name": "dd"}}
    lines = refused(tmp_path, [template])
    assert sorted(line.split(": ")[2:4] for line in lines) == [
        ["MetricTemplate/latency", "spec.provider.secretRef"],
        ["MetricTemplate/latency", "spec.provider.type"],
    ]


def test_argo_rollout_and_its_analysis_template_convert() -> None:
    rollout, template = converted(ARGO)
    assert rollout["metadata"] == {"name": "checkout", "namespace": "shop"}
    assert rollout["spec"] == {
        "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
        "strategy": {
            "canary": {
                "enableExtraWorkloadForCanary": True,
                "steps": [
                    {"replicas": "20%", "traffic": "20%", "pause": {"duration": 30}},
                    {"replicas": "50%", "traffic": "50%"},
                    {"replicas": "80%", "traffic": "80%", "pause": {}},
                ],
                "patchPodTemplateMetadata": LABELS,
                "analysis": {
                    "metrics": [{"name": "success-rate", "thresholdRange": {"min": 0.95},
                                 "templateRef": {"name": "success-rate"}}],
                    "interval": "30s",
                    "threshold": 3,
                },
            }
        },
    }
    assert template["kind"] == "MetricTemplate"
    assert template["metadata"] == {"name": "success-rate", "namespace": "shop"}
    assert template["spec"]["provider"] == {"type": "prometheus",
                                            "address": "http://prometheus.istio-system:9090"}
    [model], [metric_template] = parsed([rollout, template])
    assert model.spec.strategy.canary.analysis is not None
    assert metric_template.metadata.name == "success-rate"


def test_argo_istio_routing_is_dropped_with_a_note() -> None:
    result = invoke("convert", "-f", ARGO)
    assert result.exit_code == 0, result.output
    assert (f"note: {ARGO}#1: Rollout/checkout: spec.strategy.canary.trafficRouting.istio: "
            "dropped; lanes writes the routes") in result.stderr.splitlines()


def argo(**canary_fields: Any) -> list[dict[str, Any]]:
    """The checkout Rollout and its AnalysisTemplate, the canary strategy updated."""
    docs = copy.deepcopy(documents(ARGO))
    docs[0]["spec"]["strategy"]["canary"].update(canary_fields)
    return docs


def test_argo_without_analysis_steps_go_on_by_themselves(tmp_path: Path) -> None:
    docs = argo(steps=[{"setWeight": 10}, {"setWeight": 40}, {"pause": {"duration": "1m"}}])
    [rollout, _] = converted(write(tmp_path, docs))
    assert rollout["spec"]["strategy"]["canary"]["steps"] == [
        {"replicas": "10%", "traffic": "10%", "pause": {"duration": 0}},
        {"replicas": "40%", "traffic": "40%", "pause": {"duration": 60}},
    ]
    assert "analysis" not in rollout["spec"]["strategy"]["canary"]


def test_argo_background_analysis_and_upper_bounds(tmp_path: Path) -> None:
    docs = argo(steps=[{"setWeight": 50}],
                analysis={"templates": [{"templateName": "success-rate"}]})
    docs[1]["spec"]["metrics"][0]["successCondition"] = "result[0] <= 250"
    del docs[1]["spec"]["metrics"][0]["failureLimit"]
    [rollout, _] = converted(write(tmp_path, docs))
    analysis = rollout["spec"]["strategy"]["canary"]["analysis"]
    assert analysis["metrics"][0]["thresholdRange"] == {"max": 250.0}
    assert analysis["threshold"] == 1


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"setMirrorRoute": {"name": "m"}}, "setMirrorRoute"),
        ({"experiment": {"templates": []}}, "experiment"),
    ],
)
def test_argo_unsupported_steps_are_refused(tmp_path: Path, step: dict[str, Any], field: str) -> None:
    docs = argo(steps=[{"setWeight": 10}, step])
    [line] = refused(tmp_path, docs)
    assert f"Rollout/checkout: spec.strategy.canary.steps[1].{field}: " in line


def test_argo_other_traffic_routers_are_refused(tmp_path: Path) -> None:
    [line] = refused(tmp_path, argo(trafficRouting={"nginx": {"stableIngress": "checkout"}}))
    assert "Rollout/checkout: spec.strategy.canary.trafficRouting.nginx: " in line


def test_argo_inline_template_becomes_the_deployment_it_releases(tmp_path: Path) -> None:
    docs = argo()
    del docs[0]["spec"]["workloadRef"]
    docs[0]["spec"]["replicas"] = 4
    docs[0]["spec"]["selector"] = {"matchLabels": {"app": "checkout"}}
    docs[0]["spec"]["template"] = {"metadata": {"labels": {"app": "checkout"}},
                                   "spec": {"containers": [{"name": "c", "image": "i"}]}}
    deployment, rollout, _ = converted(write(tmp_path, docs))
    assert deployment["kind"] == "Deployment" and deployment["metadata"]["name"] == "checkout"
    assert deployment["spec"]["replicas"] == 4
    assert deployment["spec"]["template"] == docs[0]["spec"]["template"]
    assert rollout["spec"]["workloadRef"]["name"] == "checkout"


def test_argo_analysis_template_not_in_the_input_is_named(tmp_path: Path) -> None:
    [line] = refused(tmp_path, argo()[:1])
    assert ("Rollout/checkout: spec.strategy.canary.steps[3].analysis.templates[0].templateName: "
            "AnalysisTemplate 'success-rate' is not in the input") in line


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"successCondition": "result[0] > 0.95"}, "spec.metrics[0].successCondition"),
        ({"count": 5}, "spec.metrics[0].count"),
        ({"provider": {"web": {"url": "http://x"}}}, "spec.metrics[0].provider.web"),
    ],
)
def test_argo_analysis_template_fields_without_an_equivalent_are_refused(
    tmp_path: Path, change: dict[str, Any], path: str
) -> None:
    docs = argo()
    docs[1]["spec"]["metrics"][0].update(change)
    lines = refused(tmp_path, docs)
    assert any(f"AnalysisTemplate/success-rate: {path}: " in line for line in lines), lines


def test_argo_template_arguments_are_filled_in_per_rollout(tmp_path: Path) -> None:
    docs = argo()
    docs[1]["spec"]["args"] = [{"name": "service-name"}, {"name": "namespace"}]
    docs[1]["spec"]["metrics"][0]["provider"]["prometheus"]["query"] = (
        "up{svc='{{args.service-name}}',ns='{{args.namespace}}'}")
    step = docs[0]["spec"]["strategy"]["canary"]["steps"][3]["analysis"]
    step["args"] = [{"name": "service-name", "value": "checkout"},
                    {"name": "namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    rollout, template = converted(write(tmp_path, docs))
    assert template["metadata"] == {"name": "checkout-success-rate", "namespace": "shop"}
    assert template["spec"]["query"] == "up{svc='checkout',ns='shop'}"
    [metric] = rollout["spec"]["strategy"]["canary"]["analysis"]["metrics"]
    assert metric["templateRef"] == {"name": "checkout-success-rate"}
    del step["args"]
    paths = sorted(line.split(": ")[3] for line in refused(tmp_path, docs))
    assert paths == ["spec.strategy.canary.steps[3].analysis.args"] * 2


def test_argo_rollout_without_lane_labels_is_refused(tmp_path: Path) -> None:
    docs = argo()
    del docs[0]["spec"]["strategy"]["canary"]["canaryMetadata"]
    [line] = refused(tmp_path, docs)
    assert "Rollout/checkout: metadata.annotations.lanes.dev/canary-labels: missing" in line
    docs[0]["metadata"]["annotations"] = {"lanes.dev/canary-labels": "ASM_TRAFFIC_TAG=canary"}
    [rollout, _] = converted(write(tmp_path, docs))
    assert rollout["spec"]["strategy"]["canary"]["patchPodTemplateMetadata"] == LABELS


def test_converted_flagger_and_argo_documents_render(tmp_path: Path) -> None:
    """`render` reads the originals and the converted output alike, beside a lane group."""
    originals = tmp_path / "originals"
    originals.mkdir()
    for path in (SAMPLE / "lanes.yaml", FLAGGER, ARGO):
        shutil.copy(path, originals / path.name)
    rendered = invoke("render", "-f", originals)
    assert rendered.exit_code == 0, rendered.output
    output = tmp_path / "converted"
    output.mkdir()
    (output / "all.yaml").write_text(invoke("convert", "-f", originals).stdout)
    again = invoke("render", "-f", output)
    assert again.exit_code == 0, again.output
    assert again.stdout == rendered.stdout
    kinds = [d["kind"] for d in yaml.safe_load_all((output / "all.yaml").read_text())]
    assert kinds.count("WorkloadRollout") == 2 and kinds.count("MetricTemplate") == 2


def test_flagger_webhook_types_convert_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    """Every Flagger hook type converts as written; a type Flagger does not have is refused
    rather than dropped."""
    doc = canary()
    for kind in ("pre-rollout", "confirm-traffic-increase"):
        doc["spec"]["analysis"]["webhooks"][0]["type"] = kind
        path = tmp_path / "in.yaml"
        path.write_text(yaml.safe_dump(doc))
        result = invoke("convert", "-f", path)
        assert result.exit_code == 0, result.output
        [rollout] = [d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "WorkloadRollout"]
        assert rollout["spec"]["strategy"]["canary"]["analysis"]["webhooks"][0]["type"] == kind
    doc["spec"]["analysis"]["webhooks"][0]["type"] = "confirm-everything"
    [line] = refused(tmp_path, [doc])
    assert "Canary/podinfo: spec.analysis.webhooks[0].type: 'confirm-everything'" in line


def test_argo_replicas_and_steps_without_a_weight_are_refused(tmp_path: Path) -> None:
    docs = argo(steps=[{"pause": {}}])
    docs[0]["spec"]["replicas"] = 5
    paths = sorted(line.split(": ")[3] for line in refused(tmp_path, docs))
    assert paths == ["spec.strategy.canary.steps", "spec.strategy.canary.steps[0].pause"]


def test_a_flagger_match_without_headers_is_refused(tmp_path: Path) -> None:
    """It would select every request and send all untagged traffic to the canary."""
    [line] = refused(tmp_path, [canary(match=[{}])])
    assert "Canary/podinfo: spec.analysis.match[0].headers: missing" in line


def test_argo_canary_metadata_annotations_go_on_the_canary_pods(tmp_path: Path) -> None:
    docs = argo()
    docs[0]["spec"]["strategy"]["canary"]["canaryMetadata"]["annotations"] = {"team": "shop"}
    [rollout, _] = converted(write(tmp_path, docs))
    assert rollout["spec"]["strategy"]["canary"]["patchPodTemplateMetadata"] == {
        **LABELS, "annotations": {"team": "shop"}
    }


def test_argo_metrics_measured_at_different_intervals_are_refused(tmp_path: Path) -> None:
    """lanes checks every metric of a release at one interval, so it cannot keep both."""
    docs = argo()
    second = copy.deepcopy(docs[1]["spec"]["metrics"][0])
    docs[1]["spec"]["metrics"].append({**second, "name": "latency", "interval": "1m"})
    [line] = refused(tmp_path, docs)
    assert ("Rollout/checkout: spec.strategy.canary.analysis: its metrics are measured at "
            "different intervals (1m, 30s)") in line
    docs[1]["spec"]["metrics"][1]["interval"] = "30s"
    _, first, latency = converted(write(tmp_path, docs))
    assert [first["metadata"]["name"], latency["metadata"]["name"]] == [
        "success-rate", "success-rate-latency"
    ]
