"""`sourceLabels` in the local mesh: each caller gets the routes Istio would give its proxy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lanes_testbed.mesh import Endpoint, EnvoyMesh, MeshConfigError, translate
from lanes_testbed.mesh.envoy import _stat_of_file
from lanes_testbed.mesh.translate import rds_file, source_route_name

from .mesh_helpers import (
    GATEWAY_OBJ,
    destination,
    destination_rule,
    lane_subsets,
    listener_of,
    pick,
    route_config,
    route_name_for,
    service,
    source_chains,
    vhost_for,
    virtual_service,
)

A = "mocka.default.svc.cluster.local"
B = "mockb.default.svc.cluster.local"
LANES = ("s1", "s2", "s3")
S1_A, S2_A, S1_A_STARTING, OUTSIDER, S1_B, S2_B = (
    "127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.9", "127.0.2.1", "127.0.2.2",
)


def tag(lane: str) -> tuple[tuple[str, str], ...]:
    return (("ASM_TRAFFIC_TAG", lane),)


def lane_of(name: str) -> str:
    return source_route_name([tag(name)])


def sub(lane: str, host: str = B) -> str:
    return f"outbound|8000|{lane}|{host}"


def strict(host: str, lanes: tuple[str, ...] = LANES) -> list[dict]:
    """The strict-mode mesh routes: by the caller's lane, then by header for outsiders."""
    by_source = [
        {"name": lane, "match": [{"sourceLabels": {"ASM_TRAFFIC_TAG": lane}}],
         "route": [{"destination": {"host": host, "subset": lane}}]}
        for lane in lanes
    ]
    by_header = [
        {"name": f"{lane}-header", "match": [{"headers": {"x-asm-prefer-tag": {"exact": lane}}}],
         "route": [{"destination": {"host": host, "subset": lane}}]}
        for lane in lanes
    ]
    return by_source + by_header


def objects(http_b: list[dict] | None = None, extra: tuple[dict, ...] = ()) -> list[dict]:
    return [
        service("mocka"),
        service("mockb"),
        virtual_service("mockb", [B], strict(B) if http_b is None else http_b),
        destination_rule(B, lane_subsets(*LANES)),
        *extra,
    ]


def pod(ip: str, app: str, lane: str | None, ready: bool = True) -> Endpoint:
    labels = {"app": app, **({"ASM_TRAFFIC_TAG": lane} if lane else {})}
    return Endpoint(ip, labels, ready=ready)


def pods() -> list[Endpoint]:
    return [
        pod(S1_A, "mocka", "s1"),
        pod(S2_A, "mocka", "s2"),
        pod(S1_A_STARTING, "mocka", "s1", ready=False),
        pod(OUTSIDER, "mocka", None),
        pod(S1_B, "mockb", "s1"),
        pod(S2_B, "mockb", "s2"),
    ]


@pytest.mark.parametrize(
    ("source", "headers", "expected"),
    [
        (S1_A, {}, sub("s1")),
        (S2_A, {}, sub("s2")),
        (S1_A_STARTING, {}, sub("s1")),
        (S1_B, {}, sub("s1")),
        (S1_A, {"x-asm-prefer-tag": "s2"}, sub("s1")),
        (OUTSIDER, {}, None),
        (OUTSIDER, {"x-asm-prefer-tag": "s2"}, sub("s2")),
        ("127.0.0.1", {"x-asm-prefer-tag": "s3"}, sub("s3")),
        ("127.0.0.1", {}, None),
    ],
    ids=["s1-pod", "s2-pod", "not-ready-pod-still-calls-in-its-lane", "callee-lane-pod",
         "own-lane-wins-over-header", "outsider-without-header-404", "outsider-with-header",
         "not-a-pod-with-header", "not-a-pod-without-header-404"],
)
def test_each_caller_stays_in_its_own_lane(
    source: str, headers: dict, expected: str | None
) -> None:
    route = pick(translate(objects(), pods()), "mesh", "mockb:8000", headers=headers, source=source)
    assert destination(route) == expected


