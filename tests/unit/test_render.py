"""Edge cases of the renderer: offline rules, ports, names, labels, the interface, bad input."""

from __future__ import annotations

import copy
import re

import pytest

from lanes.api.errors import InvalidSpec
from lanes.api.observations import Observations
from lanes.api.swimlane import SwimLane
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.api.topology import resolve
from lanes.render import (
    Flavour,
    flavour_for,
    managed_selector,
    object_key,
    owner_selector,
    render_group,
    render_service,
    render_topology,
)
from lanes.render.baggage import member_regex
from lanes.render.names import shorten
from tests.istio_schema import problems

GROUP = {
    "metadata": {"name": "shop"},
    "spec": {
        "ingress": {"gateway": {"name": "gw", "namespace": "edge"}},
        "isPermissive": True,
        "permissiveModeConfiguration": {"fallbackTarget": "base", "routeHeader": "x-lane"},
        "services": [{"name": "front", "namespace": "web"}, {"name": "cart", "namespace": "web"}],
    },
}


def group(**spec) -> SwimLaneGroup:
    doc = copy.deepcopy(GROUP)
    doc["spec"].update(spec)
    return SwimLaneGroup.model_validate(doc)


def lane(
    name: str, rules: list[dict] | None = None, services: list[str] = (), of: str = "shop", **spec
) -> SwimLane:
    return SwimLane.model_validate(
        {
            "metadata": {"name": name, "labels": {"swimlane-group": of}},
            "spec": {
                "labelSelector": {"lane": name},
                "ingressRules": rules or [],
                "services": [{"name": s, "namespace": "web"} for s in services],
                **spec,
            },
        }
    )


def rule(name: str, online: bool = True, port: int | None = None, host: str = "front.web") -> dict:
    destination = {"host": host, **({"port": port} if port else {})}
    return {
        "name": name,
        "online": online,
        "match": {"headers": {"x-lane": {"exact": name}}},
        "route": {"destination": destination},
    }


def gateway_objects(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["spec"].get("gateways")]


def errors_of(exc: pytest.ExceptionInfo[InvalidSpec]) -> list[str]:
    return [str(e) for e in exc.value.errors]


# --- ingress rules -------------------------------------------------------------------------


def test_offline_rules_are_left_out() -> None:
    lanes = [lane("base", [rule("base")]), lane("canary", [rule("canary", online=False)])]
    [ingress] = gateway_objects(render_group(group(), lanes, flavour="istio"))
    assert [h["name"] for h in ingress["spec"]["http"]] == ["base", "untagged"]
    asm = gateway_objects(render_group(group(), lanes, flavour="asm"))
    assert [o["metadata"]["name"] for o in asm] == ["swimlane-ingress-vs-shop-base"]


def test_no_online_rule_means_no_gateway_object() -> None:
    lanes = [lane("base"), lane("canary", [rule("canary", online=False)])]
    for flavour in ("istio", "asm"):
        assert gateway_objects(render_group(group(), lanes, flavour=flavour)) == []


def test_rule_ports_reach_the_destination() -> None:
    lanes = [lane("base", [rule("base", port=8080)]), lane("canary", [rule("canary")])]
    [ingress] = gateway_objects(render_group(group(), lanes, flavour="istio"))
    destinations = [h["route"][0]["destination"] for h in ingress["spec"]["http"]]
    assert destinations == [
        {"host": "front.web.svc.cluster.local", "subset": "base"},
        {"host": "front.web.svc.cluster.local", "subset": "base", "port": {"number": 8080}},
        {"host": "front.web.svc.cluster.local", "subset": "base", "port": {"number": 8080}},
    ]
    [asm] = gateway_objects(render_group(group(), lanes[:1], flavour="asm"))
    route = asm["spec"]["http"][0]["route"][0]
    assert route["destination"]["port"] == route["fallback"]["target"]["port"] == {"number": 8080}


