"""What the cluster shows: which lanes have ready pods of each service, observed calls, and the
traffic step each service's release is at."""

from __future__ import annotations

from pydantic import Field

from .common import DnsLabel, Model, RequestMatch
from .sessionaffinity import SessionAffinity


class TrafficStep(Model):
    """Where a service's release sends its *untagged* requests (those carrying no lane).

    `weight` percent of them go to `lane`'s subset, and every request satisfying one of
    `matches` does; the rest stay on the fallback lane. Requests that carry a lane keep it.

    `enter` makes the step a lane's entry (a LaneRelease): it applies at the gateway only,
    and the requests it sends to the lane are tagged with it, so they stay in the lane on
    every later hop; the entry service's own mesh routes are left unsplit. An entry with
    `sessionAffinity` is decided per user by the gateway's module (`lanes.render.sticky`).

    `mirror` (an entry step's) copies that percent of the untagged requests the gateway keeps
    out of the lane into the lane's pods of the entry service, answers discarded; the lane's
    pods' own untagged calls then stay in the lane, and where it has no pod of a service are
    answered 503, or reach the fallback's pods with `fallbackToBase`.
    """

    lane: DnsLabel
    weight: int = Field(default=0, ge=0, le=100)
    matches: list[RequestMatch] = Field(default_factory=list)
    enter: bool = False
    mirror: int = Field(default=0, ge=0, le=100)
    fallback_to_base: bool = False
    session_affinity: SessionAffinity | None = None


class Observations(Model):
    """Observed state the renderer and the graph take as input.

    `ready` maps a service key (`namespace/name`) to the lanes that have ready pods of it;
    `edges` are (source, destination) service keys, as istio_requests_total reports them;
    `traffic` maps a service key to the traffic step its release is at.
    """

    ready: dict[str, list[str]] = Field(default_factory=dict)
    edges: list[tuple[str, str]] = Field(default_factory=list)
    traffic: dict[str, TrafficStep] = Field(default_factory=dict)

    def lanes_of(self, service: str) -> list[str]:
        """The lanes with ready pods of one service."""
        return self.ready.get(service, [])
