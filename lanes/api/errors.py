"""Errors that name the object and the field, so a user knows exactly what to fix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldError:
    """One problem: which object, which field, what is wrong."""

    kind: str
    name: str
    path: str
    message: str
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.kind}/{self.name}: {self.path}: {self.message}"


@dataclass
class InvalidSpec(Exception):
    """Raised with every problem found, so one run reports them all."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


_NOISE = {"str", "int", "literal", "[key]"}


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """A pydantic error location as a YAML path: `spec.ingressRules[0].route`."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-after", "function-before")) or part in _NOISE:
            continue
        else:
            # A key that is empty or holds a newline would break the one-line message; quote it.
            shown = part if part and part.isprintable() else json.dumps(part)
            path += f".{shown}" if path else shown
    return path or "(object)"


def from_validation_error(
    exc: ValidationError, kind: str, name: str, source: str | None = None, prefix: str = ""
) -> list[FieldError]:
    """Translate pydantic's errors into FieldErrors with YAML paths and short messages."""
    found = []
    for err in exc.errors(include_url=False):
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        found.append(FieldError(kind, name, field_path(err["loc"], prefix), message, source))
    return found
