"""charts/lanes renders with Helm and the real apiserver accepts every object it installs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from lanes_testbed.controlplane import ControlPlane
from lanes_testbed.helm import ensure_helm
from lanes.operator.modules import served_url
from lanes.render.trace_affinity import DEFAULT_URL

CHART = Path(__file__).resolve().parents[2] / "charts" / "lanes"


def helm(*args: str) -> str:
    result = subprocess.run(
        [str(ensure_helm()), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    text = helm("template", "lanes", str(CHART), "--namespace", "lanes-system", "--include-crds")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_chart_lints_clean() -> None:
    assert "0 chart(s) failed" in helm("lint", str(CHART), "--strict")


def test_chart_installs_crds_operator_rbac_and_metrics_service(rendered: list[dict]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert kinds == [
        ("ClusterRole", "lanes"),
        ("ClusterRoleBinding", "lanes"),
        ("CustomResourceDefinition", "alertproviders.lanes.dev"),
        ("CustomResourceDefinition", "lanereleases.lanes.dev"),
        ("CustomResourceDefinition", "metrictemplates.lanes.dev"),
        ("CustomResourceDefinition", "swimlanegroups.lanes.dev"),
        ("CustomResourceDefinition", "swimlanes.lanes.dev"),
        ("CustomResourceDefinition", "workloadrollouts.lanes.dev"),
        ("Deployment", "lanes"),
        ("PodDisruptionBudget", "lanes"),
        ("Role", "lanes"),
        ("RoleBinding", "lanes"),
        ("Service", "lanes-metrics"),
        ("Service", "lanes-trace-affinity"),
        ("Service", "lanes-webhook"),
        ("ServiceAccount", "lanes"),
    ]


def test_rbac_is_least_privilege(rendered: list[dict]) -> None:
    [role] = [d for d in rendered if d["kind"] == "ClusterRole"]
    [local] = [d for d in rendered if d["kind"] == "Role"]
    for rule in role["rules"] + local["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    for rule in role["rules"]:
        assert "secrets" not in rule["resources"], rule
        if set(rule["resources"]) & {"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}:
            assert not {"patch", "update", "delete"} & set(rule["verbs"]) or rule["resourceNames"] == ["lanes.dev"], rule
    # In the operator's namespace: create (which cannot be named), else only its own objects.
    for rule in local["rules"]:
        assert set(rule["verbs"]) == {"create"} or rule["resourceNames"] in (["lanes-webhook-cert"], ["lanes"]), rule
        assert "list" not in rule["verbs"] and "delete" not in rule["verbs"], rule
    writes = {
        resource
        for rule in role["rules"]
        if {"create", "delete"} & set(rule["verbs"])
        for resource in rule["resources"]
    }
    assert writes <= {
        "virtualservices",
        "destinationrules",
        "wasmplugins",
        "deployments",
        "horizontalpodautoscalers",
        "events",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    }


def test_the_apiserver_accepts_every_rendered_object(
    control_plane: ControlPlane, rendered: list[dict]
) -> None:
    control_plane.kubectl("create", "namespace", "lanes-system")
    try:
        out = control_plane.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            "-",
            input=yaml.safe_dump_all(rendered),
        )
    finally:
        control_plane.kubectl("delete", "namespace", "lanes-system", "--wait=false")
    applied = [line for line in out.splitlines() if "serverside-applied" in line]
    assert len(applied) == len(rendered), out


def template(*sets: str, release: str = "lanes") -> list[dict]:
    """The chart's objects, rendered with `--set` values."""
    args = [arg for value in sets for arg in ("--set", value)]
    text = helm("template", release, str(CHART), "--namespace", "lanes-system", *args)
    return [d for d in yaml.safe_load_all(text) if d]