def test_a_lane_without_pods_gets_no_chain_and_no_route_table() -> None:
    config = translate(objects(), pods())
    assert source_chains(config, "mesh") == {
        lane_of("s1"): [f"{S1_A}/32", f"{S1_A_STARTING}/32", f"{S1_B}/32"],
        lane_of("s2"): [f"{S2_A}/32", f"{S2_B}/32"],
    }
    assert sorted(r["name"] for r in config.routes) == sorted(
        ["gateway", "mesh", lane_of("s1"), lane_of("s2")]
    )


def test_default_table_keeps_only_the_matches_without_source_labels() -> None:
    config = translate(objects(), pods())
    assert route_name_for(config, "mesh", OUTSIDER) == "mesh"
    vhost = vhost_for(config, "mesh", "mockb:8000", OUTSIDER)
    assert [r["name"] for r in vhost["routes"]] == ["s1-header", "s2-header", "s3-header"]


def test_a_lane_table_keeps_its_own_source_match_without_the_selector() -> None:
    config = translate(objects(), pods())
    vhost = vhost_for(config, "mesh", "mockb:8000", S2_A)
    assert [r["name"] for r in vhost["routes"]] == ["s2", "s1-header", "s2-header", "s3-header"]
    assert vhost["routes"][0]["match"] == {"prefix": "/"}


def test_every_chain_reads_its_table_by_rds_under_the_mesh_stat_prefix() -> None:
    config = translate(objects(), pods())
    chains = listener_of(config, "mesh")["filter_chains"]
    assert "filter_chain_match" not in chains[0]
    for chain in chains:
        hcm = chain["filters"][0]["typed_config"]
        name = hcm["rds"]["route_config_name"]
        assert hcm["stat_prefix"] == "mesh"
        assert hcm["rds"]["config_source"]["path_config_source"]["path"].endswith(
            f"/rds-{name}.json"
        )
        assert _stat_of_file(f"rds-{name}.json") == f"http.mesh.rds.{name}"
    assert _stat_of_file("rds-gateway.json") == "http.gateway.rds.gateway"


def test_a_pod_joining_changes_only_the_listener_addresses() -> None:
    before = translate(objects(), pods())
    after = translate(objects(), [*pods(), pod("127.0.1.4", "mocka", "s1")])
    assert after.routes == before.routes
    assert source_chains(after, "mesh")[lane_of("s1")] == [
        f"{S1_A}/32", f"{S1_A_STARTING}/32", "127.0.1.4/32", f"{S1_B}/32",
    ]
    unchanged = [c for c in listener_of(before, "mesh")["filter_chains"]
                 if c in listener_of(after, "mesh")["filter_chains"]]
    assert len(unchanged) == 2, "the default and s2 chains stay as they were"


def test_a_new_lane_adds_a_chain_and_a_table_and_leaves_the_others_alone() -> None:
    before = translate(objects(), pods())
    after = translate(objects(), [*pods(), pod("127.0.3.1", "mocka", "s3")])
    assert all(r in after.routes for r in before.routes)
    assert len(after.routes) == len(before.routes) + 1
    assert all(c in listener_of(after, "mesh")["filter_chains"]
               for c in listener_of(before, "mesh")["filter_chains"])
    assert source_chains(after, "mesh")[lane_of("s3")] == ["127.0.3.1/32"]
    assert destination(pick(after, "mesh", "mockb", source="127.0.3.1")) == sub("s3")


def test_table_names_depend_on_the_selectors_only() -> None:
    only_s1 = translate(objects(), [pod(S1_A, "mocka", "s1")])
    assert route_name_for(only_s1, "mesh", S1_A) == route_name_for(
        translate(objects(), pods()), "mesh", S1_A
    )
    assert re.fullmatch(r"mesh-[0-9a-f]{12}", lane_of("s1"))
    assert lane_of("s1") != lane_of("s2")
    assert source_route_name([tag("s1"), tag("s2")]) == source_route_name([tag("s2"), tag("s1")])


