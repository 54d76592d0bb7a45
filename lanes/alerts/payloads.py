"""One notice as each chat service's incoming webhook wants it.

- Slack (https://api.slack.com/messaging/webhooks): `text` (mrkdwn), optional `channel` and
  `username`, and an attachment whose colour says the severity, as Flagger posts.
- Microsoft Teams (Office 365 connector MessageCard, https://learn.microsoft.com/en-us/outlook/
  actionable-messages/message-card-reference): `@type: MessageCard`, `summary`, `themeColor`,
  `title`, `text`, and the release as facts of a section.
- Discord (https://discord.com/developers/docs/resources/webhook#execute-webhook): `content`
  (at most 2,000 characters) and optional `username`.
- generic: the notice's fields as JSON, for a receiver of one's own.
"""

from __future__ import annotations

from typing import Any

from lanes.api.alertprovider import AlertProviderSpec

from .notices import Notice

COLOURS = {"info": "#2eb886", "warn": "#daa038", "error": "#a30200"}
DISCORD_LIMIT = 2000


def _line(notice: Notice) -> str:
    return f"{notice.subject}: {notice.title}. {notice.text}"


def payload(spec: AlertProviderSpec, notice: Notice) -> dict[str, Any]:
    """The JSON body that posts `notice` to a provider of `spec.type`."""
    if spec.type == "slack":
        body: dict[str, Any] = {
            "text": f"*{notice.subject}*: {notice.title}",
            "attachments": [{"color": COLOURS[notice.severity], "text": notice.text,
                             "fallback": _line(notice)}],
        }
        if spec.channel:
            body["channel"] = spec.channel
        if spec.username:
            body["username"] = spec.username
        return body
    if spec.type == "msteams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": f"{notice.subject}: {notice.title}",
            "themeColor": COLOURS[notice.severity].lstrip("#"),
            "title": f"{notice.subject}: {notice.title}",
            "text": notice.text,
            "sections": [{"facts": [
                {"name": "Kind", "value": notice.kind},
                {"name": "Name", "value": notice.name},
                {"name": "Namespace", "value": notice.namespace},
                {"name": "Severity", "value": notice.severity},
            ]}],
        }
    if spec.type == "discord":
        content = _line(notice)
        if len(content) > DISCORD_LIMIT:
            content = content[: DISCORD_LIMIT - 1] + "…"
        body = {"content": content}
        if spec.username:
            body["username"] = spec.username
        return body
    return {
        "kind": notice.kind,
        "name": notice.name,
        "namespace": notice.namespace,
        "severity": notice.severity,
        "title": notice.title,
        "text": notice.text,
        **({"channel": spec.channel} if spec.channel else {}),
        **({"username": spec.username} if spec.username else {}),
    }
