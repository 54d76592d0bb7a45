"""MkDocs hook: the reference pages are generated from the code at build time, so they cannot drift.

A page asks for a generated part with a marker line, `<!-- generated: WHAT [ARG] -->`:

    crd KIND       every field of KIND's CRD, walked from `lanes.api.crds` (the schema
                   `make crds` writes), with the models' descriptions and defaults, plus the
                   notes in docs/reference/field-notes.yaml
    cli            every `kubectl lane` verb and option, from the Typer app
    metrics        the built-in PromQL templates, from `lanes.analysis.queries`
    values         every value of charts/lanes/values.yaml with the comments above it
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import typer
import typer.main
import yaml

from lanes.analysis.queries import BUILTIN_METRICS, SOURCES, VARIABLES, builtin_query
from lanes.api.common import GROUP, VERSION
from lanes.api.crds import KINDS, crd
from lanes.cli.main import PLUGIN_GROUP, app

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parent / "reference" / "field-notes.yaml"
VALUES = ROOT / "charts" / "lanes" / "values.yaml"
MARKER = re.compile(r"^<!-- generated: (\w+)(?: (\S+))? -->$", re.MULTILINE)


@dataclass(frozen=True)
class Field:
    """One property of a CRD schema, as the reference shows it."""

    path: str
    type: str
    required: bool
    default: Any
    description: str
    constraints: list[str]


def crd_entry(kind: str) -> dict[str, Any]:
    """The `lanes.api.crds.KINDS` entry of `kind`."""
    for entry in KINDS:
        if entry["kind"] == kind:
            return entry
    raise KeyError(f"no CRD of kind {kind!r}; known: {', '.join(e['kind'] for e in KINDS)}")


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of `kind`'s generated CRD."""
    return crd(crd_entry(kind))["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A pydantic schema node with references inlined and `Optional` collapsed, one level."""
    while True:
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[1]]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        elif "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            if len(options) != 1:
                return node
            node = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        else:
            return node


def _child(raw: dict[str, Any] | None, key: str, defs: dict[str, Any]) -> dict[str, Any] | None:
    """The pydantic schema node beside the CRD's under `key` (a property, `[]` or `*`)."""
    if raw is None:
        return None
    node = _resolve(raw, defs)
    if key == "[]":
        return node.get("items")
    if key == "*":
        extra = node.get("additionalProperties")
        if not isinstance(extra, dict):
            extra = next(iter(node.get("patternProperties", {}).values()), None)
        return extra
    return node.get("properties", {}).get(key)


def _type(node: dict[str, Any]) -> str:
    """A field's type in words: `string`, `array of object`, `map of string`, `int or string`."""
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = node.get("type", "any")
    if kind == "array":
        return "array of " + _type(node.get("items", {}))
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map of " + _type(node["additionalProperties"])
    return kind


def _constraints(node: dict[str, Any]) -> list[str]:
    """The validations the API server applies to one field, in words."""
    said = []
    if "enum" in node:
        said.append("one of " + ", ".join(_code(str(v)) for v in node["enum"]))
    for key, word in (
        ("pattern", "matches"), ("minimum", "at least"), ("maximum", "at most"),
        ("exclusiveMinimum", "above"), ("exclusiveMaximum", "below"),
        ("minLength", "length at least"), ("maxLength", "length at most"),
        ("minItems", "items at least"), ("maxItems", "items at most"),
        ("minProperties", "keys at least"), ("maxProperties", "keys at most"),
    ):
        if key in node:
            value = _code(node[key]) if key == "pattern" else str(node[key])
            said.append(f"{word} {value}")
    if node.get("x-kubernetes-validations"):
        said.append("checked by the rules below the table")
    return said


def walk(
    node: dict[str, Any], raw: dict[str, Any] | None = None, defs: dict[str, Any] | None = None,
    path: str = "",
) -> Iterator[Field]:
    """Every property path under `node`, depth first; `raw` is the pydantic schema beside it."""
    defs = defs or {}
    resolved = _resolve(raw, defs) if raw is not None else None
    required = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        sub_raw = _child(resolved, name, defs) if resolved is not None else None
        here = f"{path}.{name}" if path else name
        description = sub.get("description") or sub.get("items", {}).get("description", "")
        default = sub_raw.get("default") if sub_raw is not None else None
        yield Field(here, _type(sub), name in required, default, description, _constraints(sub))
        yield from walk(sub, sub_raw, defs, here)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], _child(resolved, "[]", defs), defs, f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], _child(resolved, "*", defs), defs, f"{path}.*")


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node under `node` with its path, `node` first."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")


