"""ASM, OpenKruise, Flagger and Argo Rollouts documents as lanes.dev ones.

One module per source (`asm`, `kruise`, `flagger`, `argo`, and `istio` for the Istio routes that
come beside them), each listing the (group, kind)s it reads; `registry` files them (and the
Deployments lone canaries release, relabelled) and converts a document by its (group, kind);
`documents` reads files of mixed kinds through it; `lone` generates a lone canary's group and
lanes; `served` plans the lanes.dev object and the status of an ASM or Kruise object the
operator runs as it is.
"""

from .common import Importer
from .documents import convert_documents, load, parse_documents, parse_object
from .registry import conversion_notes, convert, convert_document, importer_for, register, registered

__all__ = [
    "Importer",
    "conversion_notes",
    "convert",
    "convert_document",
    "convert_documents",
    "importer_for",
    "load",
    "parse_documents",
    "parse_object",
    "register",
    "registered",
]
