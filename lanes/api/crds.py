"""CustomResourceDefinitions generated from the models, so the API has one source of truth.

`python -m lanes.api.crds --write crds charts/lanes/crds` regenerates both copies (the Helm
chart carries its own); `--check` fails when the files there differ from what the models give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .alertprovider import AlertProvider, AlertProviderSpec, AlertProviderStatus
from .analysis import MetricTemplate, MetricTemplateSpec
from .common import GROUP, VERSION
from .lanerelease import LaneRelease, LaneReleaseSpec, LaneReleaseStatus
from .swimlane import SwimLane, SwimLaneSpec, SwimLaneStatus
from .swimlanegroup import SwimLaneGroup, SwimLaneGroupSpec, SwimLaneGroupStatus
from .workloadrollout import WorkloadRollout, WorkloadRolloutSpec, WorkloadRolloutStatus

_DROPPED = {"title", "default", "propertyNames"}
_READY = '.status.conditions[?(@.type=="Ready")]'


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

KINDS: list[dict[str, Any]] = [
    {
        "kind": "SwimLaneGroup",
        "model": SwimLaneGroup,
        "plural": "swimlanegroups",
        "short": ["slg"],
        "scope": "Cluster",
        "spec": SwimLaneGroupSpec,
        "status": SwimLaneGroupStatus,
        "columns": [
            _column("Flavour", ".spec.flavour"),
            _column("Permissive", ".spec.isPermissive", "boolean"),
            _column("Fallback", ".spec.permissiveModeConfiguration.fallbackTarget"),
            _column("Ready", f"{_READY}.status"),
            _column("Objects", ".status.generated", "integer"),
            _column("Message", f"{_READY}.message", priority=1),
            _AGE,
        ],
    },
    {
        "kind": "SwimLane",
        "model": SwimLane,
        "plural": "swimlanes",
        "short": ["sl"],
        "scope": "Cluster",
        "spec": SwimLaneSpec,
        "status": SwimLaneStatus,
        "columns": [
            _column("Group", ".metadata.labels.swimlane-group"),
            _column("Ready", f"{_READY}.status"),
            _column("Services", ".status.services"),
            _column("Message", f"{_READY}.message", priority=1),
            _AGE,
        ],
    },
    {
        "kind": "WorkloadRollout",
        "model": WorkloadRollout,
        "plural": "workloadrollouts",
        "short": ["wro"],
        "scope": "Namespaced",
        "spec": WorkloadRolloutSpec,
        "status": WorkloadRolloutStatus,
        "columns": [
            _column("Status", ".status.phase"),
            _column("Step", ".status.canaryStatus.currentStepIndex", "integer"),
            _column("State", ".status.canaryStatus.currentStepState"),
            _column("Analysis", ".status.analysis.phase"),
            _column("Failed", ".status.analysis.failedChecks", "integer", priority=1),
            _column("Message", ".status.message"),
            _AGE,
        ],
    },
    {
        "kind": "MetricTemplate",
        "model": MetricTemplate,
        "plural": "metrictemplates",
        "short": ["mt"],
        "scope": "Namespaced",
        "spec": MetricTemplateSpec,
        "status": None,
        "columns": [
            _column("Provider", ".spec.provider.type"),
            _column("Address", ".spec.provider.address"),
            _column("Query", ".spec.query", priority=1),
            _AGE,
        ],
    },
    {
        "kind": "AlertProvider",
        "model": AlertProvider,
        "plural": "alertproviders",
        "short": ["ap"],
        "scope": "Namespaced",
        "spec": AlertProviderSpec,
        "status": AlertProviderStatus,
        "columns": [
            _column("Type", ".spec.type"),
            _column("Channel", ".spec.channel"),
            _column("Ready", f"{_READY}.status"),
            _column("Message", f"{_READY}.message", priority=1),
            _AGE,
        ],
    },
    {
        "kind": "LaneRelease",
        "model": LaneRelease,
        "plural": "lanereleases",
        "short": ["lr"],
        "scope": "Namespaced",
        "spec": LaneReleaseSpec,
        "status": LaneReleaseStatus,
        "columns": [
            _column("Lane", ".spec.swimLaneRef.name"),
            _column("Status", ".status.phase"),
            _column("Step", ".status.currentStepIndex", "integer"),
            _column("Weight", ".status.weight", "integer"),
            _column("Failed", ".status.failedChecks", "integer"),
            _column("Message", ".status.message", priority=1),
            _AGE,
        ],
    },
]


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """A pydantic JSON schema rewritten as a Kubernetes structural schema.

    References are inlined, `Optional` unions collapse to their type, int-or-string unions
    become `x-kubernetes-int-or-string`, and keywords Kubernetes rejects are dropped.
    """
    if isinstance(node, list):
        return [structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if {o.get("type") for o in options} == {"integer", "string"}:
            return {**structural(rest, defs), "x-kubernetes-int-or-string": True}
        if len(options) == 1:
            return structural({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "additionalProperties" and isinstance(value, bool)):
            continue
        if key == "patternProperties":
            out["additionalProperties"] = structural(next(iter(value.values())), defs)
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
            continue
        out[key] = structural(value, defs)
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one model."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    return structural(schema, defs)


def crd(entry: dict[str, Any]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    kind, plural = entry["kind"], entry["plural"]
    spec = model_schema(entry["spec"])
    spec["description"] = f"What a {kind} declares."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": entry["short"],
                "categories": ["lanes"],
            },
            "scope": entry["scope"],
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    **({"subresources": {"status": {}}} if entry["status"] else {}),
                    "additionalPrinterColumns": entry["columns"],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": entry["model"].__doc__.strip(),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                **({"status": model_schema(entry["status"])} if entry["status"] else {}),
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_files() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    header = "# Generated from lanes/api by `make crds`; do not edit.\n"
    return {
        f"{GROUP}_{entry['plural']}.yaml": header
        + yaml.safe_dump(crd(entry), sort_keys=False, width=100)
        for entry in KINDS
    }


def main(argv: list[str] | None = None) -> int:
    """Write or check the CRD files."""
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, metavar="DIR", nargs="+")
    mode.add_argument("--check", type=Path, metavar="DIR", nargs="+")
    args = parser.parse_args(argv)
    stale = []
    for folder in args.write or args.check:
        for name, text in crd_files().items():
            path = folder / name
            if args.write:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            elif not path.exists() or path.read_text() != text:
                stale.append(str(path))
    if stale:
        print("out of date (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