def crd_fields(kind: str) -> list[Field]:
    """Every field of `kind`'s CRD, spec and status, with the models' defaults."""
    entry = crd_entry(kind)
    schema = crd_schema(kind)
    fields = []
    for part in ("spec", "status"):
        model = entry[part]
        if model is None or part not in schema["properties"]:
            continue
        raw = model.model_json_schema(by_alias=True)
        defs = raw.pop("$defs", {})
        node = schema["properties"][part]
        fields.append(Field(part, "object", part == "spec", None, node.get("description", ""),
                            _constraints(node)))
        fields.extend(walk(node, raw, defs, part))
    return fields


def field_notes() -> dict[str, dict[str, str]]:
    """Kind -> field path -> the docs' own words on it, beside the models' descriptions."""
    return yaml.safe_load(NOTES.read_text()) or {}


def _code(text: str) -> str:
    """Inline code fit for a table cell, even when it holds `|` (which would end the cell)."""
    if "|" not in text and "`" not in text:
        return f"`{text}`"
    return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"


def _path_code(path: str) -> str:
    """A field path as inline code that may break after each dot, so long paths wrap cleanly."""
    return "<code>" + html.escape(path).replace(".", ".<wbr>") + "</code>"


def _cell(text: str) -> str:
    """Text fit for one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


def anchor(path: str) -> str:
    """An id made of a path, e.g. `swimlanegroup-spec-isPermissive` -> `swimlanegroup-spec-ispermissive`.

    Each field's row carries the id of its kind and path, so other pages can link to a field.
    """
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def render_crd(kind: str) -> str:
    """The reference section of one kind: names, columns, and a row per field."""
    entry = crd_entry(kind)
    schema = crd_schema(kind)
    notes = field_notes().get(kind, {})
    lines = [
        _cell(schema.get("description", "")),
        "",
        f"- API version: `{GROUP}/{VERSION}`, kind `{kind}`, plural `{entry['plural']}`",
        f"- Scope: {entry['scope']}; short names: {', '.join(f'`{s}`' for s in entry['short'])}",
        f"- Status subresource: {'yes' if entry['status'] else 'no'}",
        "",
        f"Columns of `kubectl get {entry['plural']}` (`-o wide` adds those of priority 1):",
        "",
        "| Column | Type | JSON path | Priority |",
        "|---|---|---|---|",
    ]
    for column in entry["columns"]:
        lines.append(
            f"| {column['name']} | {column['type']} | {_code(column['jsonPath'])} "
            f"| {column.get('priority', 0)} |"
        )
    for part, title in (("spec", "Spec"), ("status", "Status")):
        rows = [f for f in crd_fields(kind) if f.path == part or f.path.startswith(part + ".")]
        if not rows:
            continue
        lines += [
            "",
            f"### {kind} {title.lower()} {{ #{anchor(kind + '-' + part)} }}",
            "",
            "| Field | Type | Default | Description |",
            "|---|---|---|---|",
        ]
        for field in rows:
            words = [w for w in (field.description, notes.get(field.path, "")) if w]
            if field.required:
                words.append("Required.")
            words += [c[0].upper() + c[1:] + "." for c in field.constraints]
            default = "" if field.default is None else _code(
                yaml.safe_dump(field.default, default_flow_style=True).strip()
                .removesuffix("...").strip()
            )
            lines.append(
                f'| <a id="{anchor(kind + "-" + field.path)}"></a>{_path_code(field.path)} '
                f"| {field.type} | {default} | {_cell(' '.join(words))} |"
            )
        rules = [
            (path, rule) for path, node in _nodes(schema["properties"][part], part)
            for rule in node.get("x-kubernetes-validations", [])
        ]
        if rules:
            lines += ["", "Rules the API server checks (CEL):", ""]
            for path, rule in rules:
                lines += [f"- `{path}`: {rule['message']}", "", "    ```", f"    {rule['rule']}",
                          "    ```", ""]
    return "\n".join(lines)


def _plugin_verbs() -> set[str]:
    """The verbs other installed packages add to `kubectl lane` (the test bed's)."""
    names: set[str] = set()
    for plugin in entry_points(group=PLUGIN_GROUP):
        scratch = typer.Typer()
        plugin.load()(scratch)
        names |= {c.name or c.callback.__name__ for c in scratch.registered_commands}
        names |= {g.name for g in scratch.registered_groups if g.name}
    return names


def _commands(command: Any, words: list[str]) -> Iterator[tuple[list[str], Any]]:
    """Every command under a click group, with the words that call it."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield words, command
        return
    if words:
        yield words, command
    for name in sorted(subcommands):
        yield from _commands(subcommands[name], [*words, name])


def _annotation(param: Any) -> Any:
    """The Python type a parameter was declared with, under Typer's own or click's classes."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return getattr(descriptor, "annotation", None)
    return getattr(param, "type", None)


def _type_name(param: Any) -> str:
    """A parameter's type in words: `text`, `integer`, `flag`, `path`, or its choices."""
    if getattr(param, "is_flag", False):
        return "flag"
    kind = _annotation(param)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in kind)
    names = {str: "text", int: "integer", float: "number", bool: "flag", Path: "path"}
    if kind in names:
        return names[kind]
    return getattr(kind, "name", "") or getattr(kind, "__name__", "")


