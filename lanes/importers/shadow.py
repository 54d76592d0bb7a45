"""A mirrored canary (Flagger's `mirror`, Argo's `setMirrorRoute`) as a lane release's shadow.

Flagger and Argo copy requests to one canary service, whose own calls then reach production.
lanes shadows a lane instead: the canary's WorkloadRollout becomes a member of a LaneRelease
whose `mirror` adds the shadow step before the canary's weights, so the copies' next hops stay
in the lane (and are answered 503 where it has no pod, unless `fallbackToBase`). The member
waits at one full-size step for the release's approval, its analysis moved to the release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .canary import Refusals, canary_spec, kept_metadata
from .common import as_mapping, lanes_document

LANE_KINDS = ("SwimLane", "ASMSwimLane")
FALLBACK_NOTE = ("copies' calls to services the lane has no pod of are answered 503 rather than "
                 "reach production; set the LaneRelease's spec.mirror.fallbackToBase: true to "
                 "let them, as {peer} does")


def lane_selecting(labels: Mapping[str, str], docs: Sequence[Mapping[str, Any]]) -> str | None:
    """The name of the lane (lanes' or ASM's) that selects by `labels`, among others, if given."""
    for doc in docs:
        if doc.get("kind") in LANE_KINDS:
            selector = as_mapping(as_mapping(doc.get("spec")).get("labelSelector"))
            if labels and all(selector.get(k) == v for k, v in labels.items()):
                return str(as_mapping(doc.get("metadata")).get("name", ""))
    return None


def shadowed_release(
    doc: Mapping[str, Any], rollout_spec: dict[str, Any], labels: dict[str, str],
    lane: str | None, steps: list[dict[str, Any]], matches: list[dict[str, Any]],
    analysis: dict[str, Any] | None, mirror: dict[str, Any], path: str, refusals: Refusals,
) -> list[dict[str, Any]]:
    """The member WorkloadRollout and its LaneRelease, or nothing once refused.

    `rollout_spec` is the WorkloadRollout's spec but its strategy; `steps` and `mirror` the
    LaneRelease's; `path` names the peer's mirror field in refusals.
    """
    if lane is None:
        refusals.add(path, "lanes shadows a lane, and no SwimLane in the input selects the "
                           f"canary's pod labels {labels}; give it with -f")
    hooks = [h for h in (analysis or {}).get("webhooks") or []
             if as_mapping(h).get("type") == "confirm-rollout"]
    if hooks:
        refusals.add(path, f"webhook {as_mapping(hooks[0]).get('name')!r} is confirm-rollout, "
                           "which a LaneRelease has no place for; use pre-rollout")
    if not steps:
        refusals.add(path, "lanes shadows before entry weights; give the canary's weights")
    refusals.check()
    return member_release(doc, rollout_spec, labels, lane, {"steps": steps, "mirror": mirror},
                          matches, analysis)


def member_release(
    doc: Mapping[str, Any], rollout_spec: dict[str, Any], labels: dict[str, str], lane: str | None,
    stepping: dict[str, Any], matches: list[dict[str, Any]], analysis: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """The member WorkloadRollout, waiting at one full-size step, and the LaneRelease that
    drives it by `stepping` (its steps and mirror, or its blueGreen)."""
    member = {**rollout_spec,
              "strategy": {"canary": canary_spec([{"replicas": "100%"}], labels, None)}}
    release: dict[str, Any] = {"swimLaneRef": {"name": lane},
                               "rollouts": [str(as_mapping(doc.get("metadata")).get("name"))],
                               **stepping}
    if analysis:
        release["analysis"] = analysis
    if matches:
        release["matches"] = matches
    metadata = kept_metadata(doc)
    return [lanes_document("WorkloadRollout", metadata, member),
            lanes_document("LaneRelease", dict(metadata), release)]
