"""Three readings of a query without a value: a value (0 % when every answer failed), no
traffic in the window, and no data (a scrape gap, an outage). Answers are recorded Prometheus
HTTP API bodies; the verdict and the rollout planner then hold or judge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from lanes.analysis.queries import builtin_query, render_query
from lanes.analysis.verdict import Reading, Silence, judge, no_traffic_deadline
from lanes.api.analysis import Analysis
from lanes.operator.analysis import CheckContext, read_metrics
from lanes.operator.providers import PROVIDERS
from lanes.operator.providers.prometheus import query_reading, query_value

from .test_rollout_analysis import (
    analysed,
    conditions,
    first_check,
    in_turn,
    readings,
    reasons,
    run_until,
    started,
    state,
    wait,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ADDRESS = "http://prometheus:9090"
RATE = "request-success-rate"


def vector(*values: str) -> dict:
    """An /api/v1/query answer holding one sample per value."""
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [1733313600.0, v]} for v in values]}}


EMPTY = vector()


class Recorded:
    """A Prometheus answering recorded bodies: `now` for the query, `history` for the look
    back `query_reading` sends when the query has no series."""

    def __init__(self, now: dict, history: dict | None = None) -> None:
        self.now, self.history = now, history or EMPTY
        self.asked: list[str] = []

    def client(self) -> httpx.Client:
        def answer(request: httpx.Request) -> httpx.Response:
            query = dict(httpx.QueryParams(request.content.decode()))["query"]
            self.asked.append(query)
            body = self.history if query.startswith("count(last_over_time(") else self.now
            return httpx.Response(200, content=json.dumps(body))
        return httpx.Client(transport=httpx.MockTransport(answer))


def ask(recorded: Recorded) -> float | Silence | None:
    with recorded.client() as client:
        return query_reading(ADDRESS, "q", client=client)


def test_a_value_is_a_value_and_asks_once() -> None:
    recorded = Recorded(vector("0"))
    assert ask(recorded) == 0.0
    assert recorded.asked == ["q"]


def test_nan_is_no_traffic_in_the_window() -> None:
    answer = ask(Recorded(vector("NaN")))
    assert isinstance(answer, Silence) and answer.kind == "no-traffic"


def test_no_series_that_never_had_values_is_no_traffic() -> None:
    recorded = Recorded(EMPTY, EMPTY)
    answer = ask(recorded)
    assert isinstance(answer, Silence) and answer.kind == "no-traffic"
    assert recorded.asked[1] == "count(last_over_time((q)[1h:5s]))"


def test_no_series_that_had_values_is_no_data() -> None:
    answer = ask(Recorded(EMPTY, vector("1")))
    assert isinstance(answer, Silence) and answer.kind == "no-data"
    assert "scrape gap" in answer.detail


def test_query_value_still_reads_nan_and_empty_as_no_value() -> None:
    for body in (vector("NaN"), EMPTY):
        with Recorded(body).client() as client:
            assert query_value(ADDRESS, "q", client=client) is None


def test_the_prometheus_provider_classifies() -> None:
    assert PROVIDERS["prometheus"] is query_reading


@pytest.mark.parametrize("source", ["istio", "envoy"])
def test_the_success_rate_falls_back_to_zero_only_when_requests_were_counted(source: str) -> None:
    promql = render_query(builtin_query(source, RATE), {
        "namespace": "shop", "target": "mockb-canary", "service": "mockb", "lane": "canary",
        "interval": "1m"})
    numerator, denominator = promql.split("\n/\n")
    assert numerator.endswith(" or on() vector(0))"), "0 % when nothing succeeded"
    assert "vector(0)" not in denominator, "no requests stays 0/0 or no series, not 0 %"


CONTEXT = CheckContext("shop", "mockb-canary", "mockb", "canary")
ANALYSIS = Analysis.model_validate({"interval": "30s", "threshold": 3, "metrics": [
    {"name": RATE, "thresholdRange": {"min": 99}}]})


@pytest.mark.parametrize(("answer", "reading"), [
    (0.0, Reading(RATE, 0.0)),
    (Silence("no-traffic", "no requests in the window"),
     Reading(RATE, no_traffic="no requests in the window")),
    (Silence("no-data", "a gap"), Reading(RATE, no_data="a gap")),
], ids=["value", "no-traffic", "no-data"])
def test_read_metrics_keeps_the_three_cases(answer, reading: Reading) -> None:
    got = read_metrics(ANALYSIS, CONTEXT, {}, lambda a, q: answer, default_address=ADDRESS)
    assert got == {RATE: reading}


def test_zero_percent_is_a_failed_check_reported_as_zero() -> None:
    j = judge(ANALYSIS, None, {RATE: Reading(RATE, 0.0)}, T0)
    assert j.verdict == "halt"
    assert "request-success-rate 0% < 99%" in j.message
    assert "no values" not in j.message


def test_no_traffic_holds_then_counts_as_failed_past_its_deadline() -> None:
    quiet = {RATE: Reading(RATE, no_traffic="no requests in the window")}
    first = judge(ANALYSIS, None, quiet, T0)
    assert (first.verdict, first.status.failed_checks, first.status.phase) == ("hold", 0, "Holding")
    assert first.status.no_traffic_since == T0.isoformat()
    assert [e.reason for e in first.events] == ["NoTraffic"]
    assert "no traffic to the canary" in first.message
    second = judge(ANALYSIS, first.status, quiet, T0 + timedelta(seconds=30))
    assert second.verdict == "hold" and second.events == (), "announced once"
    deadline = no_traffic_deadline(ANALYSIS)
    late = judge(ANALYSIS, second.status, quiet, T0 + timedelta(seconds=deadline))
    assert (late.verdict, late.status.failed_checks) == ("halt", 1)
    assert "request-success-rate: no traffic" in late.message
    assert late.status.no_traffic_since == T0.isoformat(), "the deadline is not reset"
    back = judge(ANALYSIS, late.status, {RATE: Reading(RATE, 99.9)},
                 T0 + timedelta(seconds=deadline + 30))
    assert back.verdict == "pass" and back.status.no_traffic_since is None


def test_no_data_holds_on_the_unavailable_clock_and_rolls_back_past_it() -> None:
    gap = {RATE: Reading(RATE, no_data="a scrape gap")}
    first = judge(ANALYSIS, None, gap, T0)
    assert (first.verdict, first.status.failed_checks) == ("hold", 0)
    assert first.status.no_data and first.status.unavailable_since == T0.isoformat()
    assert [e.reason for e in first.events] == ["NoData"]
    late = judge(ANALYSIS, first.status, gap, T0 + timedelta(seconds=90))
    assert late.verdict == "rollback"
    assert [e.reason for e in late.events] == ["AnalysisUnavailable"]


def test_a_healthy_release_through_a_short_gap_promotes_with_no_failed_check() -> None:
    gap = {RATE: Reading(RATE, no_data="a scrape gap"),
           "request-duration": Reading("request-duration", no_data="a scrape gap")}
    world = started(analysed([{"replicas": 1}]), in_turn(gap, gap, readings()))
    world.reconcile()
    world.events.clear()
    first_check(world)
    assert world.status.analysis.phase == "Holding"
    assert reasons(world.events) == ["NoData"]
    assert conditions(world)["MetricsAvailable"] == ("False", "NoData")
    wait(world)
    wait(world)
    assert state(world) == ("Progressing", 1, "StepReady")
    world.run(lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")
    assert world.status.analysis.failed_checks == 0


def test_a_canary_whose_traffic_comes_late_is_held_not_rolled_back() -> None:
    quiet = {RATE: Reading(RATE, no_traffic="no requests in the window"),
             "request-duration": Reading("request-duration", no_traffic="no requests")}
    world = started(analysed([{"replicas": 1}]), in_turn(quiet, quiet, readings()))
    world.reconcile()
    world.events.clear()
    first_check(world)
    assert world.status.analysis.phase == "Holding"
    assert "no traffic to the canary" in world.status.message
    assert reasons(world.events) == ["NoTraffic"]
    run_until(world, lambda w: w.status.phase != "Progressing"
              or w.status.canary_status.current_step_state == "StepReady")
    assert world.status.analysis.failed_checks == 0
    world.run(lambda w: w.status.phase == "Healthy")
    assert conditions(world)["Succeeded"] == ("True", "Promoted")


def test_a_lane_release_holds_on_no_traffic_and_no_data_without_a_failed_check() -> None:
    from lanes.rollout.lanerelease import ReleaseObserved

    from .test_lanerelease import CHECK, LANE, SERVICES, advance, rollouts, run
    from .test_lanerelease import started as lane_started

    rel = lane_started()
    observed = ReleaseObserved(LANE, rollouts())
    for n, (kind, event) in enumerate([("no_traffic", "NoTraffic"), ("no_data", "NoData")]):
        silent = {f"rollouts-{s}": {RATE: Reading(RATE, **{kind: "quiet"})} for s in SERVICES}
        plan = run(rel, observed, CHECK + timedelta(seconds=10 * n), silent)
        assert (plan.status.phase, plan.status.failed_checks) == ("Progressing", 0)
        assert plan.status.analysis_phase == "Holding"
        assert [e.reason for e in plan.events] == [event]
        rel = advance(rel, plan)
        again = run(rel, observed, CHECK + timedelta(seconds=10 * n + 5), silent)
        assert again.events == ()
