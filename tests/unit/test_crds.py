"""crds/ is generated from the models and must not drift from them."""

from __future__ import annotations

from pathlib import Path

import yaml

from lanes.api import crds

ROOT = Path(__file__).resolve().parents[2]


def test_crds_folders_match_the_models() -> None:
    folders = [str(ROOT / "crds"), str(ROOT / "charts" / "lanes" / "crds")]
    assert crds.main(["--check", *folders]) == 0, "run `make crds` and commit both folders"


def _walk(schema: dict, path: str = ""):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def test_schemas_are_structural() -> None:
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "patternProperties", "propertyNames", "title"}
    for text in crds.crd_files().values():
        doc = yaml.safe_load(text)
        schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            assert not forbidden & node.keys(), f"{doc['metadata']['name']}{path}"
            assert "type" in node or node.get("x-kubernetes-int-or-string"), (
                f"{doc['metadata']['name']}{path} has no type"
            )


def test_every_kind_has_printer_columns_and_status() -> None:
    for text in crds.crd_files().values():
        crd = yaml.safe_load(text)
        version = crd["spec"]["versions"][0]
        if crd["spec"]["names"]["kind"] == "MetricTemplate":
            assert "subresources" not in version, "a template is written by users only"
        else:
            assert version["subresources"] == {"status": {}}
        names = [c["name"] for c in version["additionalPrinterColumns"]]
        assert names[-1] == "Age" and len(names) >= 4