def test_gateway_routes_go_to_the_lane_only_where_it_serves_the_entry() -> None:
    lanes = [lane("base", [rule("base")]), lane("canary", [rule("canary")], services=["cart"])]
    [ingress] = gateway_objects(render_group(group(), lanes, flavour="istio"))
    canary = ingress["spec"]["http"][0]
    assert canary["route"][0]["destination"]["subset"] == "base"
    assert canary["route"][0]["headers"]["request"]["set"] == {"x-lane": "canary"}


def test_route_names_stay_unique_across_lanes() -> None:
    lanes = [lane("base", [rule("base"), rule("api")]), lane("canary", [rule("api")])]
    [ingress] = gateway_objects(render_group(group(), lanes, flavour="istio"))
    assert [h["name"] for h in ingress["spec"]["http"]] == ["canary/api", "base", "base/api", "untagged"]


def test_the_fallback_lanes_rules_come_last_so_they_shadow_no_lane() -> None:
    catch_all = {"name": "all", "route": {"destination": {"host": "front.web"}}}
    lanes = [lane("base", [catch_all]), lane("canary", [rule("canary")])]
    [ingress] = gateway_objects(render_group(group(), lanes, flavour="istio"))
    assert [h["name"] for h in ingress["spec"]["http"]] == ["canary", "base/all", "untagged"]


def test_gateway_hosts_are_the_union_of_rule_hosts() -> None:
    first = {**rule("base"), "hosts": ["a.example.com", "b.example.com"]}
    second = {**rule("canary"), "hosts": ["b.example.com", "c.example.com"]}
    [ingress] = gateway_objects(
        render_group(group(), [lane("base", [first]), lane("canary", [second])], flavour="istio")
    )
    assert ingress["spec"]["hosts"] == ["b.example.com", "c.example.com", "a.example.com"]
    assert ingress["metadata"]["namespace"] == "edge"
    assert ingress["spec"]["gateways"] == ["edge/gw"]


# --- weighted ------------------------------------------------------------------------------


def weighted_group() -> SwimLaneGroup:
    routing = {"ingressRoutingStrategy": "weighted"}
    return group(ingress={"gateway": {"name": "gw"}, "ingressRouting": routing})


def weight(value: int, host: str | None = "front.web") -> dict:
    return {"ingressWeight": {"destination": {"host": host} if host else {}, "weight": value}}


def test_weights_leave_the_remainder_to_the_fallback() -> None:
    lanes = [lane("base"), lane("canary", **weight(30)), lane("dark", **weight(0))]
    [ingress] = gateway_objects(render_group(weighted_group(), lanes, flavour="istio"))
    [http] = ingress["spec"]["http"]
    assert "match" not in http
    assert [(r["headers"]["request"]["set"]["x-lane"], r["weight"]) for r in http["route"]] == [
        ("base", 70),
        ("canary", 30),
    ]


def test_full_weight_on_one_lane_drops_the_fallback_share() -> None:
    lanes = [lane("base"), lane("canary", **weight(100), services=["front"])]
    [ingress] = gateway_objects(render_group(weighted_group(), lanes, flavour="istio"))
    [route] = ingress["spec"]["http"][0]["route"]
    assert route["destination"]["subset"] == "canary"
    assert route["weight"] == 100


def test_weighted_routing_without_an_entry_service_is_rejected() -> None:
    lanes = [lane("base"), lane("canary", **weight(10, host=None))]
    with pytest.raises(InvalidSpec) as exc:
        render_group(weighted_group(), lanes)
    assert errors_of(exc) == [
        "SwimLaneGroup/shop: spec.ingress.ingressRouting: weighted routing needs an entry "
        "service: set a lane's spec.ingressWeight.destination.host or an ingress rule's destination"
    ]


# --- mesh objects --------------------------------------------------------------------------


def test_observations_decide_membership_only_with_auto_update() -> None:
    observed = Observations(ready={"web/front": ["base", "canary"]})
    lanes = [lane("base"), lane("canary", services=["cart"])]
    for auto_update, expected in ((True, ["base", "canary"]), (False, ["base"])):
        objects = render_group(group(autoUpdate=auto_update), lanes, observed, "istio")
        front = ("DestinationRule", "web", "lanes-shop-front")
        [dr] = [o for o in objects if object_key(o)[1:] == front]
        assert [s["name"] for s in dr["spec"]["subsets"]] == expected


