"""A Deployment's selector as the query string that lists only its ReplicaSets."""

from __future__ import annotations

import pytest

from lanes.kube.rollouts import label_selector


@pytest.mark.parametrize("selector, query", [
    pytest.param({"matchLabels": {"app": "mocka", "tier": "web"}}, "app=mocka,tier=web", id="labels"),
    pytest.param({"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["a", "b"]},
        {"key": "lane", "operator": "NotIn", "values": ["x"]},
        {"key": "owner", "operator": "Exists"},
        {"key": "canary", "operator": "DoesNotExist"},
    ]}, "app in (a,b),lane notin (x),owner,!canary", id="expressions"),
    pytest.param({}, "", id="empty"),
])
def test_label_selector(selector: dict, query: str) -> None:
    assert label_selector(selector) == query
