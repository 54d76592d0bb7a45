"""Generated malformed input: every verb that reads files ends in exit 0 or 2, never a traceback.

A document of the sample has one value somewhere replaced by an arbitrary one (a string where a
mapping belongs, a list, a huge number, null...), or the file is arbitrary bytes. Whatever the
input, the CLI either renders it or refuses it with lines on stderr and nothing on stdout.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_cli import SAMPLE, invoke

DOCUMENTS = [d for f in ("app.yaml", "lanes.yaml") for d in yaml.safe_load_all((SAMPLE / f).read_text()) if d]

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a document, the document itself excluded."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = replaced(copy[path[0]], path[1:], value)
    return copy


@st.composite
def broken_inputs(draw: st.DrawFn) -> str:
    index = draw(st.integers(0, len(DOCUMENTS) - 1))
    doc = DOCUMENTS[index]
    path = draw(st.sampled_from(paths(doc)))
    docs = list(DOCUMENTS)
    docs[index] = replaced(doc, path, draw(VALUES))
    return yaml.safe_dump_all(docs)


def assert_clean(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2), result.stderr
    if result.exit_code == 2:
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert any(line.startswith("error: ") for line in lines)
        assert all(line.startswith(("error: ", "warning: ")) for line in lines), result.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_inputs())
def test_a_value_replaced_anywhere_renders_or_is_refused(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "input.yaml"
        file.write_text(text)
        for verb in ("render", "graph"):
            assert_clean(invoke(verb, "-f", file))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_are_refused_or_read(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "input.yaml"
        file.write_bytes(data)
        assert_clean(invoke("render", "-f", file))


def test_a_line_break_of_any_kind_in_a_value_stays_inside_its_error_line() -> None:
    # str.splitlines() breaks at U+0085 and U+2028 as at a newline; a kind holding one must
    # not split the error it is quoted in.
    for breaking in ("\x85", "\u2028", "\n"):
        docs = [dict(d) for d in DOCUMENTS]
        first = next(i for i, d in enumerate(docs) if str(d.get("apiVersion")).startswith("lanes.dev"))
        docs[first]["kind"] = f"Swim{breaking}Lane"
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / "input.yaml"
            file.write_text(yaml.safe_dump_all(docs))
            result = invoke("render", "-f", file)
            assert result.exit_code == 2, result.stderr
            assert_clean(result)
