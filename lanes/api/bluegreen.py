"""Blue-green lanes: a LaneRelease that previews the whole new chain, then switches at once.

The lane holds the new version of every service (the members' canaries, at the size their own
last step gives them: `replicas: 100%` for the full size), previewed through the lane header
(and judged by the release's analysis on that preview traffic) while no untagged request enters
it. The switch puts every untagged request into the lane in one move, entry 0 -> 100 with no
step between. The bases, the old versions, keep running and ready for `scaleDownDelaySeconds`
(Argo's name), so `kubectl lane undo` switches back at once; then the lane is promoted.
`autoPromotionEnabled: false` (Argo's) makes the switch wait for `kubectl lane approve`.
"""

from __future__ import annotations

from pydantic import Field

from .common import Model
from .workloadrollout import Pause

PREVIEW_WEIGHT = 0
SWITCHED_WEIGHT = 100


class BlueGreen(Model):
    """How long the old versions are kept ready after the switch, and whether it waits."""

    scale_down_delay_seconds: int = Field(default=30, ge=0)
    auto_promotion_enabled: bool = True

    def stages(self) -> list[tuple[int, Pause]]:
        """The release's two steps as (entry weight, pause): the preview, then the switch held
        for `scaleDownDelaySeconds` before the promotion."""
        preview = Pause(duration=0) if self.auto_promotion_enabled else Pause()
        return [(PREVIEW_WEIGHT, preview),
                (SWITCHED_WEIGHT, Pause(duration=self.scale_down_delay_seconds))]
