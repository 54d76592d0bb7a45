"""Istio's own analyzer, `istioctl analyze`, over the Istio-flavour objects lanes generates.

Offline it reads files, so it checks the schema, that every routed subset exists in its
DestinationRule and that every referenced gateway exists. Against the API server it also sees
pods (a subset must select some); the story's states are analyzed live in
test_operator_story.py. ASM output is not analyzed: istioctl rejects ASM's `fallback`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lanes.cli.main import app
from lanes_testbed.istioctl import IGNORED, Ignored, Message, analyze, ensure_istioctl, parse_analysis, unexpected
from tests.conftest import ROOT
from tests.unit.test_render_golden import Case, all_cases

SAMPLE = ROOT / "samples" / "mock-chain"
SAMPLE_STATES = sorted(p.stem.removeprefix("state-") for p in (SAMPLE / "observed").glob("state-*.yaml"))
ISTIO_CASES = [case for case in all_cases() if case.flavour == "istio"]


@pytest.fixture(scope="module")
def istioctl() -> Path:
    return ensure_istioctl()


def gateway(namespace: str, name: str) -> dict:
    """A catch-all HTTP Gateway, as a cluster serving the routes would have."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
        },
    }


def service(namespace: str, name: str, ports: set[int]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": f"http-{port}", "port": port} for port in sorted(ports or {80})],
        },
    }


def referred_objects(objects: list[dict]) -> list[dict]:
    """The Gateways and Services the generated routes name, which a real cluster would hold."""
    gateways: set[tuple[str, str]] = set()
    services: dict[tuple[str, str], set[int]] = {}
    for obj in objects:
        own = obj["metadata"]["namespace"]
        if obj["kind"] == "VirtualService":
            for ref in obj["spec"].get("gateways") or []:
                if ref != "mesh":
                    namespace, _, name = ref.rpartition("/")
                    gateways.add((namespace or own, name))
            destinations = [
                route["destination"]
                for rule in obj["spec"].get("http") or []
                for route in rule.get("route") or []
            ]
        elif obj["kind"] == "DestinationRule":
            destinations = [{"host": obj["spec"]["host"]}]
        else:
            destinations = []
        for destination in destinations:
            name, _, rest = destination["host"].partition(".")
            key = (rest.split(".")[0] or own, name)
            ports = services.setdefault(key, set())
            if "port" in destination:
                ports.add(destination["port"]["number"])
    return [gateway(*g) for g in sorted(gateways)] + [service(*key, ports) for key, ports in sorted(services.items())]


def write_all(path: Path, objects: list[dict]) -> Path:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


def assert_clean(messages: list[Message]) -> None:
    left = unexpected(messages)
    assert left == [], "istioctl analyze reported:\n" + "\n".join(map(str, left))


@pytest.mark.parametrize("case", ISTIO_CASES, ids=lambda c: c.name)
def test_golden_output_passes_istioctl_analyze(case: Case, istioctl: Path, tmp_path: Path) -> None:
    expected = [d for d in yaml.safe_load_all(case.path("expected").read_text()) if d]
    files = [case.path("expected"), write_all(tmp_path / "referred.yaml", referred_objects(expected))]
    assert_clean(analyze(istioctl, files))


def render_sample(state: str) -> str:
    from typer.testing import CliRunner

    observed = SAMPLE / "observed" / f"state-{state}.yaml"
    result = CliRunner().invoke(
        app, ["render", "-f", str(SAMPLE), "--observed", str(observed), "--flavour", "istio"]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("state", SAMPLE_STATES, ids=lambda s: f"state-{s}")
def test_sample_passes_istioctl_analyze(state: str, istioctl: Path, tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render_sample(state))
    assert_clean(analyze(istioctl, [SAMPLE / "app.yaml", rendered]))


def test_analyze_fails_on_a_subset_no_destination_rule_defines(istioctl: Path, tmp_path: Path) -> None:
    rendered = [d for d in yaml.safe_load_all(render_sample("1")) if d]
    for obj in rendered:
        if obj["kind"] == "DestinationRule" and obj["spec"]["host"].startswith("mocka."):
            obj["spec"]["subsets"] = [s for s in obj["spec"]["subsets"] if s["name"] != "canary"]
    messages = analyze(istioctl, [SAMPLE / "app.yaml", write_all(tmp_path / "broken.yaml", rendered)])
    # Both the ingress route and mocka's own route name the missing subset.
    assert sorted((m.code, m.object) for m in unexpected(messages)) == [
        ("IST0101", "VirtualService default/lanes-rollout-mocka"),
        ("IST0101", "VirtualService istio-system/lanes-rollout-ingress"),
    ]
    assert all("mocka.default.svc.cluster.local+canary" in m.text for m in messages)


def test_analyze_output_is_parsed_into_messages() -> None:
    output = (
        'Error [IST0101] (VirtualService default/lanes-rollout-mocka rendered.yaml:52) '
        'Referenced host+subset in destinationrule not found: "mocka.default.svc.cluster.local+canary"\n'
        "Warning [IST0102] (Namespace default) The namespace is not enabled for Istio injection.\n"
        "\n"
    )
    assert parse_analysis(output) == [
        Message(
            "IST0101",
            "Error",
            "VirtualService default/lanes-rollout-mocka",
            'Referenced host+subset in destinationrule not found: "mocka.default.svc.cluster.local+canary"',
        ),
        Message("IST0102", "Warning", "Namespace default", "The namespace is not enabled for Istio injection."),
    ]
    with pytest.raises(ValueError, match="unrecognised"):
        parse_analysis("panic: something else\n")


def test_every_ignored_code_names_a_reason() -> None:
    for entry in IGNORED:
        assert isinstance(entry, Ignored) and entry.code.startswith("IST") and len(entry.reason) > 20


def test_live_analyze_reports_a_subset_that_selects_no_pods(istioctl, control_plane, kube_api, namespace) -> None:
    from kubernetes import client

    from lanes_testbed.inprocess import make_pod

    core, custom = client.CoreV1Api(kube_api), client.CustomObjectsApi(kube_api)
    core.create_namespaced_service(namespace, service(namespace, "mocka", {8000}))
    make_pod(core, namespace, "mocka-v1", {"app": "mocka", "ASM_TRAFFIC_TAG": "base"})
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "mocka"},
        "spec": {
            "host": f"mocka.{namespace}.svc.cluster.local",
            "subsets": [
                {"name": lane, "labels": {"ASM_TRAFFIC_TAG": lane}} for lane in ("base", "canary")
            ],
        },
    }
    custom.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "destinationrules", rule)
    messages = analyze(istioctl, kubeconfig=control_plane.kubeconfig)
    mine = [m for m in unexpected(messages) if m.object == f"DestinationRule {namespace}/mocka"]
    assert [(m.code, "canary" in m.text) for m in mine] == [("IST0173", True)]
