"""The operator image builds the trace-affinity module with the local build's command, from
the project's own source, and carries it where the chart points the operator."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

from lanes_testbed.wasm import BUILD_FLAGS, BUILT_PATH, MODULE_DIR, TARGET

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (instruction, arguments), continuation lines joined, comments left out."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip():
            op, _, args = line.strip().partition(" ")
            found.append((op.upper(), " ".join(args.split())))
    return found


def module_build() -> tuple[dict[str, str], list[str]]:
    """The build stage's cargo command: its environment and its words."""
    [run] = [args for op, args in instructions() if op == "RUN" and "cargo build" in args]
    words = shlex.split(run)
    env = dict(w.split("=", 1) for w in itertools.takewhile(lambda w: "=" in w, words))
    return env, words[len(env):]


def test_the_image_builds_the_module_as_the_local_build_does() -> None:
    env, command = module_build()
    assert set(env) == {"CARGO_TARGET_DIR"}
    assert command[:2] == ["cargo", "build"]
    assert tuple(command[2:]) == BUILD_FLAGS
    assert ("RUN", f"rustup target add {TARGET}") in instructions()


def test_the_build_stage_copies_the_modules_own_source() -> None:
    source = MODULE_DIR.relative_to(ROOT).as_posix()
    assert ("COPY", f"{source} ./") in instructions()


def test_the_image_carries_the_module_where_the_chart_points_the_operator() -> None:
    helpers = (ROOT / "charts" / "lanes" / "templates" / "_helpers.tpl").read_text()
    path = re.search(r'define "lanes\.modulePath" -}}(\S+?){{', helpers).group(1)
    env, _ = module_build()
    built = f"{env['CARGO_TARGET_DIR']}/{BUILT_PATH}"
    copies = [args.split() for op, args in instructions() if op == "COPY" and args.startswith("--from=")]
    assert [c[1:] for c in copies] == [[built, path]]
