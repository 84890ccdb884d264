"""Regenerate ``src/lumigram/emulator/botapi_spec.json`` from aiogram's butcher schema.

The emulator validates every Bot API call against a compact, derived copy of the
official method and type tables: for each parameter/field only its type string,
whether it is required and, where the prose states it, a conditional requirement
(``required_unless``) or a constant discriminator value (``const``, e.g. the
``type`` of ``InputMediaPhoto`` "must be photo"). Descriptions are dropped.

Usage::

    python scripts/gen_botapi_spec.py [path/to/aiogram-butcher-schema.json] [--check]

The default schema path is ``../shared/botapi/aiogram-butcher-schema.json`` relative
to the repository root. ``--check`` exits with status 1 when the committed file is
stale instead of rewriting it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCHEMA = REPO_ROOT.parent / "shared" / "botapi" / "aiogram-butcher-schema.json"
OUTPUT = REPO_ROOT / "src" / "lumigram" / "emulator" / "botapi_spec.json"

SOURCE_NOTE = (
    "Derived from aiogram/aiogram .butcher/schema/schema.json (MIT License, "
    "https://github.com/aiogram/aiogram), itself scraped from https://core.telegram.org/bots/api; "
    "Telegram Bot API {version} ({release_date}). Descriptions dropped; regenerate with "
    "scripts/gen_botapi_spec.py."
)

# "Required if inline_message_id is not specified. ..." (edit methods, stopPoll, ...),
# "...; required if rich_message isn't specified" (editMessageText.text)
_REQUIRED_UNLESS = re.compile(r"\b[Rr]equired if (\w+) (?:is not|isn't) specified")
# "Type of the media, must be photo" / "Type of the background, always 'fill'"
_CONST = re.compile(r"(?:, must be|, always) ['\"\u201c]?([a-z0-9_]+)['\"\u201d]?\.?$")
# Abstract types list their variants as " - VariantName" lines.
_SUBTYPE = re.compile(r"^ - (\w+)\s*$", re.MULTILINE)


def _entities(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [child for section in schema["items"] for child in section["children"]]


def _annotation(annotation: dict[str, Any], *, is_method: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": annotation["type"], "required": bool(annotation["required"])}
    description = str(annotation.get("description", ""))
    unless = _REQUIRED_UNLESS.search(description)
    if unless and not out["required"]:
        out["required_unless"] = unless.group(1)
    if not is_method:
        const = _CONST.search(description.strip())
        if const and annotation["type"] == "String" and out["required"]:
            out["const"] = const.group(1)
    return out


def build_spec(schema: dict[str, Any]) -> dict[str, Any]:
    """Build the derived spec (a plain JSON-able dict) from the butcher schema."""
    api = schema["api"]
    methods: dict[str, Any] = {}
    types: dict[str, Any] = {}
    for entity in _entities(schema):
        annotations = entity.get("annotations") or []
        if entity["category"] == "methods":
            methods[entity["name"]] = {
                "params": {a["name"]: _annotation(a, is_method=True) for a in annotations}
            }
        elif annotations:
            types[entity["name"]] = {
                "fields": {a["name"]: _annotation(a, is_method=False) for a in annotations}
            }
        else:
            subtypes = _SUBTYPE.findall(str(entity.get("description", "")))
            types[entity["name"]] = {"subtypes": subtypes} if subtypes else {"fields": {}}
    return {
        "source": SOURCE_NOTE.format(version=api["version"], release_date=api["release_date"]),
        "api_version": api["version"],
        "release_date": api["release_date"],
        "methods": methods,
        "types": types,
    }


def render(spec: dict[str, Any]) -> str:
    """Serialise deterministically: one line per method parameter / type field."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

    lines = ["{"]
    for key in ("source", "api_version", "release_date"):
        lines.append(f"  {one(key)}: {one(spec[key])},")
    for section, member in (("methods", "params"), ("types", "fields")):
        lines.append(f"  {one(section)}: {{")
        entries = list(spec[section].items())
        for index, (name, body) in enumerate(entries):
            tail = "," if index < len(entries) - 1 else ""
            if member in body:
                items = list(body[member].items())
                if not items:
                    lines.append(f"    {one(name)}: {{{one(member)}: {{}}}}{tail}")
                    continue
                lines.append(f"    {one(name)}: {{{one(member)}: {{")
                for field_index, (field, spec_value) in enumerate(items):
                    field_tail = "," if field_index < len(items) - 1 else ""
                    lines.append(f"      {one(field)}: {one(spec_value)}{field_tail}")
                lines.append(f"    }}}}{tail}")
            else:
                lines.append(f"    {one(name)}: {one(body)}{tail}")
        lines.append("  }," if section == "methods" else "  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate(schema_path: Path) -> str:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    return render(build_spec(schema))


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--check"]
    schema_path = Path(args[0]) if args else DEFAULT_SCHEMA
    text = generate(schema_path)
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale; run scripts/gen_botapi_spec.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
