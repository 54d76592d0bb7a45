"""Ownership read both ways: a group's owner labels, and the group read back off an object."""

from __future__ import annotations

import pytest

from lanes.kube.ownership import is_generated, lane_group_of, marks_of, owner_marks, owners
from lanes.render import FLAVOURS


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_an_objects_owner_labels_lead_back_to_its_group(flavour: str) -> None:
    selectors = {f.name: dict(selector) for f, (_, selector) in zip(FLAVOURS.values(), owners("g1"), strict=True)}
    labels = selectors[flavour]
    assert is_generated(labels)
    found = dict((mark[0], (mark, values)) for mark, values in marks_of(labels))
    mark, values = found[flavour]
    assert mark in owner_marks("g1") and values == ["g1"]


def test_objects_of_no_flavour_are_not_generated() -> None:
    assert not is_generated({"lanes.dev/group": "g1"}) and marks_of({"lanes.dev/group": "g1"}) == []


def test_a_lane_joins_the_group_its_label_names() -> None:
    assert lane_group_of({"metadata": {"labels": {"swimlane-group": "g1"}}}) == "g1"
    assert lane_group_of({"metadata": {}}) is None