def operator_container(objects: list[dict]) -> dict:
    [deployment] = [d for d in objects if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def operator_env(*sets: str) -> dict[str, str]:
    """The operator container's plain env values, rendered with `--set` values."""
    return {e["name"]: e["value"] for e in operator_container(template(*sets))["env"] if "value" in e}


def test_analysis_values_reach_the_operator_environment() -> None:
    env = operator_env()
    assert env["LANES_METRIC_SOURCE"] == "istio"
    assert "LANES_PROMETHEUS_URL" not in env
    env = operator_env("prometheus.address=http://prometheus.monitoring:9090",
                       "analysis.metricSource=envoy")
    assert env["LANES_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["LANES_METRIC_SOURCE"] == "envoy"


def test_an_unknown_metric_source_is_refused_naming_the_value() -> None:
    result = subprocess.run(
        [str(ensure_helm()), "template", "lanes", str(CHART), "--set", "analysis.metricSource=linkerd"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0
    assert 'analysis.metricSource: "linkerd" is not one of istio, envoy' in result.stderr


def test_trace_affinity_values_reach_the_operator_environment() -> None:
    env = operator_env()
    assert "LANES_TRACE_AFFINITY_URL" not in env and "LANES_TRACE_AFFINITY_SHA256" not in env
    assert (env["LANES_TRACE_AFFINITY_MAX_ENTRIES"], env["LANES_TRACE_AFFINITY_MAX_AGE"]) == ("10000", "60")
    env = operator_env("traceAffinity.url=https://modules.example/traceaffinity.wasm",
                       f"traceAffinity.sha256={'ab' * 32}", "traceAffinity.maxEntries=500")
    assert env["LANES_TRACE_AFFINITY_URL"] == "https://modules.example/traceaffinity.wasm"
    assert env["LANES_TRACE_AFFINITY_SHA256"] == "ab" * 32
    assert env["LANES_TRACE_AFFINITY_MAX_ENTRIES"] == "500"


def module_service(objects: list[dict]) -> dict | None:
    found = [d for d in objects if d["kind"] == "Service" and d["metadata"]["name"].endswith("-trace-affinity")]
    return found[0] if found else None


def test_by_default_the_operator_serves_the_module_its_image_carries() -> None:
    objects = template()
    container = operator_container(objects)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["LANES_TRACE_AFFINITY_MODULE"] == "/usr/local/share/lanes/trace-affinity.wasm"
    assert "LANES_TRACE_AFFINITY_URL" not in env and "LANES_TRACE_AFFINITY_SHA256" not in env
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["trace-affinity"] == int(env["LANES_TRACE_AFFINITY_PORT"]) == 9091
    service = module_service(objects)
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (9091, "trace-affinity")
    assert port["name"].startswith("http-")  # Istio takes the protocol from the port's name
    [deployment] = [d for d in objects if d["kind"] == "Deployment"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # The Service's name is the one the operator puts in the WasmPlugins' url, and for the
    # release `lanes` in lanes-system that is the url `kubectl lane render` prints.
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert env["LANES_TRACE_AFFINITY_HOST"] == f"{name}.{namespace}.svc"
    assert served_url(env["LANES_TRACE_AFFINITY_HOST"], port["port"]) == DEFAULT_URL


def test_the_served_module_follows_the_port_and_release_name() -> None:
    objects = template("traceAffinity.port=8181", release="mesh")
    env = {e["name"]: e["value"] for e in operator_container(objects)["env"] if "value" in e}
    assert (env["LANES_TRACE_AFFINITY_HOST"], env["LANES_TRACE_AFFINITY_PORT"]) == (
        "mesh-lanes-trace-affinity.lanes-system.svc", "8181")
    assert module_service(objects)["spec"]["ports"][0]["port"] == 8181


@pytest.mark.parametrize("sets", [
    ("traceAffinity.url=https://modules.example/traceaffinity.wasm",),
    ("traceAffinity.serve=false",),
], ids=["url-given", "serve-off"])
def test_with_a_url_or_serve_off_the_chart_serves_nothing(sets: tuple[str, ...]) -> None:
    objects = template(*sets)
    container = operator_container(objects)
    names = {e["name"] for e in container["env"]}
    assert not names & {"LANES_TRACE_AFFINITY_MODULE", "LANES_TRACE_AFFINITY_PORT",
                        "LANES_TRACE_AFFINITY_HOST"}
    assert "trace-affinity" not in {p["name"] for p in container["ports"]}
    assert module_service(objects) is None


def test_the_listen_address_reaches_metrics_and_webhook() -> None:
    container = operator_container(template())
    env = {e["name"]: e for e in container["env"]}
    assert "--metrics-host=0.0.0.0" in container["args"]
    assert env["LANES_WEBHOOK_ADDR"]["value"] == "0.0.0.0"
    container = operator_container(template("listenAddress=$(POD_IP)"))
    names = [e["name"] for e in container["env"]]
    # Kubernetes expands $(POD_IP) only from variables defined before the reference.
    assert names.index("POD_IP") < names.index("LANES_WEBHOOK_ADDR")
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert "--metrics-host=$(POD_IP)" in container["args"]
    assert {e["name"]: e.get("value") for e in container["env"]}["LANES_WEBHOOK_ADDR"] == "$(POD_IP)"


def dashboard_maps(objects: list[dict]) -> list[dict]:
    return [d for d in objects if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")]


def test_grafana_dashboards_render_only_when_enabled() -> None:
    assert dashboard_maps(template()) == []
    [configmap] = dashboard_maps(template("grafana.dashboards.enabled=true"))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "lanes-system"
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert sorted(configmap["data"]) == files
    for name, text in configmap["data"].items():
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())


def test_the_apiserver_accepts_the_dashboards(control_plane: ControlPlane, namespace: str) -> None:
    [configmap] = dashboard_maps(template("grafana.dashboards.enabled=true",
                                          f"grafana.dashboards.namespace={namespace}"))
    out = control_plane.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-",
                                input=yaml.safe_dump(configmap))
    assert "serverside-applied" in out, out


def test_grafana_dashboards_follow_the_sidecars_label_namespace_and_folder() -> None:
    [configmap] = dashboard_maps(template(
        "grafana.dashboards.enabled=true", "grafana.dashboards.label=dashboards",
        "grafana.dashboards.labelValue=lanes", "grafana.dashboards.namespace=monitoring",
        "grafana.dashboards.annotations.grafana_folder=Lanes"))
    assert configmap["metadata"]["labels"]["dashboards"] == "lanes"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Lanes"}


def test_peer_serving_is_off_unless_asked_and_then_reaches_the_operator_with_its_rbac() -> None:
    def peer_rules(objects: list[dict]) -> list[dict]:
        [role] = [d for d in objects if d["kind"] == "ClusterRole"]
        return [r for r in role["rules"]
                if {"istio.alibabacloud.com", "rollouts.kruise.io"} & set(r["apiGroups"])]

    assert "LANES_SERVE_PEERS" not in operator_env()
    assert peer_rules(template()) == []
    assert operator_env("peers.serve=true")["LANES_SERVE_PEERS"] == "true"
    objects = template("peers.serve=true")
    granted = {(group, resource, verb) for rule in peer_rules(objects)
               for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert ("rollouts.kruise.io", "rollouts/status", "patch") in granted
    assert ("istio.alibabacloud.com", "asmswimlanegroups", "watch") in granted
    assert not any(verb in ("create", "update", "delete") for _, _, verb in granted)
    [role] = [d for d in objects if d["kind"] == "ClusterRole"]
    crd_rules = [r for r in role["rules"] if "customresourcedefinitions" in r["resources"]]
    assert {v for r in crd_rules for v in r["verbs"]} == {"list", "watch", "get", "create"}
