"""Release notices: which events become one, how they read, and each chat service's payload."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from lanes.alerts import Notice, notices_of, payload, sends_to
from lanes.api.alertprovider import Alert, AlertProvider, AlertProviderSpec


@dataclass
class Ev:
    reason: str
    message: str
    type: str = "Normal"


ROLLED_BACK = Notice("workloadrollout", "podinfo", "shop", "error", "rolling back",
                     "step 2/3: request-success-rate 91.2 below 99")


def test_only_the_moves_people_follow_make_notices() -> None:
    made = notices_of("workloadrollout", "podinfo", "shop", [
        Ev("CanaryStarted", "revision abc runs in canary Deployment podinfo-canary"),
        Ev("IntentRejected", "approve of step 1 is stale", "Warning"),
        Ev("RollingBack", "step 2/3: request-success-rate 91.2 below 99"),
    ])
    assert [(n.severity, n.title) for n in made] == [("info", "release started"),
                                                     ("error", "rolling back")]
    assert made[1] == ROLLED_BACK
    assert made[1].subject == "workloadrollout/podinfo.shop"


def test_waiting_for_approval_says_what_to_run() -> None:
    made = notices_of("workloadrollout", "podinfo", "shop", [], awaiting_approval=True)
    assert made[0].title == "waiting for approval"
    assert "kubectl lane approve rollout/podinfo -n shop" in made[0].text


def test_a_warning_event_is_at_least_a_warning() -> None:
    made = notices_of("workloadrollout", "p", "ns", [Ev("StepReady", "late", "Warning")])
    assert made[0].severity == "warn"


@pytest.mark.parametrize(
    ("wanted", "severity", "sent"),
    [("info", "info", True), ("warn", "info", False), ("warn", "error", True),
     ("error", "warn", False), ("error", "error", True)],
    ids=["info-takes-info", "warn-skips-info", "warn-takes-error", "error-skips-warn",
         "error-takes-error"],
)
def test_severity_filters_what_an_alert_takes(wanted, severity, sent) -> None:
    alert = Alert.model_validate({"name": "on-call", "severity": wanted, "providerRef": {"name": "slack"}})
    notice = Notice("workloadrollout", "p", "ns", severity, "t", "x")
    assert sends_to(alert, notice) is sent


def spec(kind: str, **extra) -> AlertProviderSpec:
    return AlertProviderSpec.model_validate({"type": kind, "address": "https://hooks.example/x", **extra})


def test_slack_posts_text_with_a_coloured_attachment() -> None:
    body = payload(spec("slack", channel="#releases", username="lanes"), ROLLED_BACK)
    assert body["text"] == "*workloadrollout/podinfo.shop*: rolling back"
    assert body["channel"] == "#releases" and body["username"] == "lanes"
    assert body["attachments"][0]["color"] == "#a30200"
    assert body["attachments"][0]["text"] == ROLLED_BACK.text


def test_teams_posts_a_message_card() -> None:
    body = payload(spec("msteams"), ROLLED_BACK)
    assert body["@type"] == "MessageCard"
    assert body["title"] == body["summary"] == "workloadrollout/podinfo.shop: rolling back"
    assert body["themeColor"] == "a30200"
    assert {"name": "Namespace", "value": "shop"} in body["sections"][0]["facts"]


def test_discord_posts_content_within_its_limit() -> None:
    body = payload(spec("discord", username="lanes"), ROLLED_BACK)
    assert body == {"content": "workloadrollout/podinfo.shop: rolling back. "
                               "step 2/3: request-success-rate 91.2 below 99", "username": "lanes"}
    long = Notice("workloadrollout", "p", "ns", "info", "t", "x" * 5000)
    assert len(payload(spec("discord"), long)["content"]) == 2000


def test_generic_posts_the_notice_as_json() -> None:
    assert payload(spec("generic"), ROLLED_BACK) == {
        "kind": "workloadrollout", "name": "podinfo", "namespace": "shop", "severity": "error",
        "title": "rolling back", "text": ROLLED_BACK.text}


def test_a_provider_needs_an_address_or_a_secret() -> None:
    with pytest.raises(ValidationError, match="give address or secretRef"):
        AlertProviderSpec.model_validate({"type": "slack"})
    AlertProviderSpec.model_validate({"type": "slack", "secretRef": {"name": "slack-url"}})
    with pytest.raises(ValidationError):
        AlertProviderSpec.model_validate({"type": "telegram", "address": "https://x"})
    provider = AlertProvider.model_validate({
        "metadata": {"name": "on-call"}, "spec": {"type": "discord", "address": "https://d/x"}})
    assert provider.kind == "AlertProvider"


def test_a_rollout_tells_of_the_move_into_an_approval_wait_once() -> None:
    from lanes.operator.rollouts import rollout_notices
    from lanes.rollout import Event

    from .rollout_fixtures import Case, canary, case_rollout, observed, plan_case, status

    case = Case(status("Progressing", "StepUpgrade"), observed(canary_obj=canary()), "")
    plan = plan_case(case)
    assert plan.status.phase == "Paused"
    events = [a for a in plan.actions if isinstance(a, Event)]
    titles = [n.title for n in rollout_notices(case_rollout(case), plan, events)]
    assert titles == ["step ready", "waiting for approval"]

    again = Case(plan.status, observed(canary_obj=canary()), "")
    assert rollout_notices(case_rollout(again), plan_case(again), []) == []
