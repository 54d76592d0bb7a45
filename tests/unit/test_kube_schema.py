"""Pruning as kube-apiserver does it, checked on Istio 1.30's own CRD schemas."""

from __future__ import annotations

import pytest
import yaml

from lanes.api.observations import Observations
from lanes.importers import load
from lanes.kube.kinds import kind_of
from lanes.kube.schema import prune, version_schema
from lanes.render import render_group
from tests.conftest import ISTIO_NETWORKING_CRDS, REFERENCE

CRDS = {
    doc["spec"]["names"]["kind"]: doc
    for doc in yaml.safe_load_all(ISTIO_NETWORKING_CRDS.read_text())
    if doc
}
STORY = load(REFERENCE / "asm-mock-chain-inputs.yaml")
STATE_1 = Observations(ready={"default/mocka": ["base", "canary"], "default/mockb": ["base"], "default/mockc": ["base"]})


def schema_for(obj: dict) -> dict:
    kind = kind_of(obj)
    return version_schema(CRDS[obj["kind"]], kind.version)


SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "known": {"type": "string"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "ios": {"x-kubernetes-int-or-string": True},
            },
        }
    },
}


@pytest.mark.parametrize(
    ("spec", "kept", "dropped"),
    [
        pytest.param({"known": "x"}, {"known": "x"}, [], id="declared"),
        pytest.param({"unknown": 1}, {}, ["spec.unknown"], id="undeclared"),
        pytest.param({"list": [{"a": "1", "b": "2"}]}, {"list": [{"a": "1"}]}, ["spec.list[0].b"], id="in-list"),
        pytest.param({"map": {"any": "v"}}, {"map": {"any": "v"}}, [], id="additional-properties"),
        pytest.param({"free": {"x": {"y": 1}}}, {"free": {"x": {"y": 1}}}, [], id="preserve-unknown"),
        pytest.param({"ios": 80}, {"ios": 80}, [], id="int-or-string"),
    ],
)
def test_prune(spec, kept, dropped) -> None:
    result = prune({"apiVersion": "v", "kind": "K", "metadata": {"name": "n"}, "spec": spec}, SCHEMA)
    assert result.value["spec"] == kept
    assert result.dropped == dropped
    assert result.value["metadata"] == {"name": "n"}


def test_no_schema_keeps_everything() -> None:
    obj = {"spec": {"anything": 1}}
    assert prune(obj, None).value == obj


def test_undeclared_top_level_field_is_dropped() -> None:
    assert prune({"kind": "K", "extra": 1}, SCHEMA).dropped == ["extra"]


def test_version_schema_picks_the_served_version() -> None:
    vs = CRDS["VirtualService"]
    assert version_schema(vs, "v1alpha3") is not None
    assert version_schema(vs, "v9") is None


def test_istio_flavour_output_survives_istio_crds_unchanged() -> None:
    objects = render_group(STORY.groups[0], STORY.lanes, STATE_1, flavour="istio")
    for obj in objects:
        result = prune(obj, schema_for(obj))
        assert result.dropped == [], obj["metadata"]["name"]
        assert result.value == obj


def test_asm_fallback_is_not_in_istio_crds() -> None:
    objects = render_group(STORY.groups[0], STORY.lanes, STATE_1, flavour="asm")
    dropped = {
        obj["metadata"]["name"]: prune(obj, schema_for(obj)).dropped for obj in objects
    }
    assert dropped["trafficlabel-vs-rollout-default-mocka"] == ["spec.http[0].route[0].fallback"]
    assert dropped["trafficlabel-dr-rollout-default-mocka"] == []
    assert all(
        path.endswith(".fallback") for paths in dropped.values() for path in paths
    )
