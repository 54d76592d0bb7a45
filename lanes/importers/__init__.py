"""ASM, OpenKruise, Flagger and Argo Rollouts documents as lanes.dev ones.

One module per source (`asm`, `kruise`, `flagger`, `argo`), each listing the (group, kind)s it
reads; `registry` files them and converts a document by its (group, kind); `documents` reads
files of mixed kinds through it.
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
