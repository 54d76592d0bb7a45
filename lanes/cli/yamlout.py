"""YAML on stdout the way GitOps tools expect it: multi-document, keys in the order built."""

from __future__ import annotations

from typing import Any

import yaml


def format_documents(documents: list[dict[str, Any]]) -> str:
    """Documents as one YAML stream, each opened by `---`, as `helm template` prints them."""
    if not documents:
        return ""
    return yaml.safe_dump_all(
        documents, sort_keys=False, explicit_start=True, default_flow_style=False, width=100
    )
