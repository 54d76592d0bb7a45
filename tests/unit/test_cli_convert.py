"""kubectl lane convert: ASM and Kruise manifests become the sample's lanes.dev objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lanes.api.load import Document, load_observations
from lanes.importers import conversion_notes, convert_document, parse_documents
from lanes.render import render_group
from tests.asm_scenarios import SCENARIOS

from .test_cli import SAMPLE, invoke, sample_documents


def converted(path: Path) -> list[dict[str, Any]]:
    result = invoke("convert", "-f", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("---\n")
    return list(yaml.safe_load_all(result.stdout))


def without_services_extras(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec with its services sorted and reduced to name and namespace.

    The sample adds `calls` and leaves out ASM's cluster ids, which only ASM's console uses.
    """
    services = sorted(
        ({"name": s["name"], "namespace": s["namespace"]} for s in spec.get("services", [])),
        key=lambda s: (s["namespace"], s["name"]),
    )
    return {**spec, "services": services}


def lanes_objects(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Parsed lanes.dev objects by (kind, name), specs normalised for comparison."""
    bundle = parse_documents([Document(f"#{i}", d) for i, d in enumerate(documents)])
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in [*bundle.groups, *bundle.lanes]:
        found[(obj.kind, obj.name)] = without_services_extras(obj.spec.to_wire())
    for rollout in bundle.rollouts:
        namespace = rollout.metadata.namespace or "default"
        found[(rollout.kind, f"{namespace}/{rollout.metadata.name}")] = rollout.spec.to_wire()
    return found


def test_reference_asm_inputs_convert_to_the_sample(reference: Path) -> None:
    ours = lanes_objects(sample_documents())
    theirs = lanes_objects(converted(reference / "asm-mock-chain-inputs.yaml"))
    assert sorted(theirs) == sorted(ours)
    for key in ours:
        assert theirs[key] == ours[key], key


def test_other_documents_pass_through_unchanged(reference: Path) -> None:
    source = reference / "asm-mock-chain-inputs.yaml"
    originals = list(yaml.safe_load_all(source.read_text()))
    documents = converted(source)
    kept = [d for d in documents if not d["apiVersion"].startswith("lanes.dev/")]
    assert kept == [d for d in originals if d["kind"] in {"Gateway", "Service", "Deployment"}]
    kinds = [d["kind"] for d in documents if d["apiVersion"] == "lanes.dev/v1alpha1"]
    assert kinds == ["SwimLaneGroup", "SwimLane", "SwimLane"] + ["WorkloadRollout"] * 3


def test_sample_app_matches_the_reference_apart_from_namespaces(reference: Path) -> None:
    def app(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = []
        for doc in documents:
            if doc["kind"] in {"Service", "Deployment"}:
                metadata = {k: v for k, v in doc["metadata"].items() if k != "namespace"}
                kept.append({**doc, "metadata": metadata})
        return kept

    reference_documents = yaml.safe_load_all((reference / "asm-mock-chain-inputs.yaml").read_text())
    assert app(sample_documents()) == app(list(reference_documents))


def test_lanes_documents_convert_to_themselves() -> None:
    documents = converted(SAMPLE)
    assert documents == sample_documents()


def test_kruise_metadata_keeps_what_users_write(tmp_path: Path) -> None:
    source = tmp_path / "rollout.yaml"
    source.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "rollouts.kruise.io/v1beta1",
                "kind": "Rollout",
                "metadata": {
                    "name": "r",
                    "namespace": "shop",
                    "labels": {"team": "a"},
                    "uid": "1234",
                    "resourceVersion": "99",
                    "managedFields": [{"manager": "kubectl"}],
                },
                "spec": {
                    "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                    "strategy": {"canary": {"enableExtraWorkloadForCanary": True,
                                            "steps": [{"replicas": "20%"}]}},
                },
            }
        )
    )
    [document] = converted(source)
    assert document["apiVersion"] == "lanes.dev/v1alpha1"
    assert document["kind"] == "WorkloadRollout"
    assert document["metadata"] == {"name": "r", "namespace": "shop", "labels": {"team": "a"}}


def test_a_kruise_rollout_lanes_would_reject_is_named(tmp_path: Path) -> None:
    source = tmp_path / "rollout.yaml"
    source.write_text(
        "apiVersion: rollouts.kruise.io/v1beta1\nkind: Rollout\nmetadata: {name: r}\n"
        "spec:\n  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: d}\n"
        "  strategy: {canary: {enableExtraWorkloadForCanary: true, steps: [{replicas: 120%}]}}\n"
    )
    result = invoke("convert", "-f", source)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{source}: WorkloadRollout/r: spec.strategy.canary.steps[0].replicas" in result.stderr


def test_an_empty_file_is_bad_input(tmp_path: Path) -> None:
    source = tmp_path / "empty.yaml"
    source.write_text("# nothing\n")
    result = invoke("convert", "-f", source)
    assert result.exit_code == 2
    assert f"error: {source}: holds no YAML documents" in result.stderr


def test_asm_baggage_mode_converts_to_baggage_propagation() -> None:
    group = {
        "apiVersion": "istio.alibabacloud.com/v1",
        "kind": "ASMSwimLaneGroup",
        "metadata": {"name": "rollout"},
        "spec": {"permissiveModeConfiguration": {"routeHeader": "x-asm-prefer-tag", "traceHeader": "baggage"}},
    }
    assert convert_document(group)["spec"]["propagation"] == "baggage"
    separate = {**group, "spec": {"permissiveModeConfiguration": {"traceHeader": "my-request-id"}}}
    assert "propagation" not in convert_document(separate)["spec"]
    chosen = {**group, "spec": {**group["spec"], "propagation": "header"}}
    assert convert_document(chosen)["spec"]["propagation"] == "header"


def test_the_reference_inputs_in_baggage_mode_route_every_hop_by_baggage(reference: Path) -> None:
    """With only `baggage` passed on by the app, each service's lane routes match on it
    (state 2: every service has canary pods, so every service routes the lane)."""
    text = (reference / "asm-mock-chain-inputs.yaml").read_text().replace(
        "traceHeader: my-request-id", "traceHeader: baggage"
    )
    assert "traceHeader: baggage" in text
    docs = [Document(f"#{i}", d) for i, d in enumerate(yaml.safe_load_all(text)) if d]
    bundle = parse_documents(docs)
    assert [g.spec.propagation for g in bundle.groups] == ["baggage"]
    observed = load_observations(SAMPLE / "observed" / "state-2.yaml")
    routes = [
        o for o in render_group(bundle.groups[0], bundle.lanes, observed, "istio")
        if o["kind"] == "VirtualService" and o["spec"].get("hosts", [""])[0].startswith("mock")
    ]
    assert routes
    for route in routes:
        headers = [m.get("headers", {}) for h in route["spec"]["http"] for m in h.get("match", [])]
        assert headers and all("baggage" in h for h in headers if h), route["metadata"]["name"]


def scenario_file(tmp_path: Path, name: str) -> Path:
    """One of ASM's lane scenarios with the shared Services, as one input file."""
    source = tmp_path / f"{name}.yaml"
    source.write_text((SCENARIOS / "app.yaml").read_text() + "---\n"
                      + (SCENARIOS / f"{name}.yaml").read_text())
    return source


def test_asm_trace_id_mode_is_noted_with_what_it_needs_on_plain_istio(tmp_path: Path) -> None:
    """ASM's trace-ID scenario lets apps drop the route header; on plain Istio that takes the
    trace-affinity module, so convert says what to set (on stderr, the output unchanged)."""
    source = scenario_file(tmp_path, "trace-id")
    result = invoke("convert", "-f", source)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"note: {source}#5: ASMSwimLaneGroup/test: spec.permissiveModeConfiguration.traceHeader: "
        "ASM's trace-ID mode, in which services pass on only 'my-request-id': on plain Istio "
        "lanes keeps each trace's lane with its trace-affinity Wasm module, which the operator "
        "loads (WasmPlugins) once given the module's URL (chart value traceAffinity.url; "
        "`kubectl lane wasm` builds it); sidecar mode only"
    ]
    assert list(yaml.safe_load_all(result.stdout)) == converted(source)