def test_baggage_regex_matches_the_lane_member_only() -> None:
    pattern = re.compile(member_regex("x-lane", "canary"))
    for header in [
        "x-lane=canary",
        "x-lane = canary",
        "a=1,x-lane=canary",
        "a=1, x-lane=canary;ttl=30, b=2",
        "x-lane=canary;p1;p2=v",
    ]:
        assert pattern.fullmatch(header), header
    for header in [
        "x-lane=canary-2",
        "x-lane=canary2, b=2",
        "xx-lane=canary",
        "my-x-lane=canary",
        "x-lane=base, other=canary",
        "x-lane=base;note=x-lane=canary",
        "",
    ]:
        assert not pattern.fullmatch(header), header


def test_baggage_regex_escapes_header_names() -> None:
    pattern = re.compile(member_regex("x.lane+1", "canary"))
    assert pattern.fullmatch("x.lane+1=canary")
    assert not pattern.fullmatch("xxlane11=canary")


# --- names and labels ----------------------------------------------------------------------


def test_long_names_are_shortened_deterministically_and_distinctly() -> None:
    long_group = "g" * 60
    doc = copy.deepcopy(GROUP)
    doc["metadata"]["name"] = long_group
    shop = SwimLaneGroup.model_validate(doc)
    lanes = [lane("base", of=long_group)]
    objects = render_group(shop, lanes, flavour="istio")
    names = [o["metadata"]["name"] for o in objects]
    assert all(len(n) <= 63 for n in names)
    assert len(set(names)) == 2  # front and cart; VS and DR share a name
    assert names == [o["metadata"]["name"] for o in render_group(shop, lanes, flavour="istio")]
    assert all(problems(o) == [] for o in objects)
    assert all(len(v) <= 63 for o in objects for v in o["metadata"]["labels"].values())


def test_shorten_keeps_short_names_and_hashes_long_ones() -> None:
    assert shorten("lanes-shop-front", 63) == "lanes-shop-front"
    a, b = shorten("x" * 70 + "a", 63), shorten("x" * 70 + "b", 63)
    assert len(a) == len(b) == 63
    assert a != b


def test_dotted_group_names_give_dns_label_names() -> None:
    doc = copy.deepcopy(GROUP)
    doc["metadata"]["name"] = "shop.v2"
    shop = SwimLaneGroup.model_validate(doc)
    objects = render_group(shop, [lane("base", of="shop.v2")], flavour="istio")
    assert {o["metadata"]["name"] for o in objects} == {"lanes-shop-v2-front", "lanes-shop-v2-cart"}
    assert objects[0]["metadata"]["labels"]["lanes.dev/group"] == "shop.v2"


@pytest.mark.parametrize("flavour", ["istio", "asm"])
def test_owner_selector_selects_every_generated_object(flavour: str) -> None:
    objects = render_group(group(), [lane("base", [rule("base")])], flavour=flavour)
    selector = owner_selector("shop", flavour)
    managed = managed_selector(flavour)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert managed.items() <= labels.items()
    assert owner_selector("other", flavour) != selector


def test_owner_labels_per_flavour() -> None:
    assert owner_selector("shop", "istio") == {
        "app.kubernetes.io/managed-by": "lanes",
        "lanes.dev/group": "shop",
    }
    assert owner_selector("shop", "asm") == {
        "asm-system": "true",
        "provider": "asm",
        "swimlane-group": "shop",
    }
    assert owner_selector("shop") == owner_selector("shop", "istio")


def test_objects_do_not_share_mutable_parts() -> None:
    lanes = [lane("base", [rule("base")]), lane("canary", services=["cart", "front"])]
    objects = render_group(group(), lanes)
    cart_vs = objects[1]
    assert cart_vs["metadata"]["name"] == "lanes-shop-cart"
    cart_vs["metadata"]["labels"]["extra"] = "x"
    cart_vs["spec"]["http"][0]["match"][0]["headers"]["x-lane"]["exact"] = "changed"
    assert objects[2:] == render_group(group(), lanes)[2:]


