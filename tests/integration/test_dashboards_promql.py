"""Every PromQL expression of the chart's Grafana dashboards parses: each is sent to a real
Prometheus (Debian's, `lanes_testbed.prometheus`) over an empty TSDB, whose `/api/v1/query`
rejects bad PromQL with `errorType: bad_data`; promtool has no expression checker of its own."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from lanes.operator.dashboards import SOURCES, expressions
from lanes_testbed.prometheus import Prometheus, ensure_prometheus

pytestmark = pytest.mark.integration

# What Grafana puts in place of each variable before it sends a query; a multi-value variable
# inside a regex becomes an alternation.
VALUES = {"__rate_interval": "1m", "namespace": "team-a", "release": "seed", "service": "mocka|mockb",
          "lane": "canary", "base": "base", "datasource": "prometheus"}
FOLDER = Path(__file__).resolve().parents[2] / "charts" / "lanes" / "dashboards"
CASES = [pytest.param(expr, id=f"{path.stem}-{number}")
         for path in sorted(FOLDER.glob("*.json"))
         for number, expr in enumerate(expressions(json.loads(path.read_text())))]


def as_grafana_sends(expr: str) -> str:
    """`expr` with each dashboard variable replaced by a value, as Grafana interpolates it."""
    return re.sub(r"\$(__rate_interval|[a-z]+)\b", lambda m: VALUES[m.group(1)], expr)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory):
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), [], paths=ensure_prometheus(None))
    server.start()
    yield server
    server.stop()


def query(prometheus: Prometheus, expr: str) -> dict:
    url = f"{prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        return json.load(error)


def test_a_bad_expression_is_rejected(prometheus: Prometheus) -> None:
    answer = query(prometheus, "sum by (le (rate(x[1m]))")
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"


@pytest.mark.parametrize("expr", CASES)
def test_every_dashboard_expression_parses(prometheus: Prometheus, expr: str) -> None:
    sent = as_grafana_sends(expr)
    answer = query(prometheus, sent)
    assert answer["status"] == "success", f"{answer.get('errorType')}: {answer.get('error')}\n{sent}"


def test_envoy_series_get_their_lane_and_service_from_the_cluster_name(prometheus: Prometheus) -> None:
    cluster = 'label_replace(vector(1), "cluster_name", "outbound|8000|canary-x|mockb.team-a.svc.cluster.local", "", "")'
    answer = query(prometheus, SOURCES["envoy"].relabel(cluster))
    [result] = answer["data"]["result"]
    assert (result["metric"]["lane"], result["metric"]["service"]) == ("canary-x", "mockb")


def reference_examples() -> list[str]:
    """The PromQL examples of the metrics reference, one per `# comment` heading."""
    text = (FOLDER.parents[2] / "docs" / "reference" / "metrics.md").read_text()
    found = []
    for block in re.findall(r"```promql\n(.*?)```", text, re.DOTALL):
        found += [part.strip() for part in re.split(r"^#.*$", block, flags=re.MULTILINE) if part.strip()]
    return found


def test_the_metrics_reference_examples_parse(prometheus: Prometheus) -> None:
    examples = reference_examples()
    assert len(examples) >= 2
    for expr in examples:
        answer = query(prometheus, expr)
        assert answer["status"] == "success", f"{answer.get('error')}\n{expr}"
