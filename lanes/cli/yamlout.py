"""YAML on stdout the way GitOps tools expect it: multi-document, keys in the order built."""

from __future__ import annotations

import re
from typing import Any

import yaml


class Dumper(yaml.SafeDumper):
    """Quotes `y` and `n` too: PyYAML reads them as strings, but YAML 1.1 readers such as
    kubectl's and istioctl's (go-yaml v2) read them as booleans and refuse a label value `y`.

    Never writes anchors and aliases: a value that appears twice is written twice, as a person
    would write it.
    """

    def ignore_aliases(self, data: Any) -> bool:
        return True


Dumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))


def format_documents(documents: list[dict[str, Any]]) -> str:
    """Documents as one YAML stream, each opened by `---`, as `helm template` prints them."""
    if not documents:
        return ""
    return yaml.dump_all(
        documents, Dumper=Dumper, sort_keys=False, explicit_start=True, default_flow_style=False, width=100
    )
