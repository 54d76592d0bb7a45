"""Sticky lane entry: a LaneRelease's entry decided once per user rather than per request.

`sessionAffinity` names where a request carries its user key (a header, Istio's
`consistentHash.httpHeaderName`; or a cookie, Flagger's `sessionAffinity.cookieName`). The
gateway hashes the key with the lane's name into a fixed bucket, and a user whose bucket is
below the entry weight enters the lane on every request; as the weight rises users are only
added. `withoutKey` says what a request without the key gets: entry decided per request at the
weight (`PerRequest`), or base (`Base`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, WithJsonSchema, model_validator

from .common import HeaderName, Model

_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _cookie_name(value: str) -> str:
    if not _COOKIE_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid cookie name (token characters only)")
    return value


CookieName = Annotated[
    str,
    AfterValidator(_cookie_name),
    WithJsonSchema({"type": "string", "pattern": _COOKIE_NAME.pattern}),
]


class SessionAffinity(Model):
    """Where a request carries its user key, and what a request without one gets.

    With both `headerName` and `cookieName`, the header is read first.
    """

    header_name: HeaderName | None = None
    cookie_name: CookieName | None = None
    without_key: Literal["PerRequest", "Base"] = "PerRequest"

    @model_validator(mode="after")
    def _keyed(self) -> SessionAffinity:
        if self.header_name is None and self.cookie_name is None:
            raise ValueError("give headerName or cookieName: where a request carries its user key")
        return self
