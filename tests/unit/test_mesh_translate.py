"""The Envoy translation of Istio objects: where each kind of request ends up."""

from __future__ import annotations

import random
import re

import pytest

from lanes_testbed.mesh import Endpoint, MeshConfigError, MeshOptions, bootstrap, translate

from .mesh_helpers import (
    GATEWAY_OBJ,
    added_headers,
    cluster,
    cluster_ips,
    destination,
    destination_rule,
    lane_subsets,
    pick,
    route_config,
    service,
    vhost_for,
    virtual_service,
)

B = "mockb.default.svc.cluster.local"
BASE = f"outbound|8000|base|{B}"
CANARY = f"outbound|8000|canary|{B}"


def pods() -> list[Endpoint]:
    return [
        Endpoint("127.0.0.2", {"app": "mockb", "ASM_TRAFFIC_TAG": "base"}),
        Endpoint("127.0.0.3", {"app": "mockb", "ASM_TRAFFIC_TAG": "canary"}),
        Endpoint("127.0.0.4", {"app": "mockb", "ASM_TRAFFIC_TAG": "canary"}, ready=False),
        Endpoint("127.0.0.5", {"app": "mockb", "ASM_TRAFFIC_TAG": "base"}, namespace="other"),
        Endpoint("127.0.0.6", {"app": "mockc", "ASM_TRAFFIC_TAG": "base"}),
    ]


def mesh_objects(http: list[dict], subsets: tuple[str, ...] = ("base", "canary")) -> list[dict]:
    return [
        service("mockb"),
        service("mockc"),
        virtual_service("mockb", ["mockb"], http),
        destination_rule(B, lane_subsets(*subsets)),
    ]


def to(subset: str | None, host: str = B, **extra: object) -> dict:
    dest: dict = {"host": host}
    if subset:
        dest["subset"] = subset
    return {"destination": dest, **extra}


LANE_ROUTES = [
    {"name": "canary", "match": [{"headers": {"x-asm-prefer-tag": {"exact": "canary"}}}],
     "route": [to("canary")]},
    {"name": "base", "route": [to("base")]},
]


@pytest.mark.parametrize(
    "host",
    ["mockb", "mockb:8000", "mockb.default", "mockb.default:8000", "mockb.default.svc",
     f"{B}", f"{B}:8000"],
)
def test_every_name_of_a_service_reaches_its_mesh_virtual_service(host: str) -> None:
    config = translate(mesh_objects(LANE_ROUTES), pods())
    assert destination(pick(config, "mesh", host, headers={"x-asm-prefer-tag": "canary"})) == CANARY
    assert destination(pick(config, "mesh", host)) == BASE


@pytest.mark.parametrize("host", ["mockz", "mockb:9000", "mockb.other"])
def test_unknown_host_gets_no_route(host: str) -> None:
    assert pick(translate(mesh_objects(LANE_ROUTES), pods()), "mesh", host) is None


def test_subset_clusters_hold_the_ready_pods_the_subset_and_service_select() -> None:
    config = translate(mesh_objects(LANE_ROUTES), pods())
    assert cluster_ips(config, BASE) == ["127.0.0.2"]
    assert cluster_ips(config, CANARY) == ["127.0.0.3"]


def test_service_without_virtual_service_routes_to_all_its_pods() -> None:
    config = translate(mesh_objects(LANE_ROUTES), pods())
    target = destination(pick(config, "mesh", "mockc:8000"))
    assert target == "outbound|8000||mockc.default.svc.cluster.local"
    assert cluster_ips(config, target) == ["127.0.0.6"]


