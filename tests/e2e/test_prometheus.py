"""The built-in analysis queries, evaluated by a real Prometheus over real and recorded series.

One Prometheus for the module: before it starts, recorded Istio series (as Istio's standard
metrics report them) are backfilled with promtool; once started, it scrapes a real Envoy at
1 s: the sidecar of a client pod in the local mesh, through which the test sends requests
to a small server (mockb's canary pod, with its own sidecar) that answers 500 and
answers slowly on request. `query_value` then runs the rendered built-ins against it, and
the operator's `read_metrics` reads a rollout's analysis from it. Every query of these series
is evaluated at a fixed time (the recorded series' end, the burst's end), so its window holds
the same samples however long the tests before it took.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lanes.analysis.queries import builtin_query, render_query
from lanes_testbed.mesh import Endpoint, LocalMesh, PodProxy
from lanes_testbed.mesh.pods import free_block
from lanes_testbed.processes import free_port
from lanes_testbed.prometheus import Prometheus, ScrapeTarget, ensure_prometheus
from lanes.api.analysis import Analysis, MetricTemplate
from lanes.operator.analysis import CheckContext, read_metrics
from lanes.analysis.verdict import Silence
from lanes.operator.dashboards import dashboards
from lanes.operator.providers.prometheus import (
    PrometheusUnavailable,
    QueryError,
    query_reading,
    query_value,
)

NAMESPACE, SERVICE, LANE = "team-a", "mockb", "canary"  # a `-` in the namespace, on purpose
CANARY = "mockb-canary"
STEP_S, STEPS = 15, 40  # ten minutes of recorded series, one sample per 15 s
SLOW_MS = 70  # inside Envoy's (50, 100] ms bucket, far from both edges


# --- recorded Istio series -------------------------------------------------------------------

# Per 15 s step, requests by response code: 95 of every 100 not 5xx (404s count as success).
CANARY_CODES = {"200": 90, "404": 5, "500": 4, "503": 1}
# Series that must not count: the base workload, the same name in another namespace, and
# what the calling side reports (reporter="source").
DECOYS = (
    ({"destination_workload": "mockb", "destination_workload_namespace": NAMESPACE,
      "destination_service_name": SERVICE, "reporter": "destination"}, {"200": 50, "500": 50}),
    ({"destination_workload": CANARY, "destination_workload_namespace": "other",
      "destination_service_name": SERVICE, "reporter": "destination"}, {"500": 100}),
    ({"destination_workload": CANARY, "destination_workload_namespace": NAMESPACE,
      "destination_service_name": SERVICE, "reporter": "source"}, {"500": 100}),
)
# Per step, the cumulative count of each duration bucket (ms).
CANARY_BUCKETS = {"5": 50, "10": 80, "25": 95, "50": 100, "100": 100, "+Inf": 100}
DECOY_BUCKETS = {"5": 0, "10": 0, "25": 0, "50": 0, "100": 100, "+Inf": 100}
# p99 by hand: rank 0.99 * 100 = 99 falls in (25, 50], which holds ranks 96-100 (5 of them),
# so Prometheus interpolates 25 + 25 * (99 - 95) / 5 = 45 ms. The decoys all lie in (50, 100].
CANARY_P99_MS = 45.0


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def recorded_istio_series(end: float) -> str:
    """OpenMetrics text: counters and histograms growing by the tables above every step."""
    times = [end - STEP_S * (STEPS - 1 - i) for i in range(STEPS)]
    canary = {"destination_workload": CANARY, "destination_workload_namespace": NAMESPACE,
              "destination_service_name": SERVICE, "reporter": "destination"}
    lines = ["# TYPE istio_requests counter"]
    for base, codes in ((canary, CANARY_CODES), *DECOYS):
        for code, per_step in codes.items():
            series = _labels({**base, "response_code": code})
            lines += [f"istio_requests_total{{{series}}} {per_step * (n + 1)} {t:.3f}"
                      for n, t in enumerate(times)]
    lines.append("# TYPE istio_request_duration_milliseconds histogram")
    for base, buckets in ((canary, CANARY_BUCKETS), (DECOYS[0][0], DECOY_BUCKETS),
                          (DECOYS[1][0], DECOY_BUCKETS), (DECOYS[2][0], DECOY_BUCKETS)):
        for n, t in enumerate(times):
            for le, per_step in buckets.items():
                series = _labels({**base, "le": le})
                lines.append(
                    f"istio_request_duration_milliseconds_bucket{{{series}}} {per_step * (n + 1)} {t:.3f}"
                )
            total = buckets["+Inf"] * (n + 1)
            lines.append(f"istio_request_duration_milliseconds_count{{{_labels(base)}}} {total} {t:.3f}")
            lines.append(f"istio_request_duration_milliseconds_sum{{{_labels(base)}}} {total * 7} {t:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# --- a real Envoy in front of a server that fails and stalls on request ---------------------


class _Upstream(BaseHTTPRequestHandler):
    """`/fail` answers 500, `/slow` answers 200 after SLOW_MS, anything else 200 at once."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/slow":
            time.sleep(SLOW_MS / 1000)
        status = 500 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def mesh_objects(upstream_port: int) -> list[dict]:
    """mockb with base and canary subsets; requests with the canary lane header go to canary."""
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": SERVICE, "namespace": NAMESPACE},
         "spec": {"selector": {"app": SERVICE},
                  "ports": [{"name": "http", "port": 8000, "targetPort": upstream_port}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
         "metadata": {"name": SERVICE, "namespace": NAMESPACE},
         "spec": {"host": SERVICE, "subsets": [
             {"name": "base", "labels": {"ASM_TRAFFIC_TAG": "base"}},
             {"name": LANE, "labels": {"ASM_TRAFFIC_TAG": LANE}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": SERVICE, "namespace": NAMESPACE},
         "spec": {"hosts": [SERVICE], "http": [
             {"match": [{"headers": {"x-asm-prefer-tag": {"exact": LANE}}}],
              "route": [{"destination": {"host": SERVICE, "subset": LANE}}]},
             {"route": [{"destination": {"host": SERVICE, "subset": "base"}}]}]}},
    ]


@dataclass
class Bed:
    prometheus: Prometheus
    mesh: LocalMesh
    client: PodProxy
    recorded_end: float

    def send(self, path: str, lane: str = LANE) -> int:
        """One request into the client pod's sidecar, as its app calling mockb would send it."""
        conn = http.client.HTTPConnection(self.client.egress, 8000, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": f"{SERVICE}:8000", "x-asm-prefer-tag": lane})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def value(self, promql: str, at: float | None = None) -> float | None:
        return query_value(self.prometheus.url, promql, at=at)

    def query_at(self, at: float) -> Callable[[str, str], float | None]:
        """A `read_metrics` query that evaluates at the Unix time `at` rather than now."""
        return lambda address, promql: query_value(address, promql, at=at)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Bed]:
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        paths = ensure_prometheus()
    workdir = tmp_path_factory.mktemp("prometheus")
    block = free_block()
    server = ThreadingHTTPServer((f"{block}.2", free_port()), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream_ip, upstream_port = server.server_address[:2]
    labels = {"app": SERVICE, "ASM_TRAFFIC_TAG": LANE}
    try:
        with LocalMesh(workdir / "mesh", gateway_port=free_port()) as mesh:
            client = mesh.add_pod("client", {"app": "client"}, f"{block}.1", namespace=NAMESPACE)
            mesh.add_pod(CANARY, labels, upstream_ip, namespace=NAMESPACE, ports=(upstream_port,))
            mesh.update(mesh_objects(upstream_port), [Endpoint(upstream_ip, labels)])
            prometheus = Prometheus(
                workdir / "prom",
                [ScrapeTarget("envoy", client.admin_url.removeprefix("http://"), "/stats/prometheus")],
                scrape_interval="1s",
                paths=paths,
            )
            end = time.time() - 5
            prometheus.backfill(recorded_istio_series(end))
            with prometheus:
                yield Bed(prometheus, mesh, client, end)
    finally:
        server.shutdown()
        server.server_close()


def variables(interval: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "target": CANARY, "service": SERVICE, "lane": LANE,
            "interval": interval}


# --- istio built-ins over recorded series ------------------------------------------------------


def test_istio_success_rate_counts_only_the_canary_workload(bed: Bed) -> None:
    promql = render_query(builtin_query("istio", "request-success-rate"), variables("5m"))
    assert bed.value(promql, at=bed.recorded_end) == pytest.approx(95.0, abs=1e-9)


def test_istio_p99_duration_is_the_interpolated_bucket_value(bed: Bed) -> None:
    promql = render_query(builtin_query("istio", "request-duration"), variables("5m"))
    assert bed.value(promql, at=bed.recorded_end) == pytest.approx(CANARY_P99_MS, abs=1e-9)


def test_istio_query_for_a_workload_with_no_requests_has_no_value(bed: Bed) -> None:
    promql = render_query(builtin_query("istio", "request-success-rate"),
                          {**variables("5m"), "target": "nobody-canary"})
    assert bed.value(promql, at=bed.recorded_end) is None


# --- envoy built-ins over a real Envoy, scraped at 1 s -----------------------------------------

# Requests per kind in the measured burst: 5 of 100 fail; 10 of 100 are slow, so the p99 rank
# (99 of 100) lies among the slow ones in Envoy's (50, 100] ms bucket, after the 90 fast ones:
# 50 + 50 * (99 - 90) / 10 = 95 ms, were every request in Envoy's histogram. Envoy 1.40's
# upstream_rq_time histogram keeps only part of them, though (between half and 97 % of its
# counters' requests in our trials, for good; more often with keep-alive upstream connections
# and more workers), so the expected p99 is worked out by hand from the bucket counts Envoy
# itself reports, and must lie in the slow requests' bucket.
BURST = {"/fail": 5, "/slow": 10, "/": 85}
FLUSH_S = 5.0  # Envoy's default stats flush interval: histograms are merged this often
_BUCKET = re.compile(
    r'^envoy_cluster_upstream_rq_time_bucket\{([^}]*)\} (\S+)$',
    re.MULTILINE,
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def envoy_buckets(bed: Bed) -> dict[float, float]:
    """The canary cluster's upstream_rq_time buckets as Envoy exports them now (le -> count)."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        f"{bed.client.admin_url}/stats/prometheus", timeout=5
    ) as response:
        text = response.read().decode()
    cluster = f"outbound|8000|{LANE}|{SERVICE}.{NAMESPACE}.svc.cluster.local"
    buckets = {}
    for body, count in _BUCKET.findall(text):
        labels = dict(_LABEL.findall(body))
        if labels.get("cluster_name") == cluster:
            buckets[float(labels["le"])] = float(count)
    return buckets


def settled_histogram(bed: Bed, before: float, timeout: float = 30.0) -> dict[float, float]:
    """Envoy's buckets once they hold more than `before` requests and stayed put a flush long."""
    deadline = time.monotonic() + timeout
    last, since = envoy_buckets(bed), time.monotonic()
    while True:
        time.sleep(0.5)
        now = envoy_buckets(bed)
        if now != last:
            last, since = now, time.monotonic()
        elif last.get(math.inf, 0) > before and time.monotonic() - since > FLUSH_S + 0.5:
            return last
        assert time.monotonic() < deadline, f"Envoy's histogram did not settle: {last}"


def quantile_by_hand(q: float, buckets: dict[float, float]) -> float:
    """Prometheus's histogram_quantile over cumulative `buckets`: linear within a bucket."""
    bounds = sorted(buckets)
    rank = q * buckets[math.inf]
    below, lower = 0.0, 0.0
    for upper in bounds:
        if buckets[upper] >= rank:
            if upper == math.inf:
                return lower
            return lower + (upper - lower) * (rank - below) / (buckets[upper] - below)
        below, lower = buckets[upper], upper
    raise AssertionError(f"no bucket reaches rank {rank}: {buckets}")


def _wait_scraped(bed: Bed, count: float, timeout: float = 10.0) -> None:
    """Until Prometheus has scraped a histogram count of `count` for the canary cluster."""
    promql = render_query(
        'sum(envoy_cluster_upstream_rq_time_count{'
        'cluster_name="outbound|8000|{{ lane }}|{{ service }}.{{ namespace }}.svc.cluster.local"})',
        variables("1m"))
    deadline = time.monotonic() + timeout
    while (seen := bed.value(promql) or 0.0) < count:
        assert time.monotonic() < deadline, f"Prometheus saw {seen} of {count} requests in {timeout}s"
        time.sleep(0.25)


@dataclass(frozen=True)
class Burst:
    at: float  # when the burst was over and scraped: the queries of it are evaluated then
    interval: str  # a rate window that holds the whole burst and none of the warm-up
    buckets: dict[float, float]  # Envoy's own bucket counts of the burst (after - before)


@pytest.fixture(scope="module")
def envoy_burst(bed: Bed) -> Burst:
    """Send a warm-up, then the burst through Envoy, each settled and scraped.

    The warm-up makes every series exist (Envoy creates the 5xx counter at the first 5xx),
    so the burst is measured as an increase of series that all have samples from before it.
    `rate` extrapolates a window's increase to its edges by the same factor for every series
    of one scrape, unless a counter would reach zero within that stretch; a warm-up as large
    as the burst keeps every counter the queries divide far from zero, so the ratio and the
    quantile come out exact, up to float rounding.
    """
    warm_up = 100
    for _ in range(warm_up):
        assert bed.send("/") == 200 and bed.send("/fail") == 500
    before = settled_histogram(bed, 0)
    _wait_scraped(bed, before[math.inf])
    time.sleep(2.5)  # a few scrapes holding only the warm-up
    started = time.time()
    for path, count in BURST.items():
        for _ in range(count):
            bed.send(path)
    after = settled_histogram(bed, before[math.inf])
    _wait_scraped(bed, after[math.inf])
    time.sleep(1.5)  # one more scrape, so the window's last sample follows the burst
    at = time.time()
    return Burst(
        at=at,
        interval=f"{math.ceil(at - started) + 1}s",
        buckets={le: after[le] - before.get(le, 0.0) for le in after},
    )


def test_envoy_success_rate_is_the_share_of_non_5xx_answers(bed: Bed, envoy_burst: Burst) -> None:
    promql = render_query(builtin_query("envoy", "request-success-rate"), variables(envoy_burst.interval))
    assert bed.value(promql, at=envoy_burst.at) == pytest.approx(95.0, abs=1e-6)


def test_envoy_p99_duration_is_decided_by_the_slow_requests(bed: Bed, envoy_burst: Burst) -> None:
    buckets = envoy_burst.buckets
    slow = buckets[100.0] - buckets[50.0]
    assert 0 < slow <= BURST["/slow"], f"no slow request in (50, 100] ms: {buckets}"
    expected = quantile_by_hand(0.99, buckets)
    promql = render_query(builtin_query("envoy", "request-duration"), variables(envoy_burst.interval))
    value = bed.value(promql, at=envoy_burst.at)
    assert value == pytest.approx(expected, abs=1e-6)
    assert value > 50.0, "the slow tenth of the requests decides the p99, not the fast ones"


def test_envoy_queries_of_a_lane_that_got_no_requests_have_no_value(bed: Bed, envoy_burst: Burst) -> None:
    promql = render_query(builtin_query("envoy", "request-success-rate"),
                          {**variables(envoy_burst.interval), "lane": "base"})
    assert bed.value(promql, at=envoy_burst.at) is None


# --- the operator's readings edge over the same Prometheus -------------------------------------

CHECK = CheckContext(namespace=NAMESPACE, target=CANARY, service=SERVICE, lane=LANE)


def test_read_metrics_reads_istio_builtins_and_a_template_over_recorded_series(bed: Bed) -> None:
    analysis = Analysis.model_validate({"interval": "5m", "metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
        {"name": "request-duration", "thresholdRange": {"max": 500}},
        {"name": "canary-requests", "templateRef": {"name": "requests"}, "thresholdRange": {"min": 1}},
        {"name": "missing", "templateRef": {"name": "nowhere"}, "thresholdRange": {"min": 1}},
    ]})
    requests = MetricTemplate.model_validate({
        "metadata": {"name": "requests", "namespace": NAMESPACE},
        "spec": {"query": 'sum(increase(istio_requests_total{reporter="destination",'
                          ' destination_workload_namespace="{{ namespace }}",'
                          ' destination_workload=~"{{ target }}"}[{{ interval }}]))'},
    })
    readings = read_metrics(analysis, CHECK, {(NAMESPACE, "requests"): requests},
                            query=bed.query_at(bed.recorded_end),
                            default_address=bed.prometheus.url, default_source="istio")
    assert readings["request-success-rate"].value == pytest.approx(95.0, abs=1e-9)
    assert readings["request-duration"].value == pytest.approx(CANARY_P99_MS, abs=1e-9)
    # 100 requests per 15 s step, over five minutes of steps
    assert readings["canary-requests"].value == pytest.approx(100 * 300 / STEP_S, rel=0.1)
    assert readings["missing"].error == f"MetricTemplate {NAMESPACE}/nowhere not found"


def test_read_metrics_reads_envoy_builtins_of_the_canary_lane(bed: Bed, envoy_burst: Burst) -> None:
    analysis = Analysis.model_validate({"interval": envoy_burst.interval, "metricSource": "envoy",
                                        "prometheus": {"address": bed.prometheus.url}, "metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
    ]})
    [reading] = read_metrics(analysis, CHECK, {}, query=bed.query_at(envoy_burst.at),
                             default_address="http://127.0.0.1:1").values()
    assert reading.value == pytest.approx(95.0, abs=1e-6)


def test_read_metrics_of_a_stopped_prometheus_is_unavailable(tmp_path: Path) -> None:
    analysis = Analysis.model_validate({"metrics": [
        {"name": "request-success-rate", "thresholdRange": {"min": 99}}]})
    stopped = Prometheus(tmp_path, [], paths=ensure_prometheus(None))
    stopped.start()
    stopped.stop()
    [reading] = read_metrics(analysis, CHECK, {}, default_address=stopped.url).values()
    assert reading.value is None and reading.error is None
    assert reading.unavailable is not None and "cannot be reached" in reading.unavailable


# --- query_value's errors ------------------------------------------------------------------------


def test_a_scalar_or_one_series_is_its_value_and_nan_is_no_value(bed: Bed) -> None:
    assert bed.value("scalar(vector(2.5))") == 2.5
    assert bed.value('sum(istio_requests_total{destination_workload="mockb-canary"}) > 0') > 0
    assert bed.value("vector(0) / vector(0)") is None  # NaN: a rate over no requests
    assert bed.value("scalar(vector(0) / vector(0))") is None


def test_bad_promql_is_a_query_error_with_prometheus_message(bed: Bed) -> None:
    with pytest.raises(QueryError, match=r"bad_data: .*parse error"):
        bed.value("sum(rate(istio_requests_total[5m])")


def test_a_query_of_several_series_is_a_query_error_naming_it(bed: Bed) -> None:
    with pytest.raises(QueryError, match=r"returned \d+ series .*aggregate"):
        bed.value('istio_requests_total{destination_workload="mockb-canary"}')


def test_unreachable_prometheus_is_unavailable_not_a_failed_check(tmp_path: Path) -> None:
    stopped = Prometheus(tmp_path, [], paths=ensure_prometheus(None))
    stopped.start()
    url = stopped.url
    assert query_value(url, "vector(1)") == 1.0
    stopped.stop()
    with pytest.raises(PrometheusUnavailable, match="cannot be reached"):
        query_value(url, "vector(1)")


class _Failing(BaseHTTPRequestHandler):
    """Answers every query as a Prometheus whose storage is not ready would: 503."""

    def do_POST(self) -> None:  # noqa: N802
        body = b'{"status":"error","errorType":"unavailable","error":"TSDB not ready"}'
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_error_is_unavailable() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(PrometheusUnavailable, match="503: unavailable: TSDB not ready"):
            query_value(f"http://127.0.0.1:{server.server_address[1]}", "vector(1)")
    finally:
        server.shutdown()
        server.server_close()


def test_a_prometheus_that_never_answers_times_out_within_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(PrometheusUnavailable, match="within 0.5s"):
            query_value(address, "vector(1)", timeout=0.5)
        assert time.monotonic() - started < 2.0


# --- a value, no traffic, no data: the three readings of a query, live ---------------------------


def test_a_workload_answering_only_5xx_reads_0_percent_not_no_value(bed: Bed) -> None:
    # The recorded decoy in namespace "other" answered 500 to every request: only its 5xx
    # series exist, so the success rate's numerator has none of its own.
    promql = render_query(builtin_query("istio", "request-success-rate"),
                          {**variables("5m"), "namespace": "other"})
    assert query_reading(bed.prometheus.url, promql, at=bed.recorded_end) == 0.0
    assert query_value(bed.prometheus.url, promql, at=bed.recorded_end) == 0.0


def test_a_lane_whose_requests_stopped_reads_no_traffic(bed: Bed, envoy_burst: Burst) -> None:
    # Scraped every second since the burst, the canary's counters stand still: 0/0 over 2 s.
    time.sleep(3)
    promql = render_query(builtin_query("envoy", "request-success-rate"), variables("2s"))
    answer = query_reading(bed.prometheus.url, promql)
    assert isinstance(answer, Silence) and answer.kind == "no-traffic", answer


def test_a_workload_never_counted_reads_no_traffic(bed: Bed) -> None:
    promql = render_query(builtin_query("istio", "request-success-rate"),
                          {**variables("5m"), "target": "nobody-canary"})
    answer = query_reading(bed.prometheus.url, promql, at=bed.recorded_end)
    assert isinstance(answer, Silence) and answer.kind == "no-traffic", answer


def test_series_with_no_samples_in_the_window_read_no_data(bed: Bed) -> None:
    # Ten minutes after the recorded series end, as after an outage of the scrapes: the 5 m
    # window has no sample, the hour before it has.
    promql = render_query(builtin_query("istio", "request-success-rate"), variables("5m"))
    answer = query_reading(bed.prometheus.url, promql, at=bed.recorded_end + 600)
    assert isinstance(answer, Silence) and answer.kind == "no-data", answer
    assert query_value(bed.prometheus.url, promql, at=bed.recorded_end + 600) is None


# --- the chart's Grafana dashboards over the same series ----------------------------------------

DASHBOARDS = dashboards()


def dashboard_query(dashboard: str, title: str, ref: str, interval: str) -> str:
    """One panel target's expression, variables filled in as Grafana fills them."""
    [panel] = [p for p in DASHBOARDS[dashboard]["panels"] if p["title"] == title]
    [expr] = [t["expr"] for t in panel["targets"] if t["refId"] == ref]
    values = {"__rate_interval": interval, "namespace": NAMESPACE, "service": SERVICE, "lane": LANE,
              "base": "base"}
    return re.sub(r"\$(__rate_interval|[a-z]+)\b", lambda m: values[m.group(1)], expr)


def series(bed: Bed, promql: str, at: float) -> dict[frozenset, float]:
    """Every series of an instant query at `at`, by its labels."""
    query = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{bed.prometheus.url}/api/v1/query?{query}", timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in answer["data"]["result"]}


def test_envoy_dashboards_show_each_lane_of_each_service(bed: Bed, envoy_burst: Burst) -> None:
    interval, at = envoy_burst.interval, envoy_burst.at

    def canary_lane(title: str) -> list[float]:
        found = series(bed, dashboard_query("lanes-overview-envoy.json", title, "A", interval), at)
        return [value for labels, value in found.items() if {("lane", LANE), ("service", SERVICE)} <= labels]

    assert canary_lane("Success rate") == [pytest.approx(95.0, abs=1e-6)]
    p99 = render_query(builtin_query("envoy", "request-duration"), variables(interval))
    assert canary_lane("p99 latency") == [pytest.approx(bed.value(p99, at=at), abs=1e-6)]
    canary = dashboard_query("lanes-release-envoy.json", "Success rate: canary vs base", "A", interval)
    base = dashboard_query("lanes-release-envoy.json", "Success rate: canary vs base", "B", interval)
    assert list(series(bed, canary, at).values()) == [pytest.approx(95.0, abs=1e-6)]
    assert series(bed, base, at) == {}, "the base lane got no requests"


def test_istio_dashboards_tell_the_canary_workload_from_the_base(bed: Bed) -> None:
    at = bed.recorded_end
    overview = series(bed, dashboard_query("lanes-overview-istio.json", "Success rate", "A", "5m"), at)
    by_workload = {dict(labels)["destination_workload"]: value for labels, value in overview.items()}
    assert by_workload == {CANARY: pytest.approx(95.0, abs=1e-9), "mockb": pytest.approx(50.0, abs=1e-9)}
    canary = dashboard_query("lanes-release-istio.json", "p99 latency: canary vs base", "A", "5m")
    assert list(series(bed, canary, at).values()) == [pytest.approx(CANARY_P99_MS, abs=1e-9)]
    base = dashboard_query("lanes-release-istio.json", "Success rate: canary vs base", "B", "5m")
    assert list(series(bed, base, at).values()) == [pytest.approx(50.0, abs=1e-9)]
