"""The local stack's wiring of Prometheus: what it scrapes, how the operator is told, what `dev up` prints."""

from __future__ import annotations

import sys
from pathlib import Path

from lanes_testbed.prometheus import Prometheus
from lanes_testbed.stack import METRIC_SOURCE, operator_argv, scrape_targets
from lanes_testbed.stackd import exports


def test_the_operator_gets_a_loopback_metrics_port_the_prometheus_url_and_the_envoy_source() -> None:
    argv = operator_argv(Path("/state/kubeconfig"), 40123, "http://127.0.0.1:40124")
    assert argv[:3] == [sys.executable, "-m", "lanes.operator"]
    assert argv[3:] == ["--kubeconfig", "/state/kubeconfig", "--metrics-port", "40123",
                        "--metrics-host", "127.0.0.1", "--prometheus-url", "http://127.0.0.1:40124",
                        "--metric-source", "envoy"]
    assert METRIC_SOURCE == "envoy"


def test_prometheus_scrapes_every_proxys_admin_stats_and_the_operator_metrics(tmp_path: Path) -> None:
    sidecars = tmp_path / "sidecars.json"
    targets = scrape_targets("127.9.0.10:15000", sidecars, 40123)
    assert [(t.job, t.address, t.metrics_path, t.file) for t in targets] == [
        ("envoy", "127.9.0.10:15000", "/stats/prometheus", None),
        ("envoy", "", "/stats/prometheus", sidecars),
        ("lanes-operator", "127.0.0.1:40123", "/metrics", None),
    ]
    envoy, operator = Prometheus(tmp_path, targets).config()["scrape_configs"]
    assert envoy["job_name"] == "envoy" and operator["job_name"] == "lanes-operator"
    assert envoy["static_configs"] == [{"targets": ["127.9.0.10:15000"], "labels": {"pod": "istio-ingressgateway"}}]
    assert envoy["file_sd_configs"] == [{"files": [str(sidecars)], "refresh_interval": "5s"}]


def test_exports_name_the_prometheus_after_the_gateway() -> None:
    info = {"kubeconfig": "/s/kubeconfig", "gateway_url": "http://127.0.0.1:8080",
            "prometheus_url": "http://127.0.0.1:9999"}
    assert exports(info).splitlines() == [
        "export KUBECONFIG=/s/kubeconfig", "export LANES_GATEWAY=http://127.0.0.1:8080",
        "export LANES_PROMETHEUS=http://127.0.0.1:9999"]


def test_a_stack_started_before_prometheus_existed_exports_no_prometheus_line() -> None:
    info = {"kubeconfig": "/s/kubeconfig", "gateway_url": "http://127.0.0.1:8080"}
    assert exports(info).splitlines() == [
        "export KUBECONFIG=/s/kubeconfig", "export LANES_GATEWAY=http://127.0.0.1:8080"]