@pytest.mark.parametrize(
    ("match", "path", "headers", "hit"),
    [
        ({"uri": {"exact": "/mock"}}, "/mock", {}, True),
        ({"uri": {"exact": "/mock"}}, "/mock/x", {}, False),
        ({"uri": {"exact": "/mock"}}, "/mock?q=1", {}, True),
        ({"uri": {"prefix": "/mo"}}, "/mock", {}, True),
        ({"uri": {"prefix": "/mo"}}, "/x", {}, False),
        ({"uri": {"regex": "/m[o]+ck"}}, "/moock", {}, True),
        ({"uri": {"regex": "/m[o]+ck"}}, "/moock/", {}, False),
        ({"uri": {"exact": "/MOCK"}, "ignoreUriCase": True}, "/mock", {}, True),
        ({"headers": {"x-lane": {"exact": "a"}}}, "/", {"x-lane": "a"}, True),
        ({"headers": {"x-lane": {"exact": "a"}}}, "/", {"x-lane": "ab"}, False),
        ({"headers": {"X-Lane": {"prefix": "a"}}}, "/", {"x-lane": "ab"}, True),
        ({"headers": {"baggage": {"regex": ".*lane=b.*"}}}, "/", {"baggage": "k=v,lane=b"}, True),
        ({"headers": {"baggage": {"regex": ".*lane=b.*"}}}, "/", {"baggage": "lane=c"}, False),
        ({"withoutHeaders": {"x-lane": {"exact": "a"}}}, "/", {"x-lane": "b"}, True),
        ({"withoutHeaders": {"x-lane": {"exact": "a"}}}, "/", {"x-lane": "a"}, False),
        ({"uri": {"exact": "/m"}, "headers": {"x-lane": {"exact": "a"}}}, "/m", {}, False),
    ],
    ids=[
        "exact-path", "exact-path-longer", "exact-path-ignores-query", "prefix", "prefix-miss",
        "regex-full", "regex-is-anchored", "ignore-uri-case", "header-exact",
        "header-exact-miss", "header-name-case", "header-regex", "header-regex-miss",
        "without-header", "without-header-present", "conditions-are-anded",
    ],
)
def test_request_matches(match: dict, path: str, headers: dict, hit: bool) -> None:
    objects = mesh_objects([{"match": [match], "route": [to("canary")]}])
    assert (pick(translate(objects, pods()), "mesh", "mockb", path, headers) is not None) is hit


def test_several_matches_of_one_route_are_alternatives() -> None:
    http = [{"match": [{"uri": {"exact": "/a"}}, {"uri": {"exact": "/b"}}], "route": [to("base")]}]
    config = translate(mesh_objects(http), pods())
    assert [destination(pick(config, "mesh", "mockb", p)) for p in ("/a", "/b", "/c")] == [
        BASE, BASE, None,
    ]


def test_weights_split_across_weighted_clusters_each_setting_its_lane() -> None:
    lane = {"request": {"set": {"x-asm-prefer-tag": "canary"}}}
    base = {"request": {"set": {"x-asm-prefer-tag": "base"}}}
    http = [{"route": [to("base", weight=80, headers=base), to("canary", weight=20, headers=lane)]}]
    route = pick(translate(mesh_objects(http), pods()), "mesh", "mockb")
    assert destination(route) == {BASE: 80, CANARY: 20}
    shares = route["route"]["weighted_clusters"]["clusters"]
    assert [added_headers(s) for s in shares] == [
        {"x-asm-prefer-tag": ("base", "OVERWRITE_IF_EXISTS_OR_ADD")},
        {"x-asm-prefer-tag": ("canary", "OVERWRITE_IF_EXISTS_OR_ADD")},
    ]


def test_header_operations_on_the_route_and_its_destination() -> None:
    http = [{
        "headers": {"request": {"set": {"x-a": "1"}, "add": {"x-b": "2"}, "remove": ["X-C"]},
                    "response": {"set": {"x-d": "4"}}},
        "route": [to("canary", headers={"request": {"set": {"x-asm-prefer-tag": "canary"}}})],
    }]
    route = pick(translate(mesh_objects(http), pods()), "mesh", "mockb")
    assert added_headers(route) == {
        "x-a": ("1", "OVERWRITE_IF_EXISTS_OR_ADD"),
        "x-b": ("2", "APPEND_IF_EXISTS_OR_ADD"),
        "x-asm-prefer-tag": ("canary", "OVERWRITE_IF_EXISTS_OR_ADD"),
    }
    assert route["request_headers_to_remove"] == ["x-c"]
    assert route["response_headers_to_add"][0]["header"] == {"key": "x-d", "value": "4"}


def test_subset_missing_from_destination_rule_is_an_empty_cluster() -> None:
    config = translate(mesh_objects(LANE_ROUTES, subsets=("base",)), pods())
    assert cluster_ips(config, CANARY) == []
    assert route_config(config, "mesh")["validate_clusters"] is False


def test_fallback_is_an_aggregate_of_the_lane_subset_then_the_fallback_subset() -> None:
    http = [{"route": [to("canary", fallback={"target": {"host": B, "subset": "base"}})]}]
    config = translate(mesh_objects(http), pods())
    name = destination(pick(config, "mesh", "mockb"))
    aggregate = cluster(config, name)["cluster_type"]
    assert aggregate["name"] == "envoy.clusters.aggregate"
    assert aggregate["typed_config"]["clusters"] == [CANARY, BASE]
    assert cluster_ips(config, BASE) == ["127.0.0.2"]


