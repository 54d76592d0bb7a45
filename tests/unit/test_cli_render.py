"""kubectl lane render: generated objects as multi-document YAML, ready for GitOps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .test_cli import OBSERVED, SAMPLE, invoke, sample_copy


def rendered(*args: str | Path) -> list[dict[str, Any]]:
    result = invoke("render", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("---\n")
    return list(yaml.safe_load_all(result.stdout))


def subsets(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {
        obj["spec"]["host"].split(".")[0]: [s["name"] for s in obj["spec"]["subsets"]]
        for obj in objects
        if obj["kind"] == "DestinationRule"
    }


def by_kind_and_name(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: (o["kind"], o["metadata"]["name"]))


def test_the_sample_renders_one_destination_rule_per_service() -> None:
    objects = rendered("-f", SAMPLE)
    assert subsets(objects) == {"mocka": ["base"], "mockb": ["base"], "mockc": ["base"]}
    assert {obj["kind"] for obj in objects} == {"VirtualService", "DestinationRule", "WasmPlugin"}


def test_a_group_in_trace_id_mode_gets_wasmplugins_with_the_module_given() -> None:
    objects = rendered("-f", SAMPLE, "--trace-affinity-url", "https://modules.example/ta.wasm",
                       "--trace-affinity-sha256", "ab" * 32)
    plugins = [o for o in objects if o["kind"] == "WasmPlugin"]
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in plugins] == [
        ("istio-system", "lanes-rollout-trace-gateway"),
        ("default", "lanes-rollout-trace-base"),
        ("default", "lanes-rollout-trace-canary"),
    ]
    assert {p["spec"]["url"] for p in plugins} == {"https://modules.example/ta.wasm"}
    assert {p["spec"]["sha256"] for p in plugins} == {"ab" * 32}
    assert plugins[2]["spec"]["selector"] == {"matchLabels": {"ASM_TRAFFIC_TAG": "canary"}}
    assert plugins[0]["spec"]["pluginConfig"] == {
        "routeHeader": "x-asm-prefer-tag", "traceHeader": "my-request-id",
        "maxEntries": 10000, "maxAgeSeconds": 60,
    }


def test_the_asm_flavour_gets_no_wasmplugin() -> None:
    objects = rendered("-f", SAMPLE, "--flavour", "asm")
    assert "WasmPlugin" not in {obj["kind"] for obj in objects}


def test_observations_add_the_canary_subset() -> None:
    objects = rendered("-f", SAMPLE, "--observed", OBSERVED / "state-1.yaml")
    assert subsets(objects) == {"mocka": ["base", "canary"], "mockb": ["base"], "mockc": ["base"]}


def test_asm_flavour_of_the_reference_inputs_is_what_asm_generates(reference: Path) -> None:
    objects = rendered("-f", reference / "asm-mock-chain-inputs.yaml", "--flavour", "asm")
    expected = list(yaml.safe_load_all((reference / "asm-mock-chain-expected.yaml").read_text()))
    assert by_kind_and_name(objects) == by_kind_and_name(expected)


def test_the_group_flavour_is_the_default(tmp_path: Path) -> None:
    sample = sample_copy(tmp_path)
    lanes = sample / "lanes.yaml"
    text = lanes.read_text()
    lanes.write_text(text.replace("  autoUpdate: true\n", "  autoUpdate: true\n  flavour: asm\n"))
    names = {obj["metadata"]["name"] for obj in rendered("-f", sample)}
    assert "trafficlabel-dr-rollout-default-mocka" in names
    istio = {obj["metadata"]["name"] for obj in rendered("-f", sample, "--flavour", "istio")}
    assert "trafficlabel-dr-rollout-default-mocka" not in istio


def second_group(sample: Path) -> str:
    """The sample's group and lanes again as group `second`, on the services of namespace `second`."""
    text = (sample / "lanes.yaml").read_text().replace("rollout", "second")
    return text.replace("namespace: default", "namespace: second").replace(".default.svc", ".second.svc")


def test_every_group_in_the_input_is_rendered(tmp_path: Path) -> None:
    sample = sample_copy(tmp_path)
    second = second_group(sample)
    (sample / "second.yaml").write_text(second)
    objects = rendered("-f", sample)
    groups = {
        value
        for obj in objects
        for key, value in obj["metadata"].get("labels", {}).items()
        if key == "lanes.dev/group"
    }
    assert groups == {"rollout", "second"}
    assert len(objects) == 2 * len(rendered("-f", SAMPLE))


def test_output_is_the_same_every_time() -> None:
    first = invoke("render", "-f", SAMPLE, "--observed", OBSERVED / "state-2.yaml").stdout
    assert invoke("render", "-f", SAMPLE, "--observed", OBSERVED / "state-2.yaml").stdout == first


def test_one_bad_group_fails_the_whole_render(tmp_path: Path) -> None:
    sample = sample_copy(tmp_path)
    second = second_group(sample)
    broken = second.replace("fallbackTarget: base", "fallbackTarget: gone")
    (sample / "second.yaml").write_text(broken)
    result = invoke("render", "-f", sample)
    assert result.exit_code == 2
    assert result.stdout == ""
    field = "spec.permissiveModeConfiguration.fallbackTarget"
    assert f"second.yaml#1: SwimLaneGroup/second: {field}" in result.stderr


def test_two_groups_on_one_service_fail_the_render_naming_the_later_group(tmp_path: Path) -> None:
    sample = sample_copy(tmp_path)
    (sample / "second.yaml").write_text((sample / "lanes.yaml").read_text().replace("rollout", "second"))
    result = invoke("render", "-f", sample)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert (
        "second.yaml#1: SwimLaneGroup/second: spec.services[0]: service default/mocka already "
        "belongs to SwimLaneGroup rollout" in result.stderr
    )


def test_values_yaml_1_1_reads_as_booleans_are_quoted(tmp_path: Path) -> None:
    # kubectl and istioctl read YAML 1.1, where a bare `y` is true: a label value must stay a string.
    sample = sample_copy(tmp_path)
    lanes = sample / "lanes.yaml"
    lanes.write_text(lanes.read_text().replace("ASM_TRAFFIC_TAG: canary", "ASM_TRAFFIC_TAG: 'y'"))
    result = invoke("render", "-f", sample, "--observed", OBSERVED / "state-1.yaml")
    assert result.exit_code == 0, result.output
    assert "ASM_TRAFFIC_TAG: 'y'" in result.stdout
