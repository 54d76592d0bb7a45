"""The sidecar bootstrap: what istio-agent would hand istio-proxy, ADS only, from the local istiod."""

from __future__ import annotations

import re

from lanes_testbed.mesh.istiod import PROXY_LABEL, STATS_TAGS, sidecar_bootstrap


def test_a_sidecar_names_its_pod_and_where_it_binds_in_node_metadata() -> None:
    boot = sidecar_bootstrap(
        xds_address="127.0.0.1:15010", kind="sidecar", pod="mockb-canary-0", namespace="default",
        labels={"app": "mockb", "lane": "canary"}, pod_ip="127.9.0.3", address="127.9.0.13",
        egress="127.9.0.23", ports=[8000, 9090],
    )
    node = boot["node"]
    assert node["id"] == "sidecar~127.9.0.3~mockb-canary-0.default~default.svc.cluster.local"
    meta = node["metadata"]
    assert meta["LABELS"] == {"app": "mockb", "lane": "canary", PROXY_LABEL: "mockb-canary-0.default"}
    assert (meta["INTERCEPTION_MODE"], meta["ISTIO_VERSION"], meta["CLUSTER_ID"]) == ("NONE", "1.30", "Kubernetes")
    assert (meta["INSTANCE_IPS"], meta["LANES_BIND"], meta["LANES_EGRESS"], meta["LANES_PORTS"]) == (
        "127.9.0.3", "127.9.0.13", "127.9.0.23", "8000,9090")
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.9.0.13", "port_value": 15000}
    assert set(boot["dynamic_resources"]) == {"ads_config", "cds_config", "lds_config"}
    [xds] = boot["static_resources"]["clusters"]
    endpoint = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert endpoint == {"address": "127.0.0.1", "port_value": 15010}


def test_the_cluster_name_tag_holds_istios_whole_cluster_name() -> None:
    [rule] = STATS_TAGS
    for name, value in (
        ("cluster.outbound|8000|canary|mockb.default.svc.cluster.local.upstream_rq_200",
         "outbound|8000|canary|mockb.default.svc.cluster.local"),
        ("cluster.outbound|8000|canary|mockb.team-a.svc.cluster.local;.upstream_rq_200",
         "outbound|8000|canary|mockb.team-a.svc.cluster.local"),
    ):
        match = re.match(rule["regex"], name)
        assert match is not None and match.group(2) == value, name
        assert name.replace(match.group(1), "") == "cluster.upstream_rq_200"


def test_a_router_has_no_egress() -> None:
    boot = sidecar_bootstrap(
        xds_address="127.0.0.1:15010", kind="router", pod="istio-ingressgateway-0", namespace="istio-system",
        labels={"istio": "ingressgateway"}, pod_ip="127.9.0.30", address="127.9.0.30", egress=None, ports=[],
    )
    assert boot["node"]["id"].startswith("router~127.9.0.30~istio-ingressgateway-0.istio-system~")
    assert "LANES_EGRESS" not in boot["node"]["metadata"]