def test_fallback_to_the_same_subset_is_a_plain_cluster() -> None:
    http = [{"route": [to("base", fallback={"target": {"host": B, "subset": "base"}})]}]
    assert destination(pick(translate(mesh_objects(http), pods()), "mesh", "mockb")) == BASE


ASM_LABEL_ROUTE = [{"name": "default", "route": [
    to("$asm-label", fallback={"target": {"host": B, "subset": "base"}})]}]


@pytest.mark.parametrize(
    ("subsets", "lane", "expected"),
    [
        (("base", "canary"), "canary", f"fallback({CANARY},{BASE})"),
        (("base", "canary"), "base", BASE),
        (("base", "canary"), None, BASE),
        (("base", "canary"), "dev", BASE),
        (("base",), "canary", BASE),
    ],
    ids=["lane-with-subset", "fallback-lane", "no-lane", "unknown-lane", "lane-without-subset"],
)
def test_asm_label_routes_by_the_lane_header_then_falls_back(
    subsets: tuple[str, ...], lane: str | None, expected: str
) -> None:
    config = translate(mesh_objects(ASM_LABEL_ROUTE, subsets), pods())
    headers = {"x-asm-prefer-tag": lane} if lane else {}
    assert destination(pick(config, "mesh", "mockb", headers=headers)) == expected


def test_asm_label_reads_the_configured_route_header() -> None:
    options = MeshOptions(route_header="X-Lane")
    config = translate(mesh_objects(ASM_LABEL_ROUTE), pods(), options)
    assert destination(pick(config, "mesh", "mockb", headers={"x-lane": "canary"})) == (
        f"fallback({CANARY},{BASE})"
    )


def ingress(gateways: list[str], namespace: str = "istio-system") -> dict:
    return virtual_service("ingress", ["*"], [{"match": [{"uri": {"exact": "/mock"}}],
                                                "route": [to("base")]}], gateways, namespace)


@pytest.mark.parametrize(
    ("gateways", "namespace", "on_gateway", "on_mesh"),
    [
        (["istio-system/ingressgateway"], "default", True, False),
        (["ingressgateway"], "istio-system", True, False),
        (["ingressgateway"], "default", False, False),
        (["istio-system/ingressgateway", "mesh"], "default", True, True),
        (["istio-system/other"], "default", False, False),
    ],
    ids=["qualified", "short-name-in-gateway-namespace", "short-name-elsewhere",
         "gateway-and-mesh", "unknown-gateway"],
)
def test_gateway_binding(gateways: list[str], namespace: str, on_gateway: bool,
                         on_mesh: bool) -> None:
    vs = ingress(gateways, namespace)
    vs["spec"]["hosts"] = [B]
    config = translate([GATEWAY_OBJ, *mesh_objects([])[:2], vs,
                        destination_rule(B, lane_subsets("base"))], pods())
    assert (pick(config, "gateway", B, "/mock") is not None) is on_gateway
    assert (destination(pick(config, "mesh", "mockb", "/mock")) == BASE) is on_mesh


def test_gateway_merges_virtual_services_of_the_same_host_in_order() -> None:
    first = virtual_service("a", ["*"], [{"match": [{"uri": {"exact": "/a"}}],
                                          "route": [to("base")]}],
                            ["istio-system/ingressgateway"])
    second = virtual_service("b", ["*"], [{"match": [{"uri": {"prefix": "/"}}],
                                           "route": [to("canary")]}],
                             ["istio-system/ingressgateway"])
    config = translate([GATEWAY_OBJ, *mesh_objects([]), first, second], pods())
    assert destination(pick(config, "gateway", "anything:8080", "/a")) == BASE
    assert destination(pick(config, "gateway", "anything", "/b")) == CANARY
    assert [v["domains"] for v in route_config(config, "gateway")["virtual_hosts"]] == [["*"]]


def test_gateway_host_names_match_with_any_port() -> None:
    vs = virtual_service("a", ["shop.example.com"], [{"route": [to("base")]}],
                         ["istio-system/ingressgateway"])
    config = translate([GATEWAY_OBJ, *mesh_objects([]), vs], pods())
    assert destination(pick(config, "gateway", "shop.example.com:8080")) == BASE
    assert pick(config, "gateway", "other.example.com") is None