def _default(param: Any) -> str:
    """A parameter's default as the reader would type it; paths relative to the repository."""
    value = param.default
    if callable(value) or value in (None, (), []) or getattr(param, "is_flag", False):
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(ROOT):
        value = value.relative_to(ROOT)
    return f"`{value}`"


def _option_row(param: Any) -> str:
    """One table row for a command's argument or option."""
    if param.param_type_name == "argument":
        name = (param.metavar or param.name or "").upper()
    else:
        name = ", ".join([*param.opts, *param.secondary_opts])
    envvar = param.envvar if isinstance(param.envvar, str) else ", ".join(param.envvar or ())
    help_text = getattr(param, "help", "") or ""
    if param.required:
        help_text += " Required."
    return (
        f"| `{_cell(name)}` | {_cell(_type_name(param))} | {_cell(_default(param))} "
        f"| {f'`{envvar}`' if envvar else ''} | {_cell(help_text)} |"
    )


def _usage(words: list[str], command: Any) -> str:
    """The command line of a verb: its words, `[OPTIONS]`, then its arguments."""
    pieces = ["kubectl lane", *words]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if any(p.param_type_name == "option" for p in params):
        pieces.append("[OPTIONS]")
    if getattr(command, "commands", None) is not None:
        pieces.append("COMMAND")
    for param in params:
        if param.param_type_name == "argument":
            name = (param.metavar or param.name or "").upper()
            pieces.append(name if param.required else f"[{name}]")
    return " ".join(pieces)


def render_cli() -> str:
    """Every `kubectl lane` verb: what it does and each of its arguments and options."""
    root = typer.main.get_command(app)
    added = _plugin_verbs()
    lines: list[str] = []
    for words, command in _commands(root, []):
        title = " ".join(words)
        origin = " (added by the test bed)" if len(words) == 1 and words[0] in added else ""
        doc = (command.help or "").split("\f")[0].strip()
        lines += ["", f"### `{title}`{origin} {{ #{anchor(title)} }}", "", doc, ""]
        lines += ["```", _usage(words, command), "```", ""]
        params = [p for p in command.params if not getattr(p, "hidden", False)]
        if params:
            lines += ["| Argument or option | Type | Default | Environment | Meaning |",
                      "|---|---|---|---|---|"]
            lines += [_option_row(p) for p in params]
    return "\n".join(lines)


def render_metrics() -> str:
    """The built-in metrics' PromQL templates, per source."""
    lines = ["Variables: " + ", ".join(f"`{{{{ {v} }}}}`" for v in VARIABLES) + "."]
    for metric in BUILTIN_METRICS:
        for source in SOURCES:
            lines += ["", f"### `{metric}`, source `{source}` {{ #{anchor(metric + '-' + source)} }}",
                      "", "```promql", builtin_query(source, metric), "```"]
    return "\n".join(lines)


def values_rows(text: str) -> list[tuple[str, str, str]]:
    """(dotted key, default, comment) for every leaf of a values.yaml, comments kept.

    A comment block stands for the key right below it; a nested key inherits nothing, so
    each row shows only the words written for it (and its parent's words in its own row).
    """
    data = yaml.safe_load(text)
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_]+):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        inline = rest.split("#", 1)[1].strip() if " #" in rest else ""
        words = " ".join([*pending, inline]).strip()
        if words:
            comments[".".join(k for _, k in stack)] = words
        pending = []

    rows: list[tuple[str, str, str]] = []

    def leaves(node: Any, path: str) -> None:
        if isinstance(node, dict) and node:
            if path in comments:
                rows.append((path, "", comments[path]))
            for key, value in node.items():
                leaves(value, f"{path}.{key}" if path else key)
            return
        shown = yaml.safe_dump(node, default_flow_style=True).strip().removesuffix("...").strip()
        rows.append((path, shown, comments.get(path, "")))

    leaves(data, "")
    return rows


def render_values() -> str:
    """Every value of the chart, its default and the words written beside it."""
    lines = ["| Value | Default | Meaning |", "|---|---|---|"]
    for key, default, words in values_rows(VALUES.read_text()):
        lines.append(f"| `{key}` | {f'`{_cell(default)}`' if default else ''} | {_cell(words)} |")
    return "\n".join(lines)


def generate(what: str, arg: str | None) -> str:
    """The Markdown a marker stands for."""
    if what == "crd" and arg:
        return render_crd(arg)
    if what == "cli":
        return render_cli()
    if what == "metrics":
        return render_metrics()
    if what == "values":
        return render_values()
    raise ValueError(f"unknown generated part {what!r}")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every marker of the page with what it stands for."""
    return MARKER.sub(lambda m: generate(m.group(1), m.group(2)), markdown)
