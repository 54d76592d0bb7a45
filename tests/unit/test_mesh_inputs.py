"""What the mesh reads: pods as endpoints, Services, and the sample app's settings."""

from __future__ import annotations

import pytest

from lanes_testbed.mesh import Endpoint, endpoints_from_pods, services_of
from lanes_testbed.mesh.inputs import resolve_host
from lanes_testbed.mesh.mockapp import Settings, version_of, version_of_image


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample:1.0", "v1"),
        ("registry.cn-beijing.aliyuncs.com/aliacs-app-catalog/go-http-sample:2.0", "v2"),
        ("go-http-sample:2.1", "v2.1"),
        ("localhost:5000/go-http-sample:3", "v3"),
        ("go-http-sample:v4.0.1", "v4"),
    ],
    ids=["1.0", "2.0", "minor", "registry-port", "v-prefix-patch"],
)
def test_version_of_image(image: str, version: str) -> None:
    assert version_of_image(image) == version


@pytest.mark.parametrize("image", ["go-http-sample", "go-http-sample:latest", "localhost:5000/x"])
def test_image_without_version_tag_is_refused(image: str) -> None:
    with pytest.raises(ValueError, match="no version tag"):
        version_of_image(image)


@pytest.mark.parametrize(
    ("env", "version"),
    [
        ({"version": "v1", "LANES_IMAGE": "go-http-sample:2.0"}, "v2"),
        ({"version": "v3"}, "v3"),
        ({}, "v1"),
    ],
    ids=["image-wins-as-in-the-story", "explicit-version", "default"],
)
def test_version_of_env(env: dict[str, str], version: str) -> None:
    assert version_of(env) == version


def test_settings_from_env() -> None:
    settings = Settings.from_env({
        "app": "mocka", "version": "v1", "POD_IP": "127.0.0.7", "PORT": "8001",
        "upstream_url": "http://mockb:8000/", "http_proxy": "http://127.0.0.1:15001",
        "fail_percent": "12.5", "latency_ms": "30",
    })
    assert settings.line() == "-> mocka(version: v1, ip: 127.0.0.7)"
    assert (settings.port, settings.proxy, settings.fail_percent, settings.latency_ms) == (
        8001, "http://127.0.0.1:15001", 12.5, 30.0,
    )
    assert Settings.from_env({}).upstream_url is None


def pod(ip: str | None, ready: str = "True", deleting: bool = False) -> dict:
    meta: dict = {"name": "p", "namespace": "shop", "labels": {"app": "a"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict = {"conditions": [{"type": "Ready", "status": ready}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "status": status,
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 9000}]}]}}


def test_endpoints_from_pods() -> None:
    pods = [pod("127.0.0.2"), pod("127.0.0.3", ready="False"), pod(None),
            pod("127.0.0.4", deleting=True)]
    assert endpoints_from_pods(pods) == [
        Endpoint("127.0.0.2", {"app": "a"}, namespace="shop", port=9000, ready=True),
        Endpoint("127.0.0.3", {"app": "a"}, namespace="shop", port=9000, ready=False),
    ]


def test_services_keep_tcp_ports_and_numeric_target_ports() -> None:
    found = services_of([{
        "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "http"},
            {"port": 53, "protocol": "UDP"}]},
    }])
    web = found["web.default.svc.cluster.local"]
    assert web.ports == (80, 81)
    pod_endpoint = Endpoint("127.0.0.2", {"app": "web"}, port=9000)
    assert (web.target_port(80, pod_endpoint), web.target_port(81, pod_endpoint)) == (8080, 9000)
    assert web.selects(pod_endpoint)
    assert not web.selects(Endpoint("127.0.0.2", {"app": "web"}, namespace="other"))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("mockb", "mockb.shop.svc.cluster.local"),
        ("mockb.default", "mockb.default.svc.cluster.local"),
        ("mockb.default.svc", "mockb.default.svc.cluster.local"),
        ("mockb.default.svc.cluster.local", "mockb.default.svc.cluster.local"),
        ("example.com", "example.com"),
        ("*", "*"),
    ],
)
def test_resolve_host(host: str, expected: str) -> None:
    known = services_of([{"kind": "Service", "metadata": {"name": "mockb"}, "spec": {}}])
    assert resolve_host(host, "shop", known) == expected
