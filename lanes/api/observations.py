"""What the cluster shows: which lanes have ready pods of each service, and observed calls."""

from __future__ import annotations

from pydantic import Field

from .common import Model


class Observations(Model):
    """Observed state the renderer and the graph take as input.

    `ready` maps a service key (`namespace/name`) to the lanes that have ready pods of it;
    `edges` are (source, destination) service keys, as istio_requests_total reports them.
    """

    ready: dict[str, list[str]] = Field(default_factory=dict)
    edges: list[tuple[str, str]] = Field(default_factory=list)

    def lanes_of(self, service: str) -> list[str]:
        """The lanes with ready pods of one service."""
        return self.ready.get(service, [])