# --- interface -----------------------------------------------------------------------------


def test_object_key_identifies_objects_across_versions() -> None:
    objects = render_group(group(), [lane("base")], flavour="istio")
    keys = [object_key(o) for o in objects]
    assert keys[0] == ("networking.istio.io", "VirtualService", "web", "lanes-shop-cart")
    assert len(set(keys)) == len(keys)
    v1alpha3 = {**objects[0], "apiVersion": "networking.istio.io/v1alpha3"}
    assert object_key(v1alpha3) == keys[0]


def test_flavour_defaults_to_the_groups() -> None:
    lanes = [lane("base")]
    assert render_group(group(flavour="asm"), lanes) == render_group(group(), lanes, flavour="asm")
    assert render_group(group(), lanes)[0]["apiVersion"] == "networking.istio.io/v1"


def test_flavour_for_picks_by_name() -> None:
    assert isinstance(flavour_for("istio"), Flavour)
    assert flavour_for(None).name == "istio"
    assert flavour_for("asm").name == "asm"
    with pytest.raises(ValueError, match="unknown flavour 'linkerd'"):
        flavour_for("linkerd")


def test_unknown_flavour_names_the_group() -> None:
    with pytest.raises(InvalidSpec) as exc:
        render_group(group(), [lane("base")], flavour="linkerd")
    assert errors_of(exc) == [
        "SwimLaneGroup/shop: spec.flavour: unknown flavour 'linkerd' (known: asm, istio)"
    ]


def test_render_service_and_reobserve() -> None:
    topology = resolve(group(autoUpdate=True), [lane("base"), lane("canary")], Observations())
    vs, dr = render_service(topology, "web/front")
    assert [s["name"] for s in dr["spec"]["subsets"]] == ["base"]
    changed = topology.reobserve("web/front", ["canary", "base"])
    vs, dr = render_service(changed, "web/front")
    assert [s["name"] for s in dr["spec"]["subsets"]] == ["base", "canary"]
    assert [h["name"] for h in vs["spec"]["http"]] == ["canary", "base"]
    assert vs in render_topology(changed)


def test_render_service_of_an_unknown_service_is_rejected() -> None:
    topology = resolve(group(), [lane("base")])
    with pytest.raises(InvalidSpec) as exc:
        render_service(topology, "web/nope")
    assert errors_of(exc) == [
        "SwimLaneGroup/shop: spec.services: web/nope is not a service of this group"
    ]


# --- invalid input -------------------------------------------------------------------------


def test_invalid_groups_raise_with_object_and_field() -> None:
    with pytest.raises(InvalidSpec) as exc:
        render_group(group(), [lane("canary")])
    assert errors_of(exc) == [
        "SwimLaneGroup/shop: spec.permissiveModeConfiguration.fallbackTarget: lane 'base' is not "
        "a lane of this group (lanes: canary)"
    ]


def test_lane_names_must_be_subset_names() -> None:
    with pytest.raises(InvalidSpec) as exc:
        render_group(group(), [lane("base"), lane("Canary.v2")])
    assert errors_of(exc) == [
        "SwimLane/Canary.v2: metadata.name: a lane's name is its subset name and must be a DNS "
        "label (at most 63 characters: lower-case a-z, 0-9 and '-')"
    ]


def test_a_service_named_ingress_in_the_gateway_namespace_is_rejected() -> None:
    services = [{"name": "ingress", "namespace": "edge"}, {"name": "front", "namespace": "web"}]
    with pytest.raises(InvalidSpec) as exc:
        render_group(group(services=services), [lane("base", [rule("base")])], flavour="istio")
    [error] = errors_of(exc)
    assert error.startswith(
        "SwimLaneGroup/shop: spec.services[0]: service edge/ingress would share"
    )
    # ASM's names carry the namespace and cannot collide.
    assert render_group(group(services=services), [lane("base", [rule("base")])], flavour="asm")
