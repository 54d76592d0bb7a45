"""Carry a request's lane in the W3C `baggage` header instead of a header of its own.

Tracing libraries forward `baggage` through services that know nothing of lanes, so a lane
survives hops that would drop a custom header. See https://www.w3.org/TR/baggage/.
"""

from __future__ import annotations

HEADER = "baggage"
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_OWS = "[ \\t]*"


def escape(text: str) -> str:
    """`text` as a literal in an RE2 pattern (RE2 accepts a backslash before punctuation)."""
    return "".join(f"\\{c}" if c in _RE2_SPECIAL else c for c in text)


def member(key: str, value: str) -> str:
    """A baggage header holding one member."""
    return f"{key}={value}"


def member_regex(key: str, value: str) -> str:
    """An RE2 pattern that fully matches a baggage header holding the member `key=value`.

    Other members may come before or after it, whitespace may surround the key, `=` and value,
    and the member may carry `;` properties; `key=value2` or `otherkey=value` do not match.
    """
    return (
        f"(.*,)?{_OWS}{escape(key)}{_OWS}={_OWS}{escape(value)}{_OWS}"
        f"(;[^,]*)?(,.*)?"
    )


def key_regex(key: str) -> str:
    """An RE2 pattern that fully matches a baggage header holding a member `key`, any value."""
    return f"(.*,)?{_OWS}{escape(key)}{_OWS}=.*"
