"""Leader election on a `coordination.k8s.io` Lease, as client-go's leaderelection does it.

Every replica watches and keeps its indices warm, and every replica serves the admission
webhook (it needs no leader, so deploys are held while leadership changes hands); only the
holder of the Lease runs the reconcile workers, and so only it writes. A standby takes the
Lease once the holder has not renewed it for `lease_duration` seconds, measured on the
standby's own clock from when it last saw the Lease change (so clock skew between machines
does not matter), and then resumes every release from its status.

A leader that cannot renew within `renew_deadline` stops writing at once (the write fence
on the API client closes) and exits, as controller-runtime's managers do: a restarted
process comes back as a standby with fresh state. A leader stopped gracefully releases the
Lease, so a standby takes over within one `retry_period` instead of a whole duration.

The defaults, 15 s / 10 s / 2 s, are client-go's and controller-runtime's: the standby takes
over at most `lease_duration + retry_period` (17 s) after the leader's last renewal; a leader
gets five tries to renew before its deadline, riding out a slow API server; and renewals
cost one small write every 2 s, on a client of their own, apart from the reconcile writes
the operator counts.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lanes.kube.lease import LeaseApi, LeaseRecord

log = logging.getLogger("lanes.operator.leader")

LEASE_NAME = "lanes-operator"


def default_identity() -> str:
    """The pod's name when the chart passes it, else host and a random tail (client-go's)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Election:
    """Which Lease, who we are, and the timings (seconds)."""

    namespace: str = "default"
    name: str = LEASE_NAME
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                f"leader election: lease duration ({self.lease_duration:g}s) must exceed the renew "
                f"deadline ({self.renew_deadline:g}s), which must exceed the retry period "
                f"({self.retry_period:g}s), which must be above 0"
            )


def next_record(
    current: LeaseRecord, identity: str, duration_s: int, expired: bool, now: datetime.datetime
) -> LeaseRecord | None:
    """What to write to renew or take the Lease, or None while another replica holds it.

    A free Lease (no holder, as a graceful leader leaves it) or an expired one is taken; our
    own is renewed, keeping its acquisition time and count of transitions.
    """
    if current.holder == identity:
        return LeaseRecord(identity, duration_s, current.acquired or now, now, current.transitions,
                           current.version)
    if current.holder and not expired:
        return None
    return LeaseRecord(identity, duration_s, now, now, current.transitions + 1, current.version)


@dataclass(eq=False)
class LeaderElector:
    """Acquire, renew and release one Lease; `leading` says whether writes are allowed now."""

    leases: LeaseApi
    election: Election
    on_started: Callable[[], Awaitable[None]]
    on_lost: Callable[[], None]
    clock: Callable[[], float] = time.monotonic
    _leading: bool = field(default=False, init=False)
    _renewed_at: float = field(default=float("-inf"), init=False)
    _observed: tuple | None = field(default=None, init=False)
    _observed_at: float = field(default=0.0, init=False)

    @property
    def leading(self) -> bool:
        """True while we hold the Lease and renewed it within the renew deadline."""
        return self._leading and self.clock() - self._renewed_at < self.election.renew_deadline

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking I/O); True if we hold the Lease after it."""
        election = self.election
        timeout = max(1.0, election.retry_period)
        started = self.clock()
        now = datetime.datetime.now(datetime.UTC)
        duration = max(1, round(election.lease_duration))
        current = self.leases.read(timeout)
        if current is None:
            made = self.leases.create(LeaseRecord(election.identity, duration, now, now, 0), timeout)
            if made is not None:
                self._renewed_at = started
            return made is not None
        if current.essence != self._observed:
            self._observed, self._observed_at = current.essence, started
        expired = started - self._observed_at >= (current.duration_s or duration)
        wanted = next_record(current, election.identity, duration, expired, now)
        if wanted is None:
            self._leading = False  # another replica holds it: stop writing at once
            return False
        written = self.leases.replace(wanted, timeout)
        if written is None:
            return False
        self._observed, self._observed_at = written.essence, started
        self._renewed_at = started
        return True

    def _until_next_try(self) -> float:
        """A retry period, or less when the holder's Lease expires sooner: try right then.

        Polling on a fixed period alone could find an expired Lease up to a whole period late.
        """
        duration = self._observed[1] if self._observed else self.election.lease_duration
        expires_in = self._observed_at + (duration or self.election.lease_duration) - self.clock()
        return min(self.election.retry_period, max(0.01, expires_in + 0.01))

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire_or_renew)
        except Exception as error:  # noqa: BLE001 (the API server may be away; try again)
            log.warning("leader election: lease %s/%s not reached: %s",
                        self.election.namespace, self.election.name, error)
            return False

    async def run(self) -> None:
        """Wait for the Lease, lead, and renew it until it is lost."""
        election = self.election
        log.info("leader election: %s waiting for lease %s/%s", election.identity,
                 election.namespace, election.name)
        while not await self._attempt():
            await asyncio.sleep(self._until_next_try())
        self._leading = True
        log.info("leader election: %s now leads (lease %s/%s)", election.identity,
                 election.namespace, election.name)
        await self.on_started()
        while True:
            await asyncio.sleep(election.retry_period)
            if await self._attempt():
                continue
            if not self.leading:
                self._leading = False
                log.error("leader election: %s lost lease %s/%s; stopping", election.identity,
                          election.namespace, election.name)
                self.on_lost()
                return

    def release(self) -> None:
        """Give the Lease up (blocking I/O), so a standby takes it at once; writes stop first."""
        if not self._leading:
            return
        self._leading = False
        try:
            current = self.leases.read(max(1.0, self.election.retry_period))
            if current is not None and current.holder == self.election.identity:
                now = datetime.datetime.now(datetime.UTC)
                self.leases.replace(LeaseRecord(None, 1, now, now, current.transitions, current.version))
                log.info("leader election: %s released lease %s/%s", self.election.identity,
                         self.election.namespace, self.election.name)
        except Exception as error:  # noqa: BLE001 (it expires by itself)
            log.warning("leader election: could not release the lease: %s", error)
