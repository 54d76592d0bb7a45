"""Names and label values for generated objects, kept within Kubernetes' length limits.

A name that would be too long keeps a readable prefix and ends in a hash of the full name, so
two long inputs that share a prefix still get different names, and the same input always gets
the same name.
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
_HASH_LEN = 10
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns_label(value: str) -> bool:
    """Whether `value` is an RFC 1123 label, as Istio requires of subset names."""
    return len(value) <= DNS_LABEL_MAX and _DNS_LABEL.match(value) is not None


def shorten(value: str, limit: int) -> str:
    """`value` itself when it fits in `limit` characters, else a prefix plus a hash of it."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:_HASH_LEN]
    prefix = value[: limit - _HASH_LEN - 1].rstrip("-._")
    return f"{prefix}-{digest}"


def object_name(*parts: str, limit: int = DNS_LABEL_MAX) -> str:
    """The parts joined by `-`: dots become `-` so the name is also a DNS label."""
    return shorten("-".join(parts).replace(".", "-"), limit)


def label_value(value: str) -> str:
    """A group name as a label value (at most 63 characters)."""
    return shorten(value, LABEL_VALUE_MAX)


def fqdn(key: str) -> str:
    """The cluster-local host of a `namespace/name` service key."""
    namespace, _, name = key.partition("/")
    return f"{name}.{namespace}.svc.cluster.local"
