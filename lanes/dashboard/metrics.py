"""Per service and lane, request rate, success rate and p99 latency over time, from Prometheus.

The lines are the analysis' own built-in queries (`lanes.analysis.queries`), asked over a range
(`/api/v1/query_range`), so what the page draws is what a release's checks read. Prometheus
down or a query refused comes back as words for the page, never an exception.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from .views import metric_queries

RANGE_S = 300
STEP_S = 2
TIMEOUT_S = 5.0


def _points(result: list[dict[str, Any]]) -> list[tuple[float, float | None]]:
    """The first series' points; NaN (no requests in the window) as None."""
    if not result:
        return []
    points = []
    for stamp, value in result[0].get("values") or []:
        number = float(value)
        points.append((float(stamp), None if math.isnan(number) or math.isinf(number) else number))
    return points


def lane_series(
    prometheus: str, service: str, lane: str, source: str, *,
    range_s: int = RANGE_S, step_s: int = STEP_S, now: float | None = None,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """The three lines of one service's lane over the last `range_s` seconds.

    Returns `{"series": {metric: [[time, value], ...]}, "error": None}`, or an `error` in words
    when Prometheus cannot be asked.
    """
    end = now if now is not None else time.time()
    series: dict[str, Any] = {}
    try:
        queries = metric_queries(service, lane, source)
    except ValueError as error:
        return {"series": {}, "error": str(error)}
    own = client or httpx.Client(timeout=TIMEOUT_S, trust_env=False)
    try:
        for metric, promql in queries.items():
            params = {"query": promql, "start": end - range_s, "end": end, "step": step_s}
            response = own.get(f"{prometheus.rstrip('/')}/api/v1/query_range", params=params)
            body = response.json() if response.headers.get("content-type", "").startswith(
                "application/json") else {}
            if response.status_code != 200 or body.get("status") != "success":
                error = body.get("error") or response.text.strip()[:200]
                return {"series": series, "error": f"Prometheus at {prometheus} answered "
                        f"{response.status_code}: {error}"}
            series[metric] = _points((body.get("data") or {}).get("result") or [])
    except httpx.HTTPError as error:
        return {"series": series, "error": f"Prometheus at {prometheus} cannot be reached: "
                f"{error or type(error).__name__}"}
    finally:
        if client is None:
            own.close()
    return {"series": series, "error": None}