def test_a_pod_matching_two_selectors_gets_both_sets_of_routes() -> None:
    by_app = virtual_service("mocka", [A], [
        {"name": "from-mocka", "match": [{"sourceLabels": {"app": "mocka"}}],
         "route": [{"destination": {"host": A, "subset": "s2"}}]},
        {"name": "rest", "route": [{"destination": {"host": A, "subset": "s1"}}]},
    ])
    config = translate(
        objects(extra=(by_app, destination_rule(A, lane_subsets(*LANES)))), pods()
    )
    both = source_route_name([tag("s1"), (("app", "mocka"),)])
    assert route_name_for(config, "mesh", S1_A) == both
    assert destination(pick(config, "mesh", "mocka", source=S1_A)) == sub("s2", A)
    assert destination(pick(config, "mesh", "mockb", source=S1_A)) == sub("s1")
    assert destination(pick(config, "mesh", "mocka", source=S1_B)) == sub("s1", A)
    assert destination(pick(config, "mesh", "mockb", source=S1_B)) == sub("s1")
    assert destination(pick(config, "mesh", "mocka", source=OUTSIDER)) == sub("s2", A)
    assert destination(pick(config, "mesh", "mockb", source=OUTSIDER)) is None
    assert len(source_chains(config, "mesh")) == 5  # s1+app, s2+app, app, s1, s2


def test_source_labels_and_other_conditions_are_anded() -> None:
    http = [
        {"name": "api", "match": [{"sourceLabels": {"ASM_TRAFFIC_TAG": "s1"},
                                   "uri": {"prefix": "/api"},
                                   "headers": {"x-debug": {"exact": "1"}}}],
         "route": [{"destination": {"host": B, "subset": "s2"}}]},
        {"name": "rest", "route": [{"destination": {"host": B, "subset": "s1"}}]},
    ]
    config = translate(objects(http), pods())
    debug = {"x-debug": "1"}
    assert destination(pick(config, "mesh", "mockb", "/api/x", debug, S1_A)) == sub("s2")
    assert destination(pick(config, "mesh", "mockb", "/other", debug, S1_A)) == sub("s1")
    assert destination(pick(config, "mesh", "mockb", "/api/x", {}, S1_A)) == sub("s1")
    assert destination(pick(config, "mesh", "mockb", "/api/x", debug, S2_A)) == sub("s1")


def test_only_the_matches_of_other_callers_are_dropped_from_a_route() -> None:
    http = [{"name": "either", "match": [{"sourceLabels": {"ASM_TRAFFIC_TAG": "s1"}},
                                         {"headers": {"x-debug": {"exact": "1"}}}],
             "route": [{"destination": {"host": B, "subset": "s2"}}]}]
    config = translate(objects(http), pods())
    assert destination(pick(config, "mesh", "mockb", source=S1_A)) == sub("s2")
    assert destination(pick(config, "mesh", "mockb", source=S2_A)) is None
    assert destination(pick(config, "mesh", "mockb", headers={"x-debug": "1"}, source=S2_A)) == (
        sub("s2")
    )


def test_empty_source_labels_select_every_caller() -> None:
    http = [{"match": [{"sourceLabels": {}}], "route": [{"destination": {"host": B,
                                                                         "subset": "s1"}}]}]
    config = translate(objects(http), pods())
    assert source_chains(config, "mesh") == {}
    assert destination(pick(config, "mesh", "mockb", source=OUTSIDER)) == sub("s1")


def test_without_matching_pods_the_output_is_that_of_the_routes_without_source_labels() -> None:
    unmatched = [pod(OUTSIDER, "mocka", None), pod("127.0.1.8", "mocka", "dev")]
    with_source = translate(objects(), unmatched)
    header_only = translate(objects([r for r in strict(B) if r["name"].endswith("-header")]),
                            unmatched)
    assert with_source == header_only
    assert len(listener_of(with_source, "mesh")["filter_chains"]) == 1


