"""Parsing and validation: every error names the object and the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lanes.api.errors import InvalidSpec
from lanes.api.load import Document, read_documents
from lanes.api.topology import resolve
from lanes.importers import load, parse_documents

GROUP = {
    "apiVersion": "lanes.dev/v1alpha1",
    "kind": "SwimLaneGroup",
    "metadata": {"name": "shop"},
    "spec": {
        "ingress": {"gateway": {"name": "gw", "namespace": "istio-system"}},
        "isPermissive": True,
        "permissiveModeConfiguration": {"fallbackTarget": "base", "routeHeader": "x-lane"},
        "services": [{"name": "front", "namespace": "web"}, {"name": "cart", "namespace": "web"}],
    },
}


def lane(name: str, selector: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "lanes.dev/v1alpha1",
        "kind": "SwimLane",
        "metadata": {"name": name, "labels": {"swimlane-group": "shop"}},
        "spec": {"labelSelector": selector if selector is not None else {"lane": name}, **spec},
    }


RULE = {
    "name": "r",
    "match": {"headers": {"x-lane": {"exact": "canary"}}},
    "route": {"destination": {"host": "front.web.svc.cluster.local"}},
}


def check(docs: list[dict]) -> list[str]:
    """Parse and resolve; return the error lines."""
    try:
        bundle = parse_documents([Document(f"in.yaml#{i}", d) for i, d in enumerate(docs)])
        for group in bundle.groups:
            resolve(group, bundle.lanes)
    except InvalidSpec as exc:
        return [str(e) for e in exc.errors]
    return []


def with_group(**changes) -> dict:
    group = copy.deepcopy(GROUP)
    for dotted, value in changes.items():
        node = group["spec"]
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return group


def test_a_valid_group_has_no_errors() -> None:
    assert check([GROUP, lane("base"), lane("canary", ingressRules=[RULE])]) == []


BAD = {
    "fallback-not-a-lane": (
        [with_group(permissiveModeConfiguration={"fallbackTarget": "stable"}), lane("base")],
        "SwimLaneGroup/shop: spec.permissiveModeConfiguration.fallbackTarget: lane 'stable'",
    ),
    "empty-selector": (
        [GROUP, lane("base"), lane("canary", selector={})],
        "SwimLane/canary: spec.labelSelector:",
    ),
    "same-selector": (
        [GROUP, lane("base"), lane("canary", selector={"lane": "base"})],
        "SwimLane/canary: spec.labelSelector: selects the same pods as lane 'base'",
    ),
    "weight-over-100": (
        [GROUP, lane("base", ingressWeight={"weight": 101})],
        "SwimLane/base: spec.ingressWeight.weight: Input should be less than or equal to 100",
    ),
    "weights-sum-over-100": (
        [
            with_group(ingress__ingressRouting={"ingressRoutingStrategy": "weighted"}),
            lane("base", ingressWeight={"weight": 60}),
            lane("canary", ingressWeight={"weight": 50}),
        ],
        "SwimLaneGroup/shop: spec.ingress.ingressRouting: lane weights add up to 110",
    ),
    "bad-header-name": (
        [with_group(permissiveModeConfiguration={"fallbackTarget": "base", "routeHeader": "X Lane"}), lane("base")],
        "SwimLaneGroup/shop: spec.permissiveModeConfiguration.routeHeader: 'X Lane' is not a valid HTTP header name",
    ),
    "rule-host-outside-group": (
        [GROUP, lane("base"), lane("canary", ingressRules=[{**RULE, "route": {"destination": {"host": "pay.web"}}}])],
        "SwimLane/canary: spec.ingressRules[0].route.destination.host: pay.web is not a service of group 'shop'",
    ),
    "duplicate-service": (
        [with_group(services=[{"name": "front", "namespace": "web"}, {"name": "front", "namespace": "web"}]), lane("base")],
        "SwimLaneGroup/shop: spec.services[0]: service web/front is listed 2 times",
    ),
    "unknown-field": (
        [with_group(permissiveModeConfiguration={"fallbackTraget": "base"}), lane("base")],
        "SwimLaneGroup/shop: spec.permissiveModeConfiguration.fallbackTraget: unknown field",
    ),
    "lane-service-outside-group": (
        [GROUP, lane("base", services=[{"name": "pay", "namespace": "web"}])],
        "SwimLane/base: spec.services[0]: web/pay is not a service of group 'shop'",
    ),
    "strict-mode-lane-missing-services": (
        [with_group(isPermissive=False), lane("base", services=[{"name": "front", "namespace": "web"}])],
        "SwimLane/base: spec.services: in strict mode (isPermissive: false) a lane must list every group service; missing web/cart",
    ),
    "string-match-two-kinds": (
        [GROUP, lane("base", ingressRules=[{**RULE, "match": {"uri": {"exact": "/", "prefix": "/"}}}])],
        "SwimLane/base: spec.ingressRules[0].match.uri: a string match needs exactly one of",
    ),
    "bad-flavour": (
        [with_group(flavour="linkerd"), lane("base")],
        "SwimLaneGroup/shop: spec.flavour: Input should be 'istio' or 'asm'",
    ),
    "service-name-not-dns": (
        [with_group(services=[{"name": "Front_1", "namespace": "web"}]), lane("base")],
        "SwimLaneGroup/shop: spec.services[0].name: 'Front_1' is not a valid DNS label",
    ),
}


@pytest.mark.parametrize("docs,expected", BAD.values(), ids=BAD.keys())
def test_bad_input_names_object_and_field(docs: list[dict], expected: str) -> None:
    errors = check(docs)
    assert any(expected in e for e in errors), errors


def test_errors_carry_the_source_document() -> None:
    errors = check([with_group(flavour="linkerd")])
    assert errors[0].startswith("in.yaml#0: SwimLaneGroup/shop: spec.flavour")


def test_reference_asm_inputs_load_as_lanes_kinds(reference: Path) -> None:
    bundle = load(reference / "asm-mock-chain-inputs.yaml")
    assert [g.name for g in bundle.groups] == ["rollout"]
    assert sorted(lane.name for lane in bundle.lanes) == ["base", "canary"]
    assert [r.metadata.name for r in bundle.rollouts] == [
        "rollouts-mocka",
        "rollouts-mockb",
        "rollouts-mockc",
    ]
    kinds = sorted(d["kind"] for d in bundle.others)
    assert kinds == ["Deployment"] * 3 + ["Gateway"] + ["Service"] * 3


def test_resolve_decides_membership_from_declared_services(reference: Path) -> None:
    bundle = load(reference / "asm-mock-chain-inputs.yaml")
    topology = resolve(bundle.groups[0], bundle.lanes)
    assert [lane.name for lane in topology.lanes] == ["base", "canary"]
    assert topology.entry == "default/mocka"
    assert topology.members == {
        "default/mocka": ("base",),
        "default/mockb": ("base",),
        "default/mockc": ("base",),
    }
    assert topology.serving("default/mockb", "canary") == "base"


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(InvalidSpec) as caught:
        read_documents(bad)
    assert str(bad) in str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="no such file"):
        read_documents(tmp_path / "nope.yaml")


def test_a_directory_reads_every_yaml_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(lane("base")))
    (tmp_path / "a.yml").write_text(yaml.safe_dump(GROUP))
    (tmp_path / "notes.txt").write_text("ignored")
    docs = read_documents(tmp_path)
    assert [d.body["kind"] for d in docs] == ["SwimLaneGroup", "SwimLane"]
