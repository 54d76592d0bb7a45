"""kubectl lane trace: the tree and JSON views of a request's path, and header parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console, RenderableType

from lanes.api.errors import InvalidSpec
from lanes.cli.trace import format_trace, parse_headers
from lanes.graph import Hop, Route, Trace

from .test_cli import SAMPLE, invoke


def render_text(renderable: RenderableType) -> str:
    console = Console(width=120, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


def write_observed(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "observed.yaml"
    path.write_text(text)
    return path


def test_canary_request_before_any_canary_pods_falls_back_everywhere() -> None:
    result = invoke("trace", "-f", SAMPLE, "-H", "x-asm-prefer-tag: canary", "--path", "/mock")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "group rollout (rule_based): request /mock  x-asm-prefer-tag: canary"
    assert lines[1] == "gateway → lane canary (rule canary)"
    assert lines[2] == "└── default/mocka  → base  fallback: no canary pods"
    assert lines[3].strip() == "└── default/mockb  → base  fallback: no canary pods"
    assert lines[4].strip() == "└── default/mockc  → base  fallback: no canary pods"


def test_observed_canary_pods_serve_their_hop(tmp_path: Path) -> None:
    observed = write_observed(tmp_path, "ready: {default/mockb: [base, canary]}\n")
    result = invoke(
        "trace", "-f", SAMPLE, "-H", "X-Asm-Prefer-Tag: canary", "--path", "/mock",
        "--observed", observed,
    )
    assert result.exit_code == 0, result.output
    assert "default/mockb  → canary\n" in result.stdout
    assert "default/mocka  → base  fallback" in result.stdout


def test_json_output_carries_every_hop(tmp_path: Path) -> None:
    observed = write_observed(tmp_path, "ready: {default/mocka: [base, canary]}\n")
    result = invoke(
        "trace", "-f", SAMPLE, "-H", "x-asm-prefer-tag: canary", "--path", "/mock",
        "--observed", observed, "-o", "json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["routed"] is True
    route = data["routes"][0]
    assert (route["lane"], route["rule"], route["weight"]) == ("canary", "canary", None)
    assert [(h["service"], h["subset"], h["fallback"]) for h in route["hops"]] == [
        ("default/mocka", "canary", False),
        ("default/mockb", "base", True),
        ("default/mockc", "base", True),
    ]


UNROUTED = {
    "wrong-path": ["-H", "x-asm-prefer-tag: base", "--path", "/other"],
    "no-header": ["--path", "/mock"],
    "unknown-lane": ["-H", "x-asm-prefer-tag: blue", "--path", "/mock"],
}


@pytest.mark.parametrize("args", UNROUTED.values(), ids=UNROUTED.keys())
def test_unrouted_requests_say_so(args: list[str]) -> None:
    result = invoke("trace", "-f", SAMPLE, *args)
    assert result.exit_code == 0
    assert "note: no route at the gateway" in result.stdout
    assert "gateway →" not in result.stdout
    data = json.loads(invoke("trace", "-f", SAMPLE, *args, "-o", "json").stdout)
    assert data["routed"] is False
    assert data["routes"] == []


def test_findings_go_to_stderr(tmp_path: Path) -> None:
    observed = write_observed(tmp_path, "edges: [[default/mockc, default/redis]]\n")
    result = invoke(
        "trace", "-f", SAMPLE, "-H", "x-asm-prefer-tag: base", "--path", "/mock",
        "--observed", observed, "-o", "json",
    )
    assert "warning: default/mockc: calls default/redis (observed)" in result.stderr
    hops = json.loads(result.stdout)["routes"][0]["hops"]
    assert hops[-1]["service"] == "default/redis"
    assert hops[-1]["subset"] is None


def test_several_groups_need_a_choice(tmp_path: Path) -> None:
    text = "".join(f.read_text() + "\n---\n" for f in sorted(SAMPLE.glob("*.yaml")))
    other = (
        text.replace("name: rollout", "name: second")
        .replace("swimlane-group: rollout", "swimlane-group: second")
        .replace("namespace: default", "namespace: second")
        .replace(".default.svc", ".second.svc")
    )
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(other)
    args = ["trace", "-f", tmp_path, "-H", "x-asm-prefer-tag: base", "--path", "/mock"]
    unchosen = invoke(*args)
    assert unchosen.exit_code == 2
    assert "--group: the input holds groups rollout, second" in unchosen.stderr
    chosen = invoke(*args, "--group", "second")
    assert chosen.exit_code == 0, chosen.output
    assert chosen.stdout.startswith("group second")


HEADERS = {
    "curl-style": (["x-lane: canary"], {"x-lane": "canary"}),
    "names-lower-cased": (["X-Lane: Canary"], {"x-lane": "Canary"}),
    "no-space": (["x-lane:canary"], {"x-lane": "canary"}),
    "colon-in-value": (["x-url: http://a:8000/"], {"x-url": "http://a:8000/"}),
    "empty-value": (["x-empty:"], {"x-empty": ""}),
    "several": (["a: 1", "b: 2"], {"a": "1", "b": "2"}),
}


@pytest.mark.parametrize("raw,expected", HEADERS.values(), ids=HEADERS.keys())
def test_parse_headers(raw: list[str], expected: dict[str, str]) -> None:
    assert parse_headers(raw) == expected


@pytest.mark.parametrize("raw", ["x-lane", ": value", ""], ids=["no-colon", "no-name", "empty"])
def test_parse_headers_rejects(raw: str) -> None:
    with pytest.raises(InvalidSpec, match="expected 'name: value'"):
        parse_headers([raw])


def test_format_trace_shows_weights_outside_hops_and_notes() -> None:
    hops = (
        Hop("web/front", None, 0, "canary", False, True),
        Hop("web/cart", "web/front", 1, "base", True, True, note="lane canary has no web/cart"),
        Hop("web/x", "web/front", 1, None, False, False),
        Hop("web/db", "web/cart", 2, None, False, False, note="outside the group"),
        Hop("web/ads", "web/x", 2, "base", True, True, via="web/x"),
    )
    trace = Trace(
        group="shop",
        path="/",
        headers={},
        strategy="weighted",
        routes=(Route("canary", hops, weight=20),),
        notes=("lane weights add up to 20%, not 100%",),
    )
    assert render_text(format_trace(trace)).splitlines() == [
        "group shop (weighted): request /",
        "gateway → lane canary (20% by weight)",
        "└── web/front  → canary",
        "    ├── web/cart  → base  fallback: no canary pods",
        "    │   └── web/db  not lane-routed (outside the group)",
        "    └── web/x  not lane-routed (outside the group)",
        "        └── web/ads  → base  fallback: no canary pods  "
        "via web/x, which must forward the lane header",
        "note: lane weights add up to 20%, not 100%",
    ]


header_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,20}", fullmatch=True)
header_values = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30)


@given(name=header_names, value=header_values)
def test_parse_headers_round_trips_curl_syntax(name: str, value: str) -> None:
    assert parse_headers([f"{name}: {value}"]) == {name.lower(): value}
