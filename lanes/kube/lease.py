"""The leader-election Lease (`coordination.k8s.io/v1`): read it, create it, replace it.

Every write is conditional: create fails if another replica created it first, replace
carries the resourceVersion it was read at, so two replicas can never both believe they
took the same Lease. Needs `create` on Leases in the namespace and `get`/`update` on this one.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException


@dataclass(frozen=True)
class LeaseRecord:
    """What the Lease says: who holds it, for how long, since when."""

    holder: str | None
    duration_s: int
    acquired: datetime.datetime | None = None
    renewed: datetime.datetime | None = None
    transitions: int = 0
    version: str | None = None

    @property
    def essence(self) -> tuple:
        """What a change of holder or renewal changes (not the resourceVersion alone)."""
        return self.holder, self.duration_s, self.acquired, self.renewed, self.transitions


def _record(lease: client.V1Lease) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(
        holder=spec.holder_identity or None,
        duration_s=spec.lease_duration_seconds or 0,
        acquired=spec.acquire_time,
        renewed=spec.renew_time,
        transitions=spec.lease_transitions or 0,
        version=lease.metadata.resource_version,
    )


def _body(name: str, record: LeaseRecord) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, resource_version=record.version),
        spec=client.V1LeaseSpec(
            holder_identity=record.holder or "",
            lease_duration_seconds=record.duration_s,
            acquire_time=record.acquired,
            renew_time=record.renewed,
            lease_transitions=record.transitions,
        ),
    )


def _record_unless(status: int, call: Callable[[], Any]) -> LeaseRecord | None:
    """The Lease a call answers with; None when it answers `status` (not there, or moved)."""
    try:
        return _record(call())
    except ApiException as error:
        if error.status == status:
            return None
        raise


class LeaseApi:
    """One Lease, by namespace and name."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str):
        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name

    def read(self, timeout: float | None = None) -> LeaseRecord | None:
        """The Lease, or None if there is none yet."""
        return _record_unless(404, lambda: self.coordination.read_namespaced_lease(
            self.name, self.namespace, _request_timeout=timeout))

    def create(self, record: LeaseRecord, timeout: float | None = None) -> LeaseRecord | None:
        """Create it holding `record`; None if someone else created it first."""
        return _record_unless(409, lambda: self.coordination.create_namespaced_lease(
            self.namespace, _body(self.name, record), _request_timeout=timeout))

    def replace(self, record: LeaseRecord, timeout: float | None = None) -> LeaseRecord | None:
        """Write `record` if the Lease is still at `record.version`; None if it moved on."""
        return _record_unless(409, lambda: self.coordination.replace_namespaced_lease(
            self.name, self.namespace, _body(self.name, record), _request_timeout=timeout))
