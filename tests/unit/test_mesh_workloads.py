"""The sample app's settings, and the objects that tell the mesh where pods are."""

from __future__ import annotations

import pytest

from lanes_testbed.mesh.mockapp import Settings, Upstream, version_of, version_of_image
from lanes_testbed.mesh.workloads import gateway_objects, workload_entry


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



def test_outbound_address_takes_the_call_at_the_urls_port_with_its_host() -> None:
    settings = Settings.from_env({"upstream_url": "http://mockb:8000/x?y=1",
                                  "OUTBOUND_ADDRESS": "127.3.4.5"})
    upstream = Upstream(settings.upstream_url, settings.proxy, None, settings.outbound)
    assert (upstream.connect_to, upstream.request_target, upstream.authority) == (
        ("127.3.4.5", 8000), "/x?y=1", "mockb:8000")


def test_a_pods_entry_names_its_sidecar_and_goes_with_the_pod() -> None:
    entry = workload_entry("mockb-1", "shop", {"app": "mockb", "lane": "canary"}, "127.9.0.10",
                           "mockb", owner={"uid": "u-1"})
    assert entry["spec"] == {"address": "127.9.0.10", "labels": {"app": "mockb", "lane": "canary"},
                             "serviceAccount": "mockb"}
    assert entry["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1", "kind": "Pod", "name": "mockb-1", "uid": "u-1"}


def test_the_gateways_port_80_is_served_on_the_port_it_can_bind() -> None:
    service, entry = gateway_objects("127.9.0.2", 18080)
    assert service["spec"]["ports"] == [
        {"name": "http2", "port": 80, "targetPort": 18080, "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= entry["spec"]["labels"].items()
    assert entry["spec"]["address"] == "127.9.0.2"
