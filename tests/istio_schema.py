"""Check generated objects the way a kube-apiserver with Istio 1.30's CRDs (and istiod) would.

Three kinds of problem are reported, each as `<path>: <message>`:
- schema: the object fails the CRD version's openAPIV3Schema (jsonschema);
- pruned: a field the apiserver would silently drop, because the structural schema does not
  declare it (no `properties` entry, no `additionalProperties`, no
  `x-kubernetes-preserve-unknown-fields`). A pruned field is the worst kind of bug: the apply
  succeeds and the route quietly loses its meaning;
- metadata and a few of istiod's webhook rules the schema cannot express (subset names are DNS
  labels, weights of a multi-destination route add up to 100).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_DEV = Path(__file__).resolve().parents[1] / "testbed" / "lanes_testbed"
CRDS = (_DEV / "istio-networking-crds.yaml", _DEV / "istio-extensions-crds.yaml")
_ROOT_FIELDS = {"apiVersion", "kind", "metadata"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


@lru_cache(maxsize=1)
def _schemas() -> dict[tuple[str, str], dict]:
    """openAPIV3Schema by (apiVersion, kind), for every version the CRD file serves."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas = {}
    crds = [crd for path in CRDS for crd in yaml.load_all(path.read_text(), Loader=loader)]
    for crd in crds:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def schema_for(api_version: str, kind: str) -> dict:
    """The openAPIV3Schema the apiserver applies to this apiVersion and kind."""
    try:
        return _schemas()[(api_version, kind)]
    except KeyError:
        raise KeyError(f"no served CRD version for {api_version} {kind}") from None


def schema_errors(obj: dict) -> list[str]:
    """Where the object fails its schema."""
    validator = jsonschema.Draft4Validator(schema_for(obj["apiVersion"], obj["kind"]))
    return [
        f"{_path(error.absolute_path)}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


def pruned_fields(obj: dict) -> list[str]:
    """The paths of every field the apiserver would prune from the object."""
    schema = schema_for(obj["apiVersion"], obj["kind"])
    found: list[str] = []
    body = {k: v for k, v in obj.items() if k not in _ROOT_FIELDS}
    _walk(body, schema, (), found)
    return found


def _walk(value: Any, schema: dict, path: tuple, found: list[str]) -> None:
    if isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            if isinstance(items, dict):
                _walk(item, items, (*path, i), found)
        return
    if not isinstance(value, dict):
        return
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    for key, child in value.items():
        if key in properties:
            _walk(child, properties[key], (*path, key), found)
        elif isinstance(extra, dict):
            _walk(child, extra, (*path, key), found)
        elif extra is True or preserve:
            continue
        else:
            found.append(_path((*path, key)))


def metadata_errors(obj: dict) -> list[str]:
    """Name, namespace and labels the apiserver would reject."""
    errors = []
    metadata = obj.get("metadata") or {}
    name = metadata.get("name", "")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        errors.append(f"metadata.name: {name!r} is not a DNS subdomain")
    namespace = metadata.get("namespace", "")
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        errors.append(f"metadata.namespace: {namespace!r} is not a DNS label")
    for key, value in (metadata.get("labels") or {}).items():
        prefix, _, label = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
            errors.append(f"metadata.labels: key prefix {prefix!r} is not a DNS subdomain")
        if len(label) > 63 or not _LABEL_NAME.match(label):
            errors.append(f"metadata.labels: key {key!r} is not a label name")
        valid = isinstance(value, str) and len(value) <= 63
        if not valid or (value and not _LABEL_NAME.match(value)):
            errors.append(f"metadata.labels.{key}: {value!r} is not a label value")
    return errors


def webhook_errors(obj: dict) -> list[str]:
    """A few of istiod's validation rules that the CRD schema does not carry."""
    errors = []
    spec = obj.get("spec") or {}
    if obj["kind"] == "DestinationRule":
        names = [s.get("name", "") for s in spec.get("subsets", [])]
        for i, name in enumerate(names):
            if not _DNS_LABEL.match(name) or len(name) > 63:
                errors.append(f"spec.subsets[{i}].name: {name!r} is not a DNS label")
            elif names.index(name) != i:
                errors.append(f"spec.subsets[{i}].name: duplicate subset {name!r}")
    if obj["kind"] == "VirtualService":
        if not spec.get("hosts"):
            errors.append("spec.hosts: at least one host is required")
        for i, http in enumerate(spec.get("http", [])):
            routes = http.get("route") or []
            if not routes:
                errors.append(f"spec.http[{i}].route: a route is required")
            if len(routes) > 1 and sum(r.get("weight", 0) for r in routes) != 100:
                errors.append(f"spec.http[{i}].route: weights must add up to 100")
            for j, match in enumerate(http.get("match") or []):
                for header in match.get("headers") or {}:
                    if header != header.lower():
                        errors.append(
                            f"spec.http[{i}].match[{j}].headers: {header!r} must be lower case"
                        )
    return errors


def problems(obj: dict, allow_pruned: tuple[str, ...] = ()) -> list[str]:
    """Every problem of one object; pruned fields whose last path part is in `allow_pruned`
    (such as ASM's `fallback`) are accepted."""
    pruned = [
        f"{p}: would be pruned"
        for p in pruned_fields(obj)
        if p.rsplit(".", 1)[-1] not in allow_pruned
    ]
    return schema_errors(obj) + pruned + metadata_errors(obj) + webhook_errors(obj)


def _path(parts) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(object)"
