"""Leader election's decisions: when a Lease is taken, renewed, left alone or lost."""

from __future__ import annotations

import datetime

import pytest

from lanes.kube.lease import LeaseRecord
from lanes.operator.leader import Election, LeaderElector, next_record

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    "holder, expired, taken",
    [
        pytest.param("me", False, True, id="ours-renewed"),
        pytest.param("other", False, False, id="held-by-another"),
        pytest.param("other", True, True, id="expired-taken"),
        pytest.param(None, False, True, id="released-taken-at-once"),
    ],
)
def test_next_record(holder: str | None, expired: bool, taken: bool) -> None:
    current = LeaseRecord(holder, 15, NOW - datetime.timedelta(minutes=1), NOW, 3, "7")
    wanted = next_record(current, "me", 15, expired, NOW)
    assert (wanted is not None) == taken
    if wanted is not None:
        assert (wanted.holder, wanted.renewed, wanted.version) == ("me", NOW, "7")
        # A renewal keeps when it was acquired; a takeover counts one more transition.
        assert wanted.transitions == (3 if holder == "me" else 4)
        assert wanted.acquired == (current.acquired if holder == "me" else NOW)


def test_timings_must_nest() -> None:
    with pytest.raises(ValueError, match="must exceed the renew deadline"):
        Election(lease_duration=10, renew_deadline=10, retry_period=2)
    Election(lease_duration=15, renew_deadline=10, retry_period=2)


class Leases:
    """An in-memory Lease with the API server's conflict rule (resourceVersion must match)."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.down = False

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = LeaseRecord(record.holder, record.duration_s, record.acquired, record.renewed,
                                  record.transitions, str(self.version))
        return self.record

    def read(self, timeout=None):
        if self.down:
            raise ConnectionError("API server away")
        return self.record

    def create(self, record, timeout=None):
        return None if self.record is not None else self._store(record)

    def replace(self, record, timeout=None):
        if self.down:
            raise ConnectionError("API server away")
        return self._store(record) if record.version == self.record.version else None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(leases: Leases, clock: Clock, identity: str) -> LeaderElector:
    election = Election(identity=identity, lease_duration=15, renew_deadline=10, retry_period=2)
    return LeaderElector(leases, election, on_started=None, on_lost=lambda: None, clock=clock)


def test_a_standby_waits_a_whole_duration_from_when_it_saw_the_lease_change() -> None:
    leases, clock = Leases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    assert a.try_acquire_or_renew()
    a._leading = True
    assert not b.try_acquire_or_renew()
    clock.now += 14
    assert not b.try_acquire_or_renew()  # a is silent, but not for 15 s yet
    clock.now += 1.5
    assert b.try_acquire_or_renew()
    assert leases.record.holder == "b" and leases.record.transitions == 1
    assert not a.try_acquire_or_renew()
    assert not a.leading


def test_a_leader_that_finds_another_holder_stops_writing_at_once() -> None:
    leases, clock = Leases(), Clock()
    a = elector(leases, clock, "a")
    assert a.try_acquire_or_renew()
    a._leading = True
    leases._store(LeaseRecord("b", 15, None, None, 1, leases.record.version))
    clock.now += 1
    assert a.leading
    assert not a.try_acquire_or_renew()
    assert not a.leading  # well before its renew deadline


def test_a_leader_that_cannot_renew_stops_writing_at_its_deadline() -> None:
    leases, clock = Leases(), Clock()
    a = elector(leases, clock, "a")
    assert a.try_acquire_or_renew()
    a._leading = True
    leases.down = True
    clock.now += 9.9
    assert a.leading
    clock.now += 0.2
    assert not a.leading


def test_a_released_lease_is_taken_at_once() -> None:
    leases, clock = Leases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    assert a.try_acquire_or_renew()
    a._leading = True
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.leading and leases.record.holder is None
    assert b.try_acquire_or_renew()


def test_a_standby_tries_again_right_when_the_holders_lease_expires() -> None:
    leases, clock = Leases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert b._until_next_try() == 2.0
    clock.now += 14
    assert abs(b._until_next_try() - 1.01) < 1e-9