def test_without_source_labels_the_mesh_listener_has_its_single_chain() -> None:
    config = translate(objects(strict(B)[3:]), pods())
    assert [r["name"] for r in config.routes] == ["gateway", "mesh"]
    assert [set(c) for c in listener_of(config, "mesh")["filter_chains"]] == [{"filters"}]


def test_gateway_routes_drop_non_empty_source_labels() -> None:
    http = [
        {"name": "gw-pods", "match": [{"sourceLabels": {"istio": "ingressgateway"}}],
         "route": [{"destination": {"host": B, "subset": "s2"}}]},
        {"name": "anyone", "match": [{"sourceLabels": {}, "uri": {"prefix": "/"}}],
         "route": [{"destination": {"host": B, "subset": "s1"}}]},
    ]
    entry = virtual_service("entry", ["*"], http, ["istio-system/ingressgateway"])
    config = translate([GATEWAY_OBJ, *objects(extra=(entry,))], pods())
    vhost = route_config(config, "gateway")["virtual_hosts"][0]
    assert [r["name"] for r in vhost["routes"]] == ["anyone"]
    assert destination(pick(config, "gateway", "shop")) == sub("s1")


def test_an_address_reported_twice_takes_the_selectors_of_both() -> None:
    twice = [pod(S1_A, "mocka", "s1"), pod(S1_A, "mocka", "s2", ready=False)]
    config = translate(objects(), twice)
    assert source_chains(config, "mesh") == {
        source_route_name([tag("s1"), tag("s2")]): [f"{S1_A}/32"]
    }


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"ASM_TRAFFIC_TAG": 1}, "sourceLabels.ASM_TRAFFIC_TAG: label value 1 is not a string"),
        (["ASM_TRAFFIC_TAG"], "sourceLabels: expected a map"),
        ({"": "x"}, "sourceLabels: label name '' is not a non-empty string"),
    ],
    ids=["value-not-a-string", "not-a-map", "empty-name"],
)
def test_invalid_source_labels_are_refused_naming_the_field(labels: object, field: str) -> None:
    http = [{"route": [{"destination": {"host": B, "subset": "s1"}}]},
            {"match": [{"uri": {"prefix": "/"}}, {"sourceLabels": labels}],
             "route": [{"destination": {"host": B, "subset": "s1"}}]}]
    with pytest.raises(MeshConfigError, match=re.escape(
        f"VirtualService default/mockb.spec.http[1].match[1].{field}"
    )):
        translate(objects(http), pods())


def test_update_writes_a_new_route_file_before_the_listener_reading_it(tmp_path: Path) -> None:
    """The order `EnvoyMesh.update` hands files to Envoy, with Envoy itself left out."""
    mesh = EnvoyMesh(tmp_path)
    writes: list[list[str]] = []

    def apply(files: dict, timeout: float) -> None:
        writes.append(list(files))
        mesh._applied.update(files)

    mesh._apply = apply  # type: ignore[method-assign]
    mesh._child = object()  # type: ignore[assignment]  # update only asks whether one runs
    s1 = rds_file(lane_of("s1"))
    mesh.update(objects(), [pod(OUTSIDER, "mocka", None)])
    assert writes[-1] == ["rds-gateway.json", "rds-mesh.json", "lds.json"]
    mesh.update(objects(), [pod(OUTSIDER, "mocka", None), pod(S1_A, "mocka", "s1")])
    assert writes[-2:] == [["cds.json"], [s1, "lds.json"]]
    mesh.update(objects(), [pod(OUTSIDER, "mocka", None)])
    assert writes[-1] == ["lds.json"]
    assert s1 not in mesh._applied
    mesh.update(objects(), [pod(OUTSIDER, "mocka", None), pod(S1_A, "mocka", "s1")])
    assert writes[-1] == [s1, "lds.json"], "a table read again is written again, to wait on"