def test_one_header_and_baggage_modes_convert_without_a_note(tmp_path: Path) -> None:
    for name in ("one-header", "baggage"):
        result = invoke("convert", "-f", scenario_file(tmp_path, name))
        assert result.exit_code == 0, result.output
        assert result.stderr == "", name


def test_conversion_notes_only_a_separate_trace_header() -> None:
    def group(permissive: dict[str, Any], **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "istio.alibabacloud.com/v1", "kind": "ASMSwimLaneGroup",
                "metadata": {"name": "g"},
                "spec": {"permissiveModeConfiguration": permissive, **spec}}

    assert conversion_notes(group({"traceHeader": "my-trace-id"}))
    assert conversion_notes(group({"routeHeader": "x-env", "traceHeader": "x-b3-traceid"}))
    assert not conversion_notes(group({"routeHeader": "my-trace-id", "traceHeader": "My-Trace-Id"}))
    assert not conversion_notes(group({"traceHeader": "baggage"}))
    assert not conversion_notes(group({"traceHeader": "my-trace-id"}, propagation="baggage"))
    assert not conversion_notes(group({}))
    lanes_group = {**group({"traceHeader": "my-trace-id"}), "apiVersion": "lanes.dev/v1alpha1",
                   "kind": "SwimLaneGroup"}
    assert not conversion_notes(lanes_group)
