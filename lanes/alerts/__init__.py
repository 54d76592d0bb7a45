"""Pure: what to tell people about a release, and how each chat service wants it posted.

`notices` picks, from the events a reconcile posted, those a person following the release
wants to read (started, a step, waiting for approval, promoted, rolled back and why);
`payloads` shapes one notice as Slack, Microsoft Teams, Discord or a generic JSON receiver
expects it. Sending is the operator's (`lanes.operator.alerts`).
"""

from .notices import Notice, notices_of, sends_to
from .payloads import payload

__all__ = ["Notice", "notices_of", "payload", "sends_to"]
