"""Loopback addresses for pods, so every pod is its own endpoint on the same port.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a process can bind
127.0.0.23:8000 next to another on 127.0.0.24:8000 without any setup. Addresses another
program (or another local node) already listens on are skipped when handing one out.

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

DEFAULT_FIRST = "127.0.0.10"
DEFAULT_LAST = "127.0.0.250"


class PoolExhausted(RuntimeError):
    """Every address of the pool is taken."""


class AddressPool:
    """Hands out loopback addresses from an inclusive range, lowest free first."""

    def __init__(self, first: str = DEFAULT_FIRST, last: str = DEFAULT_LAST) -> None:
        low, high = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
        if not (low.is_loopback and high.is_loopback and low <= high):
            raise ValueError(f"{first}-{last} is not a loopback range")
        self._addresses = [str(ipaddress.IPv4Address(n)) for n in range(int(low), int(high) + 1)]
        self._taken: set[str] = set()
        self._lock = threading.Lock()

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
        candidates = ([prefer] if prefer in self._addresses else []) + self._addresses
        with self._lock:
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
