"""An Argo AnalysisTemplate's Prometheus credentials as a MetricTemplate's `secretRef`.

Argo sends credentials as request headers whose values may use the template's arguments, and
an argument may come from a Secret (`valueFrom.secretKeyRef`): Argo's documented bearer token
is `Authorization: Bearer {{args.NAME}}` with NAME read from a Secret. lanes reads a bearer
token from a Secret's key `token` (Flagger's layout), so that header becomes
`spec.provider.secretRef` naming the Secret, when the token is under `token`. Other headers,
basic auth built by hand, and `authentication` (SigV4, OAuth2 client credentials: tokens
fetched at run time) have no lanes equivalent and are refused, naming what lanes does send.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .canary import Refusals
from .common import as_mapping

TOKEN_KEY = "token"
"""The Secret key lanes reads a bearer token from."""
_BEARER = re.compile(r"^\s*Bearer\s+\{\{\s*args\.([A-Za-z0-9_.-]+?)\s*\}\}\s*$")
_WHAT_LANES_SENDS = ("lanes sends a bearer token (Secret key token) or basic auth (keys username "
                     "and password) from the Secret a MetricTemplate's spec.provider.secretRef names")


def secret_args(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A template's arguments read from a Secret: name -> its `secretKeyRef`."""
    found = {}
    for raw in as_mapping(template.get("spec")).get("args") or []:
        arg = as_mapping(raw)
        ref = as_mapping(as_mapping(arg.get("valueFrom")).get("secretKeyRef"))
        if ref:
            found[str(arg.get("name", ""))] = ref
    return found


def argo_secret_ref(
    template: Mapping[str, Any], metric: Mapping[str, Any], path: str,
    refusals: Refusals | None = None,
) -> dict[str, str] | None:
    """The `secretRef` a template metric's Prometheus headers become, or None; what does not
    convert is added to `refusals`."""
    prometheus = as_mapping(as_mapping(metric.get("provider")).get("prometheus"))
    where = f"{path}.provider.prometheus"
    if "authentication" in prometheus and refusals is not None:
        refusals.add(f"{where}.authentication",
                     f"Argo's SigV4 or OAuth2 (tokens fetched at run time): {_WHAT_LANES_SENDS}")
    headers = prometheus.get("headers") or []
    from_secrets = secret_args(template)
    found = None
    for i, raw in enumerate(headers if isinstance(headers, list) else []):
        header = as_mapping(raw)
        bearer = _BEARER.match(str(header.get("value", "")))
        ref = from_secrets.get(bearer.group(1)) if bearer else None
        problem = None
        if str(header.get("key", "")).lower() != "authorization":
            problem = f"a header other than Authorization: {_WHAT_LANES_SENDS}"
        elif ref is None:
            problem = ("an Authorization other than `Bearer {{args.NAME}}` with NAME read from "
                       f"a Secret (spec.args[].valueFrom.secretKeyRef): {_WHAT_LANES_SENDS}")
        elif ref.get("key") != TOKEN_KEY:
            problem = (f"the token is under the Secret's key {ref.get('key')!r}: lanes reads a "
                       f"bearer token from the key {TOKEN_KEY!r}; store it there")
        if problem is not None:
            if refusals is not None:
                refusals.add(f"{where}.headers[{i}]", problem)
            continue
        found = {"name": str(ref.get("name", ""))}
    return found
