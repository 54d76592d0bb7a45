"""Ask Prometheus for one number: the only operator code that speaks HTTP to Prometheus.

An analysis check sends a rendered query (`lanes.analysis.queries`) and gets back a float, or
None when Prometheus has no values for it yet (`query_value`); `query_reading`, which the
analysis uses, also says why there is no value (`Silence`): no traffic in the window, or no
data. Failures come in two kinds the analysis treats differently: `PrometheusUnavailable`
(Prometheus cannot be reached or failed itself: hold and ask again, the canary is not to
blame) and `QueryError` (the query is wrong: Prometheus refused it, or it names several series
that the template should have aggregated).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

from lanes.analysis.queries import QueryError
from lanes.analysis.verdict import Silence

__all__ = ["PrometheusUnavailable", "QueryError", "query_reading", "query_value"]

HISTORY = "1h"
"""How far back `query_reading` looks for values of a query that has none now."""
RESOLUTION = "5s"
"""The step at which it looks."""


class PrometheusUnavailable(RuntimeError):
    """Prometheus did not answer, timed out, or answered with a server error."""


def query_value(
    address: str,
    promql: str,
    *,
    timeout: float = 5.0,
    client: httpx.Client | None = None,
    at: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> float | None:
    """The value of the instant query `promql` at Prometheus `address` (e.g. http://host:9090).

    The query is evaluated now, or at the Unix time `at`, sent with `headers` (the
    credentials a Prometheus behind authentication asks for).

    A scalar or a one-element vector gives its value; an empty vector or NaN (say 0/0, a
    rate over no requests) gives None, "no values found". One attempt, bounded by `timeout`.
    Without `client`, proxies named in the environment are not used: Prometheus is reached
    directly, and the local stack's pods name the mesh as their HTTP proxy.

    Raises:
        PrometheusUnavailable: connection refused, timeout, or a 5xx answer.
        QueryError: Prometheus refused the query (its message quoted), or the result holds
            several series or is not a number.
    """
    value = _sample(address, promql, timeout, client, at, headers)
    return None if value is None or math.isnan(value) else value


def query_reading(
    address: str,
    promql: str,
    *,
    timeout: float = 5.0,
    client: httpx.Client | None = None,
    at: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> float | Silence:
    """The value of `promql` as `query_value` gives it, or why it has none.

    NaN (a rate over no requests, 0/0) is no traffic in the window. No series at all is told
    apart by asking once more whether the query had any value (NaN included) in the last
    `HISTORY`: if it had, its series lost their samples in the window (a scrape gap, an outage
    of Prometheus: no data); if not, nothing was ever counted for the canary (no traffic).

    Raises:
        PrometheusUnavailable, QueryError: as `query_value`.
    """
    value = _sample(address, promql, timeout, client, at, headers)
    if value is None:
        history = f"count(last_over_time(({promql})[{HISTORY}:{RESOLUTION}]))"
        if _sample(address, history, timeout, client, at, headers):
            return Silence("no-data", "no samples in the window, though the series had "
                                      f"values in the last {HISTORY}: a scrape gap or an outage")
        return Silence("no-traffic", "no series yet: no request to the canary was counted")
    if math.isnan(value):
        return Silence("no-traffic", "no requests in the window")
    return value


def _sample(
    address: str, promql: str, timeout: float, client: httpx.Client | None, at: float | None,
    headers: Mapping[str, str] | None = None,
) -> float | None:
    """The one number `promql` gives, NaN included; None for an empty vector."""
    url = f"{address.rstrip('/')}/api/v1/query"
    form = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
    sent = dict(headers or {})
    try:
        if client is None:
            with httpx.Client(timeout=timeout, trust_env=False) as own:
                response = own.post(url, data=form, headers=sent, timeout=timeout)
        else:
            response = client.post(url, data=form, headers=sent, timeout=timeout)
    except httpx.TimeoutException as error:
        raise PrometheusUnavailable(
            f"Prometheus at {address} did not answer within {timeout}s"
        ) from error
    except httpx.TransportError as error:
        raise PrometheusUnavailable(
            f"Prometheus at {address} cannot be reached: {error}"
        ) from error
    if response.status_code >= 500:
        raise PrometheusUnavailable(
            f"Prometheus at {address} answered {response.status_code}: {_error_text(response)}"
        )
    if response.status_code in (401, 403):
        given = "the credentials sent were refused" if sent else "it asks for credentials"
        raise QueryError(
            f"Prometheus at {address} answered {response.status_code}: {given} "
            f"({_error_text(response)})"
        )
    if response.status_code != 200:
        raise QueryError(
            f"Prometheus refused query {promql!r} ({response.status_code}): {_error_text(response)}"
        )
    return _value_of(promql, _json(response, address))


def _value_of(promql: str, body: dict[str, Any]) -> float | None:
    """The one number in a successful /api/v1/query answer (NaN included), or None for an
    empty vector."""
    if body.get("status") != "success":
        raise QueryError(f"Prometheus could not run query {promql!r}: {body.get('error', body)}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(promql, result[1])
    if kind == "vector":
        if not result:
            return None
        if len(result) > 1:
            series = ", ".join(_series_name(s.get("metric", {})) for s in result[:3])
            raise QueryError(
                f"query {promql!r} returned {len(result)} series ({series}"
                f"{', ...' if len(result) > 3 else ''}); aggregate it to one, e.g. with sum()"
            )
        return _number(promql, result[0]["value"][1])
    raise QueryError(f"query {promql!r} returned a {kind}, not a scalar or an instant vector")


def _number(promql: str, text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError) as error:
        raise QueryError(f"query {promql!r} returned {text!r}, not a number") from error


def _series_name(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _json(response: httpx.Response, address: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise PrometheusUnavailable(
            f"Prometheus at {address} answered with no JSON: {response.text[:200]!r}"
        ) from error
    if not isinstance(body, dict):
        raise PrometheusUnavailable(f"Prometheus at {address} answered {body!r}")
    return body


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500].strip() or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return str(body)[:500]
