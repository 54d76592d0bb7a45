"""OpenKruise's `Rollout` (rollouts.kruise.io) as a lanes.dev WorkloadRollout.

lanes' WorkloadRollout is laid out as Kruise's Rollout, so a document keeps its spec and the
metadata a user writes; the models then check every field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .common import Body, Importer, renamed

KRUISE = "rollouts.kruise.io"
"""OpenKruise Rollouts' API group."""


def kruise_rollout(doc: Body, _inputs: Sequence[Mapping[str, Any]] = ()) -> list[Body]:
    """A Kruise Rollout as a WorkloadRollout."""
    return [renamed(doc, "WorkloadRollout")]


IMPORTERS = (Importer(KRUISE, "Rollout", kruise_rollout),)
