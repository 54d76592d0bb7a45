"""Which of a release's events are worth a person's attention, worded for people.

Events are written for `kubectl describe`: one per move, named by reason. A notice keeps the
moves a person follows a release by, says which release and where it stands in its first
words, and carries a severity, so an alert can ask for roll backs only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lanes.api.alertprovider import Alert, Severity

RANK: dict[Severity, int] = {"info": 0, "warn": 1, "error": 2}

# reason -> (severity, what happened, worded for people)
MOVES: dict[str, tuple[Severity, str]] = {
    "CanaryStarted": ("info", "release started"),
    "CanaryRestarted": ("info", "release restarted on a newer revision"),
    "StepStarted": ("info", "next step"),
    "StepReady": ("info", "step ready"),
    "Approved": ("info", "step approved"),
    "FullPromotionRequested": ("info", "full promotion requested"),
    "Promoting": ("info", "promoting"),
    "Promoted": ("info", "promoted"),
    "Paused": ("info", "paused"),
    "Resumed": ("info", "resumed"),
    "HaltAdvancement": ("warn", "analysis check failed"),
    "ProgressDeadlineExceeded": ("warn", "canary pods not ready in time"),
    "RollingBack": ("error", "rolling back"),
    "RolledBack": ("error", "rolled back"),
    "RolledBackByWebhook": ("error", "rolled back by a webhook"),
    "PreRolloutFailed": ("error", "pre-rollout webhook failed"),
}

LANE_MOVES: dict[str, tuple[Severity, str]] = {
    "Started": ("info", "lane release started"),
    "Advance": ("info", "next step: the lane's entry weight moves on"),
    "Approved": ("info", "step approved"),
    "FullPromotionRequested": ("info", "full promotion of the lane requested"),
    "Promoting": ("info", "promoting the lane"),
    "Succeeded": ("info", "lane promoted"),
    "Paused": ("info", "paused"),
    "Resumed": ("info", "resumed"),
    "Retried": ("info", "retry: the lane release starts again"),
    "HaltAdvancement": ("warn", "analysis check of the lane failed"),
    "RolloutDeleted": ("warn", "a rollout of the lane was deleted"),
    "RollingBack": ("error", "rolling the lane back"),
    "RolledBack": ("error", "lane rolled back"),
}
"""A lane release's moves: its events are named for the lane, not for one canary."""
MOVES_OF: dict[str, dict[str, tuple[Severity, str]]] = {"lanerelease": LANE_MOVES}


class EventLike(Protocol):
    """What a notice is made from: a posted event's reason, message and type."""

    reason: str
    message: str
    type: str


@dataclass(frozen=True)
class Notice:
    """One thing to tell people about a release."""

    kind: str
    name: str
    namespace: str
    severity: Severity
    title: str
    text: str

    @property
    def subject(self) -> str:
        """`kind/name.namespace`, as the notice names the release."""
        return f"{self.kind}/{self.name}.{self.namespace}"


def notices_of(kind: str, name: str, namespace: str, events: list[EventLike],
               awaiting_approval: bool = False) -> list[Notice]:
    """The notices a reconcile's events make; `awaiting_approval` adds one when the release
    now waits for a person, with the command that lets it go on."""
    made = []
    moves = MOVES_OF.get(kind, MOVES)
    for event in events:
        move = moves.get(event.reason)
        if move is None:
            continue
        severity, title = move
        if event.type == "Warning" and RANK[severity] < RANK["warn"]:
            severity = "warn"
        made.append(Notice(kind, name, namespace, severity, title, event.message))
    if awaiting_approval:
        text = (f"waiting for approval: `kubectl lane approve {_short(kind)}/{name} -n "
                f"{namespace}` continues, `kubectl lane undo {_short(kind)}/{name} -n "
                f"{namespace}` rolls back")
        made.append(Notice(kind, name, namespace, "info", "waiting for approval", text))
    return made


def sends_to(alert: Alert, notice: Notice) -> bool:
    """Whether an alert takes a notice: it is at least as severe as the alert asks."""
    return RANK[notice.severity] >= RANK[alert.severity]


def _short(kind: str) -> str:
    return "rollout" if kind == "workloadrollout" else kind
