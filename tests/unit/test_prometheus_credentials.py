"""Prometheus credentials from a Secret: which Secret a metric's query uses, the header it
becomes, and a reading naming the field when the Secret or its keys are missing."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import httpx
import pytest

from lanes.analysis.verdict import Reading, judge
from lanes.api.analysis import Analysis, MetricTemplate
from lanes.operator.analysis import CheckContext, read_metrics, secret_keys
from lanes.operator.providers.prometheus import QueryError, query_value

CONTEXT = CheckContext(namespace="shop", target="mockb-canary", service="mockb", lane="canary")
KEY = ("shop", "errors")


def template(secret: str | None = "prom-auth", address: str | None = "http://prom:9090") -> MetricTemplate:
    provider: dict = {"type": "prometheus"}
    if address:
        provider["address"] = address
    if secret:
        provider["secretRef"] = {"name": secret}
    return MetricTemplate.model_validate({
        "metadata": {"name": "errors", "namespace": "shop"},
        "spec": {"provider": provider, "query": "sum(up)"},
    })


def analysis(prometheus: dict | None = None) -> Analysis:
    spec: dict = {"metrics": [{"name": "errors", "templateRef": {"name": "errors"},
                               "thresholdRange": {"max": 1}}]}
    if prometheus:
        spec["prometheus"] = prometheus
    return Analysis.model_validate(spec)


class Recorder:
    """A provider answering 1.0 and recording the headers each query came with."""

    def __init__(self) -> None:
        self.headers: list[dict | None] = []

    def __call__(self, address: str, promql: str, headers: dict | None = None) -> float:
        self.headers.append(headers)
        return 1.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("data", "header"),
    [
        pytest.param({"token": b"abc\n"}, "Bearer abc", id="token-bearer"),
        pytest.param({"username": b"lanes", "password": b"pw"}, basic("lanes", "pw"), id="basic"),
        pytest.param({"token": b"abc", "username": b"u", "password": b"p"}, "Bearer abc", id="token-first"),
    ],
)
def test_the_templates_secret_becomes_the_authorization_header(data: dict, header: str) -> None:
    ask = Recorder()
    readings = read_metrics(analysis(), CONTEXT, {KEY: template()}, ask,
                            secrets={("shop", "prom-auth"): data})
    assert readings["errors"] == Reading("errors", 1.0)
    assert ask.headers == [{"Authorization": header}]


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        pytest.param({}, "MetricTemplate shop/errors spec.provider.secretRef: Secret shop/prom-auth "
                         "not found", id="missing-secret"),
        pytest.param({("shop", "prom-auth"): {"username": b"u"}},
                     "MetricTemplate shop/errors spec.provider.secretRef: Secret shop/prom-auth has no "
                     "key token, nor username and password", id="missing-key"),
        pytest.param({("shop", "prom-auth"): "Secret shop/prom-auth may not be read"},
                     "MetricTemplate shop/errors spec.provider.secretRef: Secret shop/prom-auth may "
                     "not be read", id="forbidden"),
    ],
)
def test_a_missing_secret_or_key_is_an_error_naming_the_field_and_nothing_is_asked(
    secrets: dict, message: str
) -> None:
    ask = Recorder()
    readings = read_metrics(analysis(), CONTEXT, {KEY: template()}, ask, secrets=secrets)
    assert readings["errors"] == Reading("errors", error=message)
    assert ask.headers == []


def test_the_analysis_secret_goes_with_the_analysis_address_only() -> None:
    ask = Recorder()
    prometheus = {"address": "http://prom:9090", "secretRef": {"name": "shared"}}
    secrets = {("shop", "shared"): {"token": b"t"}}
    read_metrics(analysis(prometheus), CONTEXT, {KEY: template(None, None)}, ask, secrets=secrets)
    assert ask.headers == [{"Authorization": "Bearer t"}]
    # A template naming its own Prometheus is not sent the analysis's credentials.
    read_metrics(analysis(prometheus), CONTEXT, {KEY: template(None)}, ask, secrets=secrets)
    assert ask.headers[-1] is None
    assert secret_keys(analysis(prometheus), {KEY: template(None)}, "shop") == []
    assert secret_keys(analysis(prometheus), {KEY: template()}, "shop") == [("shop", "prom-auth")]


def test_a_query_without_credentials_is_sent_without_headers() -> None:
    ask = Recorder()
    read_metrics(analysis(), CONTEXT, {KEY: template(None)}, ask)
    assert ask.headers == [None]


@pytest.mark.parametrize(("headers", "said"), [
    pytest.param(None, "it asks for credentials", id="none-sent"),
    pytest.param({"Authorization": "Bearer wrong"}, "the credentials sent were refused", id="refused"),
])
def test_a_prometheus_refusing_the_credentials_is_a_query_error_saying_so(
    headers: dict | None, said: str
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        assert request.headers.get("Authorization") == (headers or {}).get("Authorization")
        return httpx.Response(401, text="Unauthorized")

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(QueryError, match=f"answered 401: {said}"):
            query_value("http://prom:9090", "up", client=client, headers=headers)


def test_a_missing_secret_fails_the_check_with_the_field_in_the_analysis_message() -> None:
    readings = read_metrics(analysis(), CONTEXT, {KEY: template()}, Recorder(), secrets={})
    judged = judge(analysis(), None, readings, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert judged.verdict == "halt"
    assert "spec.provider.secretRef: Secret shop/prom-auth not found" in judged.status.message
    assert "spec.provider.secretRef" in judged.events[0].message
