"""Dry-run metrics are judged and reported but never decide; a metric's templateVariables fill
its template's `{{ variables.NAME }}`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lanes.analysis.queries import QueryError, render_query, with_template_variables
from lanes.analysis.verdict import Reading, judge
from lanes.api.analysis import Analysis

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def analysis() -> Analysis:
    return Analysis.model_validate({
        "interval": "30s",
        "threshold": 1,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "latency", "templateRef": {"name": "latency"}, "thresholdRange": {"max": 300},
             "dryRun": True},
        ],
    })


def test_a_failing_dry_run_metric_is_reported_and_does_not_decide() -> None:
    readings = {"request-success-rate": Reading("request-success-rate", 99.9),
                "latency": Reading("latency", 900.0)}
    judged = judge(analysis(), None, readings, T0)
    assert judged.verdict == "pass"
    latency = next(m for m in judged.status.metrics if m.name == "latency")
    assert (latency.ok, latency.dry_run, latency.value) == (False, True, 900.0)
    assert latency.message.endswith("(dry run)")


def test_a_deciding_metric_still_fails_beside_a_dry_run_one() -> None:
    readings = {"request-success-rate": Reading("request-success-rate", 90.0),
                "latency": Reading("latency", 100.0)}
    judged = judge(analysis(), None, readings, T0)
    assert judged.verdict == "rollback"
    assert "latency" not in judged.status.message


def test_a_dry_run_metric_that_cannot_be_read_does_not_hold_the_release() -> None:
    readings = {"request-success-rate": Reading("request-success-rate", 99.9),
                "latency": Reading("latency", unavailable="connection refused")}
    assert judge(analysis(), None, readings, T0).verdict == "pass"


def test_template_variables_fill_the_query() -> None:
    variables = with_template_variables({"namespace": "shop", "interval": "1m"},
                                        {"service": "checkout-canary"})
    query = 'rate(x{ns="{{ namespace }}",svc="{{ variables.service }}"}[{{ interval }}])'
    assert render_query(query, variables) == 'rate(x{ns="shop",svc="checkout-canary"}[1m])'


def test_a_template_variable_not_given_is_named() -> None:
    with pytest.raises(QueryError, match=r"\{\{ variables.service \}\}"):
        render_query("x{svc='{{ variables.service }}'}", with_template_variables({}, {}))
