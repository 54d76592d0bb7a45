"""The analysis planner: readings in, a verdict and the next analysis status out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from lanes.analysis.verdict import HookResult, Reading, due, judge, unavailable_deadline
from lanes.api.analysis import Analysis, AnalysisStatus, MetricTemplate, seconds

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def analysis(**overrides) -> Analysis:
    spec = {
        "interval": "30s",
        "threshold": 3,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
        ],
    }
    spec.update(overrides)
    return Analysis.model_validate(spec)


def healthy(rate: float = 99.5, p99: float = 120.0) -> dict[str, Reading]:
    return {"request-success-rate": Reading("request-success-rate", rate),
            "request-duration": Reading("request-duration", p99)}


def test_a_check_in_range_passes_and_is_stamped() -> None:
    j = judge(analysis(), None, healthy(), T0)
    assert j.verdict == "pass"
    assert j.status.phase == "Passed"
    assert (j.status.checks, j.status.failed_checks) == (1, 0)
    assert j.status.last_check_time == T0.isoformat()
    assert [(m.name, m.value, m.ok) for m in j.status.metrics] == [
        ("request-success-rate", 99.5, True), ("request-duration", 120.0, True)]
    assert j.message == "check passed: request-success-rate 99.5%, request-duration 120ms"
    assert j.events == ()


def test_the_next_check_waits_for_the_interval() -> None:
    first = judge(analysis(), None, healthy(), T0)
    assert not due(analysis(), first.status, T0 + timedelta(seconds=29))
    assert judge(analysis(), first.status, healthy(), T0 + timedelta(seconds=29)).verdict == "wait"
    assert judge(analysis(), first.status, healthy(), T0 + timedelta(seconds=30)).verdict == "pass"


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        (healthy(rate=88.2), "Halt advancement: request-success-rate 88.2% < 99% (failed checks 1/3)"),
        (healthy(p99=612), "Halt advancement: request-duration 612ms > 500ms (failed checks 1/3)"),
        ({**healthy(), "request-duration": Reading("request-duration", None)},
         "Halt advancement: request-duration: no values found (failed checks 1/3)"),
        ({**healthy(), "request-duration": Reading("request-duration", float("nan"))},
         "Halt advancement: request-duration: no values found (failed checks 1/3)"),
        ({**healthy(), "request-success-rate": Reading("request-success-rate", error="bad_data")},
         "Halt advancement: request-success-rate: query failed: bad_data (failed checks 1/3)"),
    ],
    ids=["rate-below-min", "duration-above-max", "no-value", "nan", "query-error"],
)
def test_a_failed_check_halts_and_says_why(readings: dict, message: str) -> None:
    j = judge(analysis(), None, readings, T0)
    assert j.verdict == "halt"
    assert j.status.failed_checks == 1
    assert j.message == message
    assert [(e.type, e.reason, e.message) for e in j.events] == [("Warning", "HaltAdvancement", message)]


def test_failed_checks_reaching_the_threshold_roll_back_naming_metric_value_and_range() -> None:
    status = None
    verdicts = []
    for n in range(3):
        j = judge(analysis(), status, healthy(rate=90 + n), T0 + timedelta(seconds=30 * n))
        verdicts.append(j.verdict)
        status = j.status
    assert verdicts == ["halt", "halt", "rollback"]
    assert status.phase == "Failed"
    assert status.failed_checks == 3
    assert status.message == "Rolling back: failed checks threshold reached 3 (request-success-rate 92% < 99%)"
    assert j.events[0].reason == "AnalysisFailed"


def test_a_passing_check_does_not_forget_failed_ones() -> None:
    a = analysis()
    status = judge(a, None, healthy(rate=50), T0).status
    status = judge(a, status, healthy(), T0 + timedelta(seconds=30)).status
    assert (status.phase, status.failed_checks, status.checks) == ("Passed", 1, 2)
    status = judge(a, status, healthy(rate=50), T0 + timedelta(seconds=60)).status
    assert status.failed_checks == 2


def test_a_failing_rollout_webhook_is_a_failed_check() -> None:
    j = judge(analysis(), None, healthy(), T0, hooks=[HookResult("load-test", False, "HTTP 500")])
    assert j.verdict == "halt"
    assert j.message == "Halt advancement: webhook load-test: HTTP 500 (failed checks 1/3)"
    ok = judge(analysis(), None, healthy(), T0, hooks=[HookResult("load-test", True)])
    assert ok.verdict == "pass"


def test_prometheus_unavailable_holds_without_a_failed_check_until_the_deadline() -> None:
    a = analysis()
    down = {**healthy(), "request-duration": Reading("request-duration", unavailable="connection refused")}
    assert unavailable_deadline(a) == 90
    first = judge(a, None, down, T0)
    assert first.verdict == "hold"
    assert first.status.failed_checks == 0
    assert first.status.unavailable_since == T0.isoformat()
    assert [e.reason for e in first.events] == ["MetricsUnavailable"]
    later = judge(a, first.status, down, T0 + timedelta(seconds=60))
    assert later.verdict == "hold"
    assert later.events == (), "the hold is announced once"
    assert later.status.unavailable_since == T0.isoformat()
    last = judge(a, later.status, down, T0 + timedelta(seconds=90))
    assert last.verdict == "rollback"
    assert last.events[0].reason == "AnalysisUnavailable"
    assert "Prometheus unavailable for 90s, past the 90s deadline" in last.message


def test_prometheus_back_clears_the_hold() -> None:
    a = analysis()
    down = {**healthy(), "request-success-rate": Reading("request-success-rate", unavailable="timeout")}
    held = judge(a, None, down, T0).status
    back = judge(a, held, healthy(), T0 + timedelta(seconds=30))
    assert back.verdict == "pass"
    assert back.status.unavailable_since is None


def test_a_readings_entry_is_required_for_every_metric() -> None:
    with pytest.raises(KeyError):
        judge(analysis(), None, {"request-success-rate": Reading("request-success-rate", 100)}, T0)


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), min_size=1, max_size=12))
def test_failed_checks_never_decrease_and_roll_back_exactly_at_the_threshold(values: list) -> None:
    a = analysis(metrics=[{"name": "request-success-rate", "thresholdRange": {"min": 99}}])
    status: AnalysisStatus | None = None
    for n, value in enumerate(values):
        before = status.failed_checks if status else 0
        j = judge(a, status, {"request-success-rate": Reading("request-success-rate", value)},
                  T0 + timedelta(seconds=30 * n))
        ok = value is not None and value == value and value >= 99
        assert j.status.failed_checks == before + (0 if ok else 1)
        assert (j.verdict == "rollback") == (j.status.failed_checks >= 3 and not ok)
        status = j.status
        if j.verdict == "rollback":
            break


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99, "max": 90}}]},
         "min 99 is greater than max 90"),
        ({"metrics": [{"name": "request-success-rate", "thresholdRange": {}}]},
         "a threshold range needs min, max or both"),
        ({"interval": "1 minute"}, "'1 minute' is not a duration like 30s, 1m or 1m30s"),
        ({"interval": "0s"}, "'0s' is not a duration"),
        ({"metrics": [{"name": "error-rate", "thresholdRange": {"max": 1}}]},
         "metric 'error-rate' is not built in (request-success-rate, request-duration); give it a templateRef"),
        ({"metrics": [{"name": "request-duration", "thresholdRange": {"max": 1}},
                      {"name": "request-duration", "thresholdRange": {"max": 2}}]},
         "metric 'request-duration' is listed twice"),
        ({"threshold": 0}, "greater than or equal to 1"),
        ({"webhooks": [{"name": "w", "type": "sometimes", "url": "http://x"}]}, "'pre-rollout'"),
        ({"webhooks": [{"name": "w", "url": "ftp://x"}]}, "should match pattern"),
    ],
    ids=["min-over-max", "empty-range", "bad-interval", "zero-interval", "unknown-metric",
         "metric-twice", "threshold-0", "webhook-type", "webhook-url"],
)
def test_bad_analysis_is_refused_saying_what_is_wrong(spec: dict, error: str) -> None:
    with pytest.raises(ValidationError) as info:
        Analysis.model_validate(spec)
    assert error in str(info.value)


def test_a_templated_metric_and_its_template() -> None:
    a = analysis(metrics=[{"name": "error-rate", "thresholdRange": {"max": 1},
                           "templateRef": {"name": "error-rate"}, "interval": "1m"}])
    assert a.metrics[0].template_ref.name == "error-rate"
    template = MetricTemplate.model_validate({
        "apiVersion": "lanes.dev/v1alpha1", "kind": "MetricTemplate",
        "metadata": {"name": "error-rate", "namespace": "default"},
        "spec": {"provider": {"address": "http://prometheus:9090"},
                 "query": 'sum(rate(errors{app="{{ target }}"}[{{ interval }}]))'},
    })
    assert template.spec.provider.type == "prometheus"


@pytest.mark.parametrize(("text", "value"), [("30s", 30), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200)])
def test_durations(text: str, value: float) -> None:
    assert seconds(text) == value
