"""The importers' registry, and lanes' own kinds parsed without it (as the operator reads them)."""

from __future__ import annotations

import copy

import pytest

from lanes.api.errors import FieldError, InvalidSpec
from lanes.api.load import MODELS, parse_own, read_documents
from lanes.api.swimlanegroup import SwimLaneGroup
from lanes.importers import (
    conversion_notes,
    convert,
    convert_document,
    importer_for,
    parse_object,
    register,
    registered,
)
from lanes.importers.kruise import IMPORTERS as KRUISE_IMPORTERS
from tests.conftest import REFERENCE, ROOT

SAMPLE = ROOT / "samples" / "mock-chain"


def own_documents() -> list[dict]:
    return [doc.body for doc in read_documents(SAMPLE) if doc.body["apiVersion"].startswith("lanes.dev/")]


def asm_group() -> dict:
    return next(
        doc.body
        for doc in read_documents(REFERENCE / "asm-mock-chain-inputs.yaml")
        if doc.body["kind"] == "ASMSwimLaneGroup"
    )


def test_the_registry_reads_each_sources_kinds() -> None:
    assert registered() == [
        ("istio.alibabacloud.com", "ASMSwimLaneGroup"),
        ("istio.alibabacloud.com", "ASMSwimLane"),
        ("rollouts.kruise.io", "Rollout"),
        ("rollouts.kruise.io", "TrafficRouting"),
        ("flagger.app", "Canary"),
        ("flagger.app", "AlertProvider"),
        ("flagger.app", "MetricTemplate"),
        ("argoproj.io", "Rollout"),
        ("argoproj.io", "AnalysisTemplate"),
        ("argoproj.io", "ClusterAnalysisTemplate"),
        ("networking.istio.io", "VirtualService"),
        ("networking.istio.io", "DestinationRule"),
        ("apps", "Deployment"),
    ]


def test_a_kind_is_found_by_group_and_kind_not_by_kind_alone() -> None:
    kruise = {"apiVersion": "rollouts.kruise.io/v1beta1", "kind": "Rollout"}
    argo = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout"}
    other = {"apiVersion": "example.com/v1", "kind": "Rollout"}
    assert importer_for(kruise).key == ("rollouts.kruise.io", "Rollout")
    assert importer_for(argo).key == ("argoproj.io", "Rollout")
    assert importer_for(other) is None


def test_documents_of_no_registered_kind_pass_through_without_notes() -> None:
    for doc in own_documents():
        assert convert(doc) == [doc]
        assert convert_document(doc) is doc
        assert conversion_notes(doc) == []


def test_a_kind_is_read_by_one_importer_only() -> None:
    with pytest.raises(ValueError, match="rollouts.kruise.io/Rollout already has an importer"):
        register(*KRUISE_IMPORTERS)


def test_parse_own_reads_every_own_kind_as_the_importers_do() -> None:
    documents = own_documents()
    assert {doc["kind"] for doc in documents} >= {"SwimLaneGroup", "SwimLane"}
    for doc in documents:
        model = parse_own(doc)
        assert isinstance(model, MODELS[doc["kind"]])
        assert model == parse_object(doc)


def test_parse_own_refuses_a_foreign_kind_instead_of_converting_it() -> None:
    group = asm_group()
    assert isinstance(parse_object(group), SwimLaneGroup)
    with pytest.raises(InvalidSpec) as raised:
        parse_own(group, "cluster")
    name = group["metadata"]["name"]
    assert raised.value.errors == [
        FieldError("ASMSwimLaneGroup", name, "kind", "not a lanes.dev kind", "cluster")
    ]


def test_parse_own_names_the_object_and_field_of_a_bad_own_document() -> None:
    group = copy.deepcopy(next(d for d in own_documents() if d["kind"] == "SwimLaneGroup"))
    group["spec"]["fallbackTraget"] = "base"
    with pytest.raises(InvalidSpec) as own:
        parse_own(group, "in.yaml")
    with pytest.raises(InvalidSpec) as converted:
        parse_object(group, "in.yaml")
    assert own.value.errors == converted.value.errors
    [error] = own.value.errors
    assert (error.kind, error.name, error.path, error.source) == (
        "SwimLaneGroup", group["metadata"]["name"], "spec.fallbackTraget", "in.yaml"
    )


def test_parse_own_refuses_a_foreign_kind_of_an_own_kinds_name() -> None:
    template = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "latency"},
        "spec": {"query": "up"},
    }
    with pytest.raises(InvalidSpec) as raised:
        parse_own(template)
    [error] = raised.value.errors
    assert (error.kind, error.name, error.path) == ("MetricTemplate", "latency", "apiVersion")
