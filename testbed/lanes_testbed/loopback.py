"""Loopback blocks: which 127.x addresses a caller may hand out, so none is handed out twice.

Linux routes all of 127.0.0.0/8 to the loopback interface, so pods (the local node's, the
mesh's sample services) each get an address of their own without any setup. Probing whether
an address is free is not enough when two processes hand addresses out at once (pytest-xdist
workers, two `kubectl lane dev up` stacks): both can see one free and both take it.

So addresses are handed out by /24 block, `127.N.M`, and a block has one user at a time:

- Across processes, by range: a process using range N (127.N.0.0/16) holds an exclusive
  `flock` on `${XDG_CACHE_HOME:-~/.cache}/lanes/loopback/N.lock`. The kernel drops it when
  the process exits, however it exits, so nothing stale is left to clean up. A process takes
  one range of its own, at random among the free ones, on first use; at random so that a
  range given up by a node that died is unlikely to go to another process before the node's
  successor takes its pods back (see `take_block` with a block named).
- Within a process, by block: each caller (a node's address pool, a set of mesh pods) takes
  a block no other caller of the process has, and gives it back when done.

Range 0, 127.0.0.0/16, is never taken at random: fixed listeners live there (the control plane,
Envoy and Prometheus on 127.0.0.1 with kernel-chosen ports). A caller that wants its pods on
127.0.0.x names a block of it, and may wait while another process holds the range.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import random
import threading
from pathlib import Path
from typing import IO

from lanes_testbed.binaries import cache_root

AUTOMATIC = range(1, 256)
BLOCKS = range(256)
# Range 0: the host's own 127.0.0.1 and whoever names a block of it.
FIXED = ipaddress.ip_network("127.0.0.0/16")


class LoopbackBusy(RuntimeError):
    """No loopback range is free: every one is held by a live process."""


def lock_dir() -> Path:
    return cache_root() / "loopback"


class _Holdings:
    """The ranges this process holds, and which of their blocks its callers have."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.pid = os.getpid()
        self.own: int | None = None
        self.locks: dict[int, IO[str]] = {}
        self.in_use: set[tuple[int, int]] = set()

    def forked(self) -> bool:
        # A forked child shares its parent's locks; it must take ranges of its own.
        return self.pid != os.getpid()


_held = _Holdings()


def take_block(block: str | None = None, *, wait: bool = False) -> str | None:
    """A /24 block, `127.N.M`, for the caller alone until `give_back(block)` or the process ends.

    Without `block`: the lowest free block of this process's own range (taken on first use),
    or of a further range once all 256 are in use; never None.
    With `block` (say, the block of a pod's earlier address): that block, or None when another
    caller of this process has it or another process holds its range; with `wait`, waits for
    the other process instead.

    Raises:
        LoopbackBusy: every range is held by other processes.
        ValueError: `block` is not a 127.N.M block.
    """
    global _held
    with _held.guard:
        if _held.forked():
            _held = _Holdings()
        if block is not None:
            return _take_named(*_parse(block), wait=wait)
        if _held.own is None:
            _held.own = _claim_free_range()
        for number in (_held.own, *(n for n in _held.locks if n in AUTOMATIC and n != _held.own)):
            for third in BLOCKS:
                if (number, third) not in _held.in_use:
                    _held.in_use.add((number, third))
                    return f"127.{number}.{third}"
        number = _claim_free_range()
        _held.in_use.add((number, 0))
        return f"127.{number}.0"


def give_back(block: str) -> None:
    """Let other callers have `block`; a range other than the process's own goes back when unused."""
    number, third = _parse(block)
    with _held.guard:
        if _held.forked():
            return
        _held.in_use.discard((number, third))
        if number != _held.own and not any(n == number for n, _ in _held.in_use):
            lock = _held.locks.pop(number, None)
            if lock is not None:
                lock.close()


def _take_named(number: int, third: int, *, wait: bool) -> str | None:
    if number not in _held.locks:
        lock = _lock_range(number, wait=wait)
        if lock is None:
            return None
        _held.locks[number] = lock
    if (number, third) in _held.in_use:
        return None
    _held.in_use.add((number, third))
    return f"127.{number}.{third}"


def _claim_free_range() -> int:
    for number in random.sample(AUTOMATIC, len(AUTOMATIC)):
        if number in _held.locks:
            continue
        lock = _lock_range(number, wait=False)
        if lock is not None:
            _held.locks[number] = lock
            return number
    raise LoopbackBusy(f"every range 127.N.0.0/16 is held by another process (locks in {lock_dir()})")


def _lock_range(number: int, *, wait: bool) -> IO[str] | None:
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    lock = (directory / f"{number}.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        lock.close()
        return None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _parse(block: str) -> tuple[int, int]:
    parts = block.split(".")
    if len(parts) != 3 or parts[0] != "127" or not all(p.isdigit() and int(p) < 256 for p in parts[1:]):
        raise ValueError(f"{block!r} is not a loopback block 127.N.M")
    return int(parts[1]), int(parts[2])
