"""Generates the settings tables of docs/configuration.md from `service.config.Settings`:
each field's env name, type, default and its own `Field(description=...)`.

    python scripts/gen-settings-docs.py          # rewrite the tables in the page
    python scripts/gen-settings-docs.py --check  # exit 1 if the page is stale (tests run this)

One table per class in `Settings.__mro__` that declares fields, headed by the first
line of that class's docstring; a field is listed once, under the class that declares
it. Only the text between the page's markers is generated; the prose around it is not.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, whatever is installed

from annotated_types import Ge, Gt, Le, Lt  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

from service.config import Settings  # noqa: E402

PAGE = ROOT / "docs" / "configuration.md"
BEGIN, END = "<!-- settings-table:begin -->", "<!-- settings-table:end -->"
UNDESCRIBED = "(no description yet: see the type and default)"
_BOUNDS = ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"), (Lt, "lt", "<"))


def type_text(annotation: Any) -> str:
    """A reader's name for a field's type: `integer`, `path or unset`, `one of a, b`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        named = [type_text(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" or unset" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {type_text(args[0])}s" if args else "list"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path"}
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def bounds_text(info: FieldInfo) -> str:
    """The field's numeric bounds, as `≥ 1, ≤ 65535` (empty when unbounded)."""
    out = []
    for item in info.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(item, kind):
                out.append(f"{sign} {getattr(item, attr)}")
    return ", ".join(out)


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, list) and not value:
        return "none"
    if isinstance(value, list):
        return ", ".join(f"`{v}`" for v in value)
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path | str):
        return f"`{value}`" if str(value) else '`""`'
    return f"`{json.dumps(value)}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def groups() -> list[tuple[str, list[str]]]:
    """(heading, field names) for each class of the MRO that declares fields."""
    fields = Settings.model_fields
    seen: set[str] = set()
    out: list[tuple[str, list[str]]] = []
    for cls in Settings.__mro__:
        declared = [
            name for name in inspect.get_annotations(cls) if name in fields and name not in seen
        ]
        if not declared:
            continue
        seen.update(declared)
        doc = (cls.__dict__.get("__doc__") or "").strip()
        out.append((doc.splitlines()[0].rstrip(".") if doc else cls.__name__, declared))
    return out


def build_tables() -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    lines: list[str] = []
    for heading, names in groups():
        lines += ["", f"### {heading}", "", "| Environment variable | Type | Default | Meaning |"]
        lines.append("|---|---|---|---|")
        for name in names:
            info = Settings.model_fields[name]
            kind = type_text(info.annotation)
            if bounds := bounds_text(info):
                kind += f" ({bounds})"
            doc = info.description or UNDESCRIBED
            env = f"{prefix}{name}".upper()
            lines.append(f"| `{env}` | {cell(kind)} | {cell(default_text(info))} | {cell(doc)} |")
    return "\n".join(lines[1:])


def render() -> str:
    page = PAGE.read_text()
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{PAGE}: markers {BEGIN} / {END} missing")
    return f"{head}{BEGIN}\n{build_tables()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    page = render()
    if "--check" in argv:
        if PAGE.read_text() != page:
            print(f"stale: {PAGE.name}; run python scripts/gen-settings-docs.py")
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote the settings tables in {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
