"""The local mesh loads lanes' WasmPlugins into its one Envoy: before routing and upstream,
from the module it fetched for them or the one built here."""

from __future__ import annotations

import json

import pytest

from lanes_testbed.mesh import MeshConfigError, MeshOptions, translate
from lanes_testbed.mesh.translate import module_fetches, needs_built_module

CONFIG = {"routeHeader": "x-asm-prefer-tag", "traceHeader": "my-request-id",
          "maxEntries": 100, "maxAgeSeconds": 5}


def plugin(name: str, config: dict = CONFIG, extension: str | None = "trace-affinity") -> dict:
    labels = {"lanes.dev/extension": extension} if extension else {}
    return {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"url": "https://m.example/ta.wasm", "pluginConfig": config}}


def hcms(objects: list[dict], options: MeshOptions) -> list[dict]:
    config = translate(objects, [], options)
    return [f["typed_config"] for listener in config.listeners
            for chain in listener["filter_chains"] for f in chain["filters"]]


def configuration(wasm: dict) -> dict:
    return json.loads(wasm["typed_config"]["config"]["configuration"]["value"])


def test_plugins_become_one_filter_per_distinct_config_on_every_listener() -> None:
    options = MeshOptions(trace_affinity_module="/m/ta.wasm")
    objects = [plugin("a"), plugin("b"), plugin("c", {**CONFIG, "maxEntries": 7})]
    for hcm in hcms(objects, options):
        *wasm, router = hcm["http_filters"]
        assert [configuration(w)["maxEntries"] for w in wasm] == [100, 7]
        assert {w["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
                for w in wasm} == {"/m/ta.wasm"}
        *upstream, codec = router["typed_config"]["upstream_http_filters"]
        assert [configuration(w)["restore"] for w in upstream] == [False, False]
        assert codec["name"] == "envoy.filters.http.upstream_codec"


def test_without_plugins_there_is_no_wasm_filter() -> None:
    for hcm in hcms([], MeshOptions()):
        assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.router"]
        assert "upstream_http_filters" not in hcm["http_filters"][0]["typed_config"]


def test_another_module_is_refused_naming_the_plugin() -> None:
    with pytest.raises(MeshConfigError, match="WasmPlugin default/other: the local mesh loads only"):
        translate([plugin("other", extension=None)], [], MeshOptions(trace_affinity_module="/m"))


def test_a_plugin_with_no_built_module_is_refused() -> None:
    with pytest.raises(MeshConfigError, match="needs the trace-affinity module, which is not built"):
        translate([plugin("a")], [], MeshOptions())


def asm_group(flavour: str = "asm", trace: str | None = "my-request-id") -> dict:
    config = {"fallbackTarget": "base", "routeHeader": "x-asm-prefer-tag"}
    if trace:
        config["traceHeader"] = trace
    return {"apiVersion": "lanes.dev/v1alpha1", "kind": "SwimLaneGroup",
            "metadata": {"name": "rollout"},
            "spec": {"ingress": {"gateway": {"name": "gw", "namespace": "istio-system"}},
                     "isPermissive": True, "permissiveModeConfiguration": config,
                     "services": [{"name": "mocka", "namespace": "default"}],
                     "flavour": flavour}}


def test_an_asm_group_in_trace_id_mode_gets_the_module_as_asm_proxies_would() -> None:
    options = MeshOptions(trace_affinity_module="/m/ta.wasm")
    for hcm in hcms([asm_group()], options):
        *wasm, _ = hcm["http_filters"]
        assert [configuration(w) for w in wasm] == [{
            "routeHeader": "x-asm-prefer-tag", "traceHeader": "my-request-id",
            "maxEntries": 10000, "maxAgeSeconds": 60}]


@pytest.mark.parametrize("group", [asm_group("istio"), asm_group(trace=None)],
                         ids=["istio-flavour", "no-trace-header"])
def test_other_groups_get_no_module_from_the_mesh(group: dict) -> None:
    for hcm in hcms([group], MeshOptions()):
        assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.router"]


SHA = "ab" * 32


def served_plugin(name: str, url: str = "http://127.0.0.1:9091/wasm/trace-affinity.wasm",
                  sha256: str | None = SHA) -> dict:
    body = plugin(name)
    body["spec"] = {**body["spec"], "url": url}
    if sha256:
        body["spec"]["sha256"] = sha256
    return body


def loaded(objects: list[dict], options: MeshOptions) -> set[str]:
    return {w["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
            for hcm in hcms(objects, options) for w in hcm["http_filters"][:-1]}


@pytest.mark.parametrize(("url", "sha256", "fetched"), [
    ("http://127.0.0.1:9091/wasm/trace-affinity.wasm", SHA, True),
    ("https://modules.example/ta.wasm", SHA, True),
    ("https://modules.example/ta.wasm", None, False),
    ("oci://registry.example/lanes/ta:1", SHA, False),
    ("file:///var/lib/ta.wasm", SHA, False),
], ids=["http", "https", "no-sha256", "oci", "file"])
def test_an_http_module_with_a_sha256_is_fetched_the_rest_load_the_build(
    url: str, sha256: str | None, fetched: bool
) -> None:
    objects = [served_plugin("a", url, sha256)]
    assert bool(module_fetches(objects)) == fetched
    assert needs_built_module(objects) == (not fetched)
    options = MeshOptions(trace_affinity_module="/m/built.wasm",
                          fetched_modules=((SHA, "/m/fetched.wasm"),))
    assert loaded(objects, options) == {"/m/fetched.wasm" if fetched else "/m/built.wasm"}


def test_a_module_not_fetched_yet_is_refused_naming_the_plugin() -> None:
    with pytest.raises(MeshConfigError, match=f"WasmPlugin default/a: its module .* sha256 {SHA}"
                       r"\) is not fetched"):
        translate([served_plugin("a")], [], MeshOptions(trace_affinity_module="/m/built.wasm"))


def test_one_fetch_per_module_however_many_plugins_name_it() -> None:
    objects = [served_plugin("a"), served_plugin("b"), served_plugin("c", sha256="CD" * 32)]
    assert [f.sha256 for f in module_fetches(objects)] == [SHA, "cd" * 32]
