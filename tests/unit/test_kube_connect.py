"""Write counting and resource names, the ground truth of "zero idle writes"."""

from __future__ import annotations

import pytest
from kubernetes import client

from lanes.kube.connect import MeteredApiClient, resource_of
from lanes.kube.kinds import DESTINATIONRULE, SWIMLANEGROUP, VIRTUALSERVICE, kind_of
from lanes.kube.objects import label_selector


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        pytest.param("https://h/api/v1/namespaces/default/pods/p/status", "pods/status", id="pod-status"),
        pytest.param("https://h/api/v1/namespaces/default/events", "events", id="events"),
        pytest.param("https://h/api/v1/namespaces/x", "namespaces", id="namespace"),
        pytest.param(
            "https://h/apis/networking.istio.io/v1/namespaces/d/virtualservices/vs?fieldManager=lanes",
            "virtualservices", id="namespaced-custom",
        ),
        pytest.param("https://h/apis/lanes.dev/v1alpha1/swimlanegroups/g/status", "swimlanegroups/status", id="cluster-status"),
        pytest.param("https://h/apis/lanes.dev/v1alpha1/swimlanes", "swimlanes", id="collection"),
        pytest.param("https://h/", "", id="root"),
    ],
)
def test_resource_of(url: str, resource: str) -> None:
    assert resource_of(url) == resource


def test_writes_are_counted_even_when_they_fail() -> None:
    configuration = client.Configuration(host="http://127.0.0.1:9")
    configuration.retries = 0
    seen = []
    api = MeteredApiClient(configuration, on_write=lambda m, r: seen.append((m, r)))
    for method in ("PATCH", "GET"):
        with pytest.raises(Exception):
            api.call_api(method, "http://127.0.0.1:9/apis/lanes.dev/v1alpha1/swimlanes/x", _request_timeout=1)
    assert seen == [("PATCH", "swimlanes")]
    assert api.write_count == 1


def test_kind_of_uses_the_objects_version() -> None:
    assert kind_of({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService"}) == VIRTUALSERVICE.at("v1alpha3")
    assert kind_of({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule"}) == DESTINATIONRULE
    assert SWIMLANEGROUP.crd_name == "swimlanegroups.lanes.dev"
    with pytest.raises(KeyError):
        kind_of({"apiVersion": "other.io/v1", "kind": "VirtualService"})


def test_label_selector_is_sorted() -> None:
    assert label_selector({"b": "2", "a": "1"}) == "a=1,b=2"