def test_bare_service_name_goes_to_the_default_namespace_when_ambiguous() -> None:
    objects = [service("mockb", "other"), service("mockb")]
    config = translate(objects, pods())
    assert vhost_for(config, "mesh", "mockb")["name"] == f"{B}:8000"
    assert vhost_for(config, "mesh", "mockb.other:8000")["name"] == (
        "mockb.other.svc.cluster.local:8000"
    )


def test_multi_port_service_gets_a_virtual_host_per_port() -> None:
    config = translate([service("web", ports=(8000, 80))], [])
    host = "web.default.svc.cluster.local"
    assert destination(pick(config, "mesh", "web:8000")) == f"outbound|8000||{host}"
    assert destination(pick(config, "mesh", "web")) == f"outbound|80||{host}"


def test_short_destination_host_is_resolved_in_the_virtual_service_namespace() -> None:
    http = [{"route": [to("base", host="mockb")]}]
    vs = virtual_service("entry", ["*"], http, ["istio-system/ingressgateway"], namespace="default")
    config = translate([GATEWAY_OBJ, *mesh_objects([]), vs], pods())
    assert destination(pick(config, "gateway", "x")) == BASE


@pytest.mark.parametrize(
    ("http", "field"),
    [
        ([{"mirror": {"host": B}, "route": [to("base")]}], "spec.http[0]: mirror"),
        ([{"fault": {}, "route": [to("base")]}], "spec.http[0]: fault"),
        ([{"match": [{"sourceLabels": {"a": 1}}], "route": [to("base")]}],
         "spec.http[0].match[0].sourceLabels.a"),
        ([{"route": [{**to("base"), "mirror": {}}]}], "spec.http[0].route[0]: mirror"),
        ([{"match": [{"uri": {"exact": "/", "prefix": "/"}}], "route": [to("base")]}],
         "spec.http[0].match[0].uri"),
        ([{"timeout": "soon", "route": [to("base")]}], "spec.http[0].timeout"),
        ([{"route": []}], "spec.http[0].route"),
    ],
    ids=["mirror", "fault", "source-labels", "destination-mirror", "two-string-matchers",
         "bad-duration", "no-destination"],
)
def test_unsupported_or_invalid_fields_are_refused_naming_the_field(http: list, field: str) -> None:
    with pytest.raises(MeshConfigError, match=re.escape(f"VirtualService default/mockb.{field}")):
        translate(mesh_objects(http), pods())


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [("1s", "1s"), ("1.5s", "1.5s"), ("250ms", "0.25s"), ("1m30s", "90s"), ("0s", "0s")],
)
def test_route_timeouts_convert_to_envoy_durations(timeout: str, expected: str) -> None:
    route = pick(translate(mesh_objects([{"timeout": timeout, "route": [to("base")]}]), pods()),
                 "mesh", "mockb")
    assert route["route"]["timeout"] == expected


def test_routes_default_to_istio_timeout_and_retries() -> None:
    route = pick(translate(mesh_objects(LANE_ROUTES), pods()), "mesh", "mockb")
    assert route["route"]["timeout"] == "0s"
    assert route["route"]["retry_policy"]["num_retries"] == 2
    no_retry = [{"retries": {"attempts": 0}, "route": [to("base")]}]
    route = pick(translate(mesh_objects(no_retry), pods()), "mesh", "mockb")
    assert "retry_policy" not in route["route"]


def test_output_does_not_depend_on_endpoint_order() -> None:
    shuffled = pods()
    random.Random(7).shuffle(shuffled)
    objects = mesh_objects(LANE_ROUTES)
    assert translate(objects, shuffled) == translate(objects, pods())


def test_listeners_read_routes_from_files_in_the_config_dir() -> None:
    options = MeshOptions(config_dir="/run/mesh", gateway_port=18080, mesh_port=15002)
    config = translate([], [], options)
    ports = {l["name"]: l["address"]["socket_address"]["port_value"] for l in config.listeners}
    assert ports == {"gateway": 18080, "mesh": 15002}
    hcm = config.listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["rds"]["config_source"]["path_config_source"]["path"] == "/run/mesh/rds-gateway.json"
    boot = bootstrap(options, admin_port=15900)
    admin = boot["admin"]["address"]["socket_address"]
    assert admin == {"address": "127.0.0.1", "port_value": 15900}
    cds = boot["dynamic_resources"]["cds_config"]["path_config_source"]
    assert cds["path"] == "/run/mesh/cds.json"
