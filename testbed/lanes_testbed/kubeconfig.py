"""Kubeconfig files pointing at the local control plane with the admin client certificate."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from lanes_testbed.pki import Pki

CONTEXT = "lanes-dev"


def kubeconfig_document(server: str, pki: Pki) -> dict:
    """A kubeconfig that kubectl, the kubernetes Python client and kopf all accept."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "lanes-admin",
                "user": {
                    "client-certificate": str(pki.admin_cert),
                    "client-key": str(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": "lanes-admin", "namespace": "default"},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server: str, pki: Pki) -> Path:
    """Write atomically so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.touch(mode=0o600)
    partial.write_text(yaml.safe_dump(kubeconfig_document(server, pki), sort_keys=False))
    partial.replace(path)
    return path
