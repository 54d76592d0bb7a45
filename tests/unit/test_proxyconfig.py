"""`kubectl lane dev proxy-config`'s tables, read from an Envoy config dump as Envoy writes it."""

from __future__ import annotations

import json
from pathlib import Path

from lanes_testbed.proxyconfig import cluster_rows, format_table, listener_rows, route_rows, sidecars

ROUTES = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
CLUSTERS = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
LISTENERS = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
HOST = "mockb.default.svc.cluster.local"

DUMP = {"configs": [
    {"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"},
    {"@type": LISTENERS, "dynamic_listeners": [{"name": "127.9.1.10_8000", "active_state": {
        "listener": {"name": "127.9.1.10_8000",
                     "address": {"socket_address": {"address": "127.9.1.10", "port_value": 8000}}}}}]},
    {"@type": CLUSTERS, "dynamic_active_clusters": [
        {"cluster": {"name": f"outbound|8000|canary|{HOST}", "type": "EDS"}},
        {"cluster": {"name": "BlackHoleCluster", "type": "STATIC"}}]},
    {"@type": ROUTES, "dynamic_route_configs": [{"route_config": {"name": "8000", "virtual_hosts": [
        {"name": f"{HOST}:8000", "domains": [HOST, "mockb", "mockb.default"], "routes": [
            {"match": {"prefix": "/", "headers": [
                {"name": "x-asm-prefer-tag", "string_match": {"exact": "canary"}}]},
             "route": {"cluster": f"outbound|8000|canary|{HOST}"}},
            {"match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [
                {"name": f"outbound|8000|base|{HOST}", "weight": 70},
                {"name": f"outbound|8000|canary|{HOST}", "weight": 30}]}}},
        ]}]}}]},
]}


def test_routes_show_each_match_and_where_it_goes() -> None:
    assert route_rows(DUMP) == [
        ("8000", f"{HOST}:8000", f"{HOST}, mockb +1 more", "prefix /; x-asm-prefer-tag exact canary",
         f"outbound|8000|canary|{HOST}"),
        ("8000", f"{HOST}:8000", f"{HOST}, mockb +1 more", "prefix /",
         f"outbound|8000|base|{HOST} 70%, outbound|8000|canary|{HOST} 30%"),
    ]


def test_clusters_and_listeners_are_listed_by_name() -> None:
    assert cluster_rows(DUMP) == [("BlackHoleCluster", "STATIC"), (f"outbound|8000|canary|{HOST}", "EDS")]
    assert listener_rows(DUMP) == [("127.9.1.10_8000", "127.9.1.10:8000")]


def test_the_table_lines_up_and_sidecars_come_from_the_nodes_file(tmp_path: Path) -> None:
    assert format_table(("A", "BB"), [("xyz", "1")]) == "A    BB\nxyz  1"
    path = tmp_path / "sidecars.json"
    path.write_text(json.dumps([{"targets": ["127.9.1.10:15000"],
                                 "labels": {"namespace": "default", "pod": "mockb-1"}}]))
    assert sidecars(path) == [{"pod": "mockb-1", "namespace": "default", "admin": "127.9.1.10:15000"}]
    assert sidecars(tmp_path / "missing.json") == []
