"""Loopback addresses for pods, so every pod is its own endpoint on the same port.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a process can bind
127.1.0.23:8000 next to another on 127.1.0.24:8000 without any setup. A node's own pool is
.10-.250 of a /24 block that no other node or process has (see `lanes_testbed.loopback`), so
two nodes never hand out one address, even when they run side by side in parallel tests or
stacks; addresses some other program listens on are skipped as well.

The API server refuses loopback addresses in Endpoints and EndpointSlices, so
kube-controller-manager lists no endpoints for these pods: whoever needs them (the local
mesh) reads the pods' IPs and Ready conditions instead.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Iterable

from lanes_testbed import loopback

# The hosts of a block a pool hands out, as on 127.0.0.x, whose .1 is the host's own address.
FIRST_HOST = 10
LAST_HOST = 250


class PoolExhausted(RuntimeError):
    """Every address of the pool is taken."""


class AddressPool:
    """Hands out loopback addresses from an inclusive range, lowest free first."""

    def __init__(self, first: str, last: str) -> None:
        low, high = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
        if not (low.is_loopback and high.is_loopback and low <= high):
            raise ValueError(f"{first}-{last} is not a loopback range")
        self._addresses = [str(ipaddress.IPv4Address(n)) for n in range(int(low), int(high) + 1)]
        self._taken: set[str] = set()
        self._lock = threading.Lock()
        self._blocks: list[str] | None = None

    @classmethod
    def in_block(cls, block: str) -> AddressPool:
        """Hosts .10-.250 of `block` (its first three octets, `127.N.M`)."""
        return cls(f"{block}.{FIRST_HOST}", f"{block}.{LAST_HOST}")

    @classmethod
    def own(cls) -> AddressPool:
        """A pool over a block no other pool or process has, until `close()`.

        A pod's earlier address (`allocate`'s `prefer`) from another block is honoured too
        when that block is free: a node that takes over from one that died gives the pods back
        the addresses they had.
        """
        block = loopback.take_block()
        pool = cls.in_block(block)
        pool._blocks = [block]
        return pool

    def __len__(self) -> int:
        return len(self._addresses)

    @property
    def taken(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._taken)

    def allocate(self, ports: Iterable[int], prefer: str | None = None) -> str:
        """An address on which all of `ports` are free; `prefer` first (a pod's earlier IP).

        Raises:
            PoolExhausted: none is left.
        """
        ports = tuple(ports)
        with self._lock:
            if prefer is not None and prefer not in self._addresses:
                self._take_block_of(prefer)
            candidates = ([prefer] if prefer in self._addresses else []) + self._addresses
            for address in candidates:
                if address not in self._taken and all(bindable(address, p) for p in ports):
                    self._taken.add(address)
                    return address
        raise PoolExhausted(
            f"no address of {self._addresses[0]}-{self._addresses[-1]} is free "
            f"on port(s) {', '.join(map(str, ports))}"
        )

    def release(self, address: str) -> None:
        with self._lock:
            self._taken.discard(address)

    def close(self) -> None:
        """Give this pool's blocks back, once none of its addresses is in use any more."""
        with self._lock:
            blocks, self._blocks = self._blocks or [], None
        for block in blocks:
            loopback.give_back(block)

    def _take_block_of(self, address: str) -> None:
        """Add the block of `address` to an own pool when no one else has it."""
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return
        block, _, host = address.rpartition(".")
        if self._blocks is None or not ip.is_loopback or ip in loopback.FIXED \
                or not FIRST_HOST <= int(host) <= LAST_HOST:
            return
        if loopback.take_block(block) is not None:
            self._blocks.append(block)
            self._addresses += AddressPool.in_block(block)._addresses


def bindable(address: str, port: int) -> bool:
    """Whether nobody listens on (or has bound) `address:port`.

    SO_REUSEADDR, as the sample server sets it, so connections lingering in TIME_WAIT from an
    earlier pod on the same address do not count as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                return False
            raise
    return True
