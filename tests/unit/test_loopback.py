"""Loopback blocks: no two callers, in one process or two, ever hand out the same addresses."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from lanes_testbed import loopback
from lanes_testbed.node.addresses import AddressPool


@pytest.fixture(autouse=True)
def own_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock folder and holdings of this test's own, so the test sees no other process's ranges."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(loopback, "_held", loopback._Holdings())


def in_other_process(code: str) -> str:
    """Run `code` (given `loopback`) in a fresh interpreter sharing our lock folder; its stdout."""
    script = f"from lanes_testbed import loopback\n{code}"
    return subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout.strip()


def test_callers_of_one_process_get_distinct_blocks_of_its_range_and_one_given_back_is_reused() -> None:
    blocks = [loopback.take_block() for _ in range(3)]

    assert len(set(blocks)) == 3
    assert len({b.rsplit(".", 1)[0] for b in blocks}) == 1
    loopback.give_back(blocks[1])
    assert loopback.take_block() == blocks[1]


def test_another_process_never_gets_a_block_of_a_range_held_here() -> None:
    block = loopback.take_block()

    assert in_other_process(f"print(loopback.take_block({block!r}))") == "None"
    theirs = in_other_process("print(loopback.take_block())")
    assert theirs.rsplit(".", 1)[0] != block.rsplit(".", 1)[0]


def test_range_zero_is_never_taken_unless_named() -> None:
    blocks = [loopback.take_block() for _ in range(300)]

    assert not any(ipaddress.ip_address(f"{b}.1") in loopback.FIXED for b in blocks)
    assert loopback.take_block("127.0.0") == "127.0.0"


def test_a_pool_takes_back_the_block_of_a_process_that_died() -> None:
    dead = in_other_process("print(loopback.take_block())")
    pool = AddressPool.own()

    assert pool.allocate([8000], prefer=f"{dead}.17") == f"{dead}.17"
    assert pool.allocate([8000], prefer="127.0.0.17") != "127.0.0.17"
    pool.close()
    assert loopback.take_block(dead) == dead
