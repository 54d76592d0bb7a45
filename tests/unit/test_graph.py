"""The call graph: edges from calls and observations, findings, and a request's path."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanes.api.common import StringMatch
from lanes.api.load import Document
from lanes.api.observations import Observations
from lanes.api.topology import Topology, resolve
from lanes.graph import build_graph, check_graph, explain, match_string
from lanes.importers import parse_documents

SERVICES = [
    {"name": "front", "namespace": "web", "calls": ["cart", "pay/billing"]},
    {"name": "cart", "namespace": "web", "calls": ["stock.web.svc.cluster.local"]},
    {"name": "stock", "namespace": "web"},
    {"name": "billing", "namespace": "pay"},
]


def group(services: list[dict] | None = None, **spec) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "SwimLaneGroup",
        "metadata": {"name": "shop"},
        "spec": {
            "ingress": {"gateway": {"name": "gw"}},
            "isPermissive": True,
            "autoUpdate": True,
            "permissiveModeConfiguration": {"fallbackTarget": "base", "routeHeader": "x-lane"},
            "services": services if services is not None else SERVICES,
            **spec,
        },
    }


def rule(name: str, headers: dict | None = None, uri: dict | None = None, **extra) -> dict:
    match: dict = {"headers": headers or {}}
    if uri is not None:
        match["uri"] = uri
    return {
        "name": name,
        "match": match,
        "route": {"destination": {"host": "front.web.svc.cluster.local"}},
        **extra,
    }


def lane(name: str, rules: list[dict] | None = None, **spec) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "SwimLane",
        "metadata": {"name": name, "labels": {"swimlane-group": "shop"}},
        "spec": {"labelSelector": {"lane": name}, "ingressRules": rules or [], **spec},
    }


def lane_rule(name: str) -> dict:
    return rule(name, headers={"x-lane": {"exact": name}})


def topology(
    docs: list[dict] | None = None, ready: dict[str, list[str]] | None = None
) -> Topology:
    docs = docs or [
        group(),
        lane("base", [lane_rule("base")]),
        lane("canary", [lane_rule("canary")]),
    ]
    bundle = parse_documents([Document(f"t#{i}", d) for i, d in enumerate(docs)])
    observed = Observations(ready=ready) if ready is not None else None
    return resolve(bundle.groups[0], bundle.lanes, observed)


def chain(trace, route: int = 0) -> list[tuple[str, str | None, bool]]:
    return [(h.service, h.subset, h.fallback) for h in trace.routes[route].hops]


def test_declared_calls_accept_name_ns_name_and_fqdn() -> None:
    graph = build_graph(topology())
    assert sorted(graph.edges) == [
        ("web/cart", "web/stock"),
        ("web/front", "pay/billing"),
        ("web/front", "web/cart"),
    ]
    assert all(graph.edges[e]["source"] == "declared" for e in graph.edges)
    assert graph.graph["entry"] == "web/front"


def test_observed_edges_are_marked_and_declared_ones_keep_their_source() -> None:
    observed = Observations(edges=[("web/front", "web/cart"), ("web/stock", "web/db")])
    graph = build_graph(topology(), observed)
    assert graph.edges["web/front", "web/cart"] == {"source": "declared", "observed": True}
    assert graph.edges["web/stock", "web/db"] == {"source": "observed", "observed": True}
    assert graph.edges["web/cart", "web/stock"]["observed"] is False
    assert graph.nodes["web/db"] == {"in_group": False, "lanes": ()}


def test_nodes_carry_the_lanes_serving_them() -> None:
    graph = build_graph(topology(ready={"web/cart": ["base", "canary"]}))
    assert graph.nodes["web/cart"]["lanes"] == ("base", "canary")
    assert graph.nodes["web/front"]["lanes"] == ("base",)


def test_a_complete_graph_has_no_findings() -> None:
    topo = topology()
    assert check_graph(topo, build_graph(topo)) == []


FINDINGS = {
    "call-out-of-the-group": (
        [{**SERVICES[0], "calls": ["cart", "pay/billing", "ads"]}, *SERVICES[1:]],
        [],
        [("leaves-group", "web/front", "calls web/ads (declared), which is not in group 'shop'")],
    ),
    "observed-call-out-of-the-group": (
        SERVICES,
        [("pay/billing", "pay/bank")],
        [("leaves-group", "pay/billing", "calls pay/bank (observed)")],
    ),
    "service-nobody-calls": (
        [*SERVICES, {"name": "mail", "namespace": "web"}],
        [],
        [("unreachable", "web/mail", "no declared or observed call from the entry")],
    ),
    "observed-call-makes-it-reachable": (
        [*SERVICES, {"name": "mail", "namespace": "web"}],
        [("web/cart", "web/mail")],
        [],
    ),
    "no-calls-at-all": (
        [{"name": s["name"], "namespace": s["namespace"]} for s in SERVICES],
        [],
        [
            ("unreachable", "pay/billing", ""),
            ("unreachable", "web/cart", ""),
            ("unreachable", "web/stock", ""),
        ],
    ),
}


@pytest.mark.parametrize("services,edges,expected", FINDINGS.values(), ids=FINDINGS.keys())
def test_findings(services: list[dict], edges: list, expected: list[tuple[str, str, str]]) -> None:
    topo = topology([group(services), lane("base", [lane_rule("base")])])
    findings = check_graph(topo, build_graph(topo, Observations(edges=edges)))
    assert [(f.code, f.service) for f in findings] == [(c, s) for c, s, _ in expected]
    for finding, (_, _, text) in zip(findings, expected):
        assert text in finding.message


def test_a_group_without_ingress_has_no_entry() -> None:
    topo = topology([group(), lane("base")])
    codes = [f.code for f in check_graph(topo, build_graph(topo))]
    assert codes[0] == "no-entry"
    assert codes.count("unreachable") == 4


def test_an_entry_outside_the_group_is_reported() -> None:
    topo = topology()
    outside = Topology(topo.group, topo.lanes, topo.members, entry="web/edge")
    graph = build_graph(outside)
    graph.add_edge("web/edge", "web/front", source="observed", observed=True)
    findings = check_graph(outside, graph)
    assert [(f.code, f.service) for f in findings] == [("entry-outside-group", "web/edge")]
    trace = explain(outside, graph, {"x-lane": "canary"}, "/")
    assert chain(trace)[0] == ("web/edge", None, False)
    second = trace.routes[0].hops[1]
    assert second.via == "web/edge"
    assert second.note == (
        "lane canary has no web/front; falls back to base; reached through web/edge, outside "
        "the group: the lane holds only if it forwards x-lane"
    )


STRINGS = {
    "exact-hit": ({"exact": "/mock"}, "/mock", True),
    "exact-miss": ({"exact": "/mock"}, "/mock/x", False),
    "prefix-hit": ({"prefix": "/api"}, "/api/v1", True),
    "prefix-miss": ({"prefix": "/api"}, "/ap", False),
    "regex-whole-value": ({"regex": "/v[0-9]+"}, "/v12", True),
    "regex-partial-is-no-match": ({"regex": "/v[0-9]+"}, "/v12/x", False),
    "absent-value": ({"exact": ""}, None, False),
    "values-are-case-sensitive": ({"exact": "Canary"}, "canary", False),
}


@pytest.mark.parametrize("match,value,expected", STRINGS.values(), ids=STRINGS.keys())
def test_match_string(match: dict, value: str | None, expected: bool) -> None:
    assert match_string(StringMatch(**match), value) is expected


def test_canary_request_falls_back_where_the_lane_has_no_pods() -> None:
    topo = topology(ready={"web/front": ["canary"], "web/stock": ["canary"]})
    trace = explain(topo, build_graph(topo), {"X-Lane": "canary"}, "/")
    assert trace.routes[0].lane == "canary"
    assert trace.routes[0].rule == "canary"
    assert chain(trace) == [
        ("web/front", "canary", False),
        ("pay/billing", "base", True),
        ("web/cart", "base", True),
        ("web/stock", "canary", False),
    ]
    assert trace.routes[0].hops[1].note == "lane canary has no pay/billing; falls back to base"


def test_hops_record_caller_and_depth_in_call_order() -> None:
    topo = topology()
    trace = explain(topo, build_graph(topo), {"x-lane": "base"}, "/")
    hops = trace.routes[0].hops
    assert [(h.service, h.caller, h.depth) for h in hops] == [
        ("web/front", None, 0),
        ("pay/billing", "web/front", 1),
        ("web/cart", "web/front", 1),
        ("web/stock", "web/cart", 2),
    ]


def test_a_call_cycle_visits_each_service_once() -> None:
    services = [{**s, "calls": [*s.get("calls", []), "web/front"]} for s in SERVICES]
    topo = topology([group(services), lane("base", [lane_rule("base")])])
    trace = explain(topo, build_graph(topo), {"x-lane": "base"}, "/")
    assert len(trace.routes[0].hops) == 4


def test_a_hop_outside_the_group_has_no_subset() -> None:
    topo = topology()
    graph = build_graph(topo, Observations(edges=[("web/stock", "web/db")]))
    trace = explain(topo, graph, {"x-lane": "canary"}, "/")
    last = trace.routes[0].hops[-1]
    assert (last.service, last.subset, last.in_group) == ("web/db", None, False)
    assert "no lane routing" in last.note


GATEWAY = {
    "header-names-are-case-insensitive": ({"X-LANE": "canary"}, "/", "canary"),
    "fallback-lane-rules-come-first": ({"x-lane": "base"}, "/", "base"),
    "unknown-lane-value-has-no-route": ({"x-lane": "blue"}, "/", None),
    "no-header-has-no-route": ({}, "/", None),
}


@pytest.mark.parametrize("headers,path,lane_name", GATEWAY.values(), ids=GATEWAY.keys())
def test_rule_based_gateway(headers: dict, path: str, lane_name: str | None) -> None:
    topo = topology()
    trace = explain(topo, build_graph(topo), headers, path)
    assert trace.routed is (lane_name is not None)
    if lane_name is None:
        assert trace.notes[0].startswith("no route at the gateway")
    else:
        assert trace.routes[0].lane == lane_name


def test_other_lanes_rules_are_tried_before_the_fallback_lanes() -> None:
    docs = [
        group(),
        lane("base", [rule("all-api", uri={"prefix": "/api"})]),
        lane(
            "canary",
            [
                rule("v2", uri={"regex": "/api/v2/.*"}, online=True),
                rule("off", headers={"x-lane": {"exact": "canary"}}, online=False),
            ],
        ),
    ]
    topo = topology(docs)
    graph = build_graph(topo)
    assert explain(topo, graph, {}, "/api/v2/x").routes[0].lane == "canary"
    assert explain(topo, graph, {}, "/api/v1/x").routes[0].lane == "base"
    offline = explain(topo, graph, {"x-lane": "canary"}, "/other")
    assert not offline.routed
    only_canary = topology([docs[0], lane("base"), docs[2]])
    routed = explain(only_canary, build_graph(only_canary), {"x-lane": "base"}, "/api/v2/x")
    assert (routed.routes[0].lane, routed.routes[0].rule) == ("canary", "v2")
    assert routed.notes == ("the gateway sets x-lane: canary in place of base",)


def weighted(base: int, canary: int, matches: list[dict] | None = None) -> Topology:
    routing = {"ingressRoutingStrategy": "weighted"}
    if matches is not None:
        routing["weightedRoutingRule"] = {"requestMatches": matches}
    spec_group = group(ingress={"gateway": {"name": "gw"}, "ingressRouting": routing})

    def weight(w: int) -> dict:
        return {"destination": {"host": "front.web"}, "weight": w}

    return topology(
        [
            spec_group,
            lane("base", ingressWeight=weight(base)),
            lane("canary", ingressWeight=weight(canary)),
        ]
    )


def test_weighted_routing_reports_each_lane_with_its_weight() -> None:
    topo = weighted(80, 20)
    trace = explain(topo, build_graph(topo), {}, "/")
    assert [(r.lane, r.weight) for r in trace.routes] == [("base", 80), ("canary", 20)]
    assert chain(trace, 1)[1] == ("pay/billing", "base", True)
    assert trace.notes == ()


def test_weighted_routing_ignores_the_route_header_for_the_choice() -> None:
    topo = weighted(100, 0)
    trace = explain(topo, build_graph(topo), {"x-lane": "canary"}, "/")
    assert [r.lane for r in trace.routes] == ["base"]
    assert "does not choose the lane" in trace.notes[0]


def test_weighted_routing_notes_weights_short_of_100() -> None:
    topo = weighted(50, 20)
    notes = explain(topo, build_graph(topo), {}, "/").notes
    assert notes == (
        "lane weights add up to 70%, not 100%: the fallback lane base takes the rest (80%)",
    )


def test_weighted_routing_rule_filters_requests() -> None:
    topo = weighted(50, 50, matches=[{"uri": {"prefix": "/shop"}}])
    graph = build_graph(topo)
    assert explain(topo, graph, {}, "/shop/cart").routed
    missed = explain(topo, graph, {}, "/admin")
    assert not missed.routed
    assert "weighted routing rule does not match" in missed.notes[0]


def test_weighted_routing_without_weights_sends_everything_to_the_fallback() -> None:
    topo = weighted(0, 0)
    trace = explain(topo, build_graph(topo), {}, "/")
    assert [(r.lane, r.weight) for r in trace.routes] == [("base", 100)]


lane_sets = st.lists(st.sampled_from(["base", "canary"]), unique=True)
readiness = st.fixed_dictionaries(
    {key: lane_sets for key in ("web/front", "web/cart", "web/stock", "pay/billing")}
)


@given(ready=readiness, lane_name=st.sampled_from(["base", "canary"]))
def test_every_hop_is_served_by_its_lane_or_the_fallback(
    ready: dict[str, list[str]], lane_name: str
) -> None:
    topo = topology(ready=ready)
    graph = build_graph(topo)
    trace = explain(topo, graph, {"x-lane": lane_name}, "/")
    hops = trace.routes[0].hops
    reachable = nx.descendants(graph, "web/front") | {"web/front"}
    assert sorted(h.service for h in hops) == sorted(reachable)
    for hop in hops:
        own = lane_name in ready[hop.service] or lane_name == "base"
        assert hop.subset == (lane_name if own else "base")
        assert hop.fallback is not own
    assert explain(topo, build_graph(topo), {"x-lane": lane_name}, "/") == trace


def test_hops_behind_a_service_outside_the_group_name_it() -> None:
    services = [{"name": "front", "namespace": "web", "calls": ["proxy"]}, *SERVICES[1:]]
    topo = topology([group(services), lane("base", [lane_rule("base")])])
    graph = build_graph(topo, Observations(edges=[("web/proxy", "web/cart")]))
    hops = explain(topo, graph, {"x-lane": "base"}, "/").routes[0].hops
    assert [(h.service, h.via) for h in hops] == [
        ("web/front", None),
        ("web/proxy", None),
        ("web/cart", "web/proxy"),
        ("web/stock", "web/proxy"),
    ]
    assert hops[2].note.endswith("the lane holds only if it forwards x-lane")
