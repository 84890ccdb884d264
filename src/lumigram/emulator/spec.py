"""Parameter validation against the derived Bot API spec (``botapi_spec.json``).

Request parameters arrive as strings (query string, form fields; complex values as
JSON text), as JSON-native values (``application/json`` bodies) or as uploaded files.
:meth:`ApiSpec.validate` checks presence and type of every parameter the method
documents, decodes JSON-encoded objects and arrays and checks them field by field,
recursively, and returns the parameters as Python values. Unknown parameters are
ignored, as Telegram ignores them.

The wording of the errors follows Telegram's Bot API server: ``chat_id is empty``,
``field "x" must be of type Boolean``, ``can't parse inline keyboard button: Can't
find field "text"`` and so on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .errors import WRONG_FILE_ID, ApiError, bad_request


@dataclass(frozen=True)
class Upload:
    """A file sent as a multipart/form-data attachment."""

    filename: str
    data: bytes
    content_type: str | None = None

    def __repr__(self) -> str:
        return f"<Upload {self.filename!r} {len(self.data)} bytes>"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool
    required_unless: str | None = None
    const: str | None = None


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: dict[str, FieldSpec]


_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

# Prefixes Telegram puts before errors inside some nested objects.
_PARSE_PREFIX = {
    "InlineKeyboardButton": "can't parse inline keyboard button: ",
    "KeyboardButton": "can't parse keyboard button: ",
    "MessageEntity": "can't parse MessageEntity: ",
    "InputPollOption": "can't parse InputPollOption: ",
}
# How Telegram names some top-level objects in "can't parse ... JSON object".
_PARAM_NOUN = {
    "reply_markup": "reply keyboard markup",
    "entities": "entities",
    "caption_entities": "entities",
}
_MEDIA_PARAMS = ("photo", "document", "video", "animation", "audio", "voice", "sticker")


def _json_kind(type_name: str) -> str:
    """The JSON type Telegram names in "must be of type X" errors."""
    if type_name in ("Integer", "Float"):
        return "Number"
    if type_name in ("Boolean", "True"):
        return "Boolean"
    if type_name == "String":
        return "String"
    if type_name.startswith("Array of "):
        return "Array"
    return "Object"


def missing_param_error(method: str, name: str) -> ApiError:
    """Telegram's answer when a required parameter is absent or empty."""
    if name == "chat_id":
        return bad_request("chat_id is empty")
    if name == "text" and method in ("sendMessage", "editMessageText"):
        return bad_request("message text is empty")
    if name in _MEDIA_PARAMS:
        return bad_request(f"there is no {name} in the request")
    if name == "file_id":
        return bad_request("file_id not specified")
    if name == "user_id":
        return bad_request("invalid user_id specified")
    if name == "message_id":
        return bad_request("message identifier is not specified")
    return bad_request(f'parameter "{name}" is required')


class ApiSpec:
    """The Bot API methods and types, as derived from the official documentation."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.api_version: str = str(data["api_version"])
        self.methods: dict[str, MethodSpec] = {
            name: MethodSpec(name, _fields(body["params"]))
            for name, body in data["methods"].items()
        }
        self.types: dict[str, dict[str, FieldSpec]] = {}
        self.subtypes: dict[str, list[str]] = {}
        for name, body in data["types"].items():
            if "subtypes" in body:
                self.subtypes[name] = list(body["subtypes"])
            else:
                self.types[name] = _fields(body["fields"])
        # Telegram matches method names case-insensitively.
        self._by_lower = {name.lower(): name for name in self.methods}

    def canonical_method(self, name: str) -> str | None:
        return self._by_lower.get(name.lower())

    def update_types(self) -> list[str]:
        return [name for name in self.types["Update"] if name != "update_id"]

    # -- validation -----------------------------------------------------------------

    def validate(self, method: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``raw`` against ``method``'s parameters; return the decoded values."""
        spec = self.methods[method]
        present = {k: v for k, v in raw.items() if not (isinstance(v, str) and v == "")}
        out: dict[str, Any] = {}
        for name, field in spec.params.items():
            if name not in present or present[name] is None:
                needed = field.required or (
                    field.required_unless is not None and field.required_unless not in present
                )
                if needed:
                    raise missing_param_error(method, name)
                continue
            out[name] = self._top_level(name, field.type, present[name], raw)
        return out

    def _top_level(self, name: str, type_str: str, value: Any, raw: Mapping[str, Any]) -> Any:
        if type_str in ("InputFile", "InputFile or String"):
            return _input_file(value, raw, allow_string=type_str != "InputFile")
        if type_str == "Integer or String":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise bad_request(f'parameter "{name}" must be of type Integer or String')
            if isinstance(value, str) and _INT_RE.match(value):
                return int(value)
            return value
        if type_str in ("Integer", "Float", "Boolean", "True", "String"):
            return _scalar_top(name, type_str, value)
        # Objects and arrays travel as JSON text in query strings and forms.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                noun = _PARAM_NOUN.get(name, name)
                kind = "array" if type_str.startswith("Array of ") else "object"
                raise bad_request(f"can't parse {noun} JSON {kind}") from None
        return self.check_value(value, type_str, name, prefix="", top_name=name)

    def check_value(
        self, value: Any, type_str: str, name: str, *, prefix: str, top_name: str = ""
    ) -> Any:
        """Validate a JSON value against a spec type expression."""
        if type_str.startswith("Array of "):
            if not isinstance(value, list):
                raise _type_error(prefix, name, "Array", top_level=bool(top_name))
            inner = type_str[len("Array of ") :]
            return [self.check_value(item, inner, name, prefix=prefix) for item in value]
        members = [m for m in re.split(r", | or | and ", type_str) if m]
        if len(members) > 1:
            return self._check_union(value, members, name, prefix, top_name)
        return self._check_named(value, type_str, name, prefix, top_name)

    def _check_named(
        self, value: Any, type_name: str, name: str, prefix: str, top_name: str
    ) -> Any:
        if type_name in ("Integer", "Float", "Boolean", "True", "String"):
            return _scalar_nested(prefix, name, type_name, value)
        if type_name == "InputFile":
            if isinstance(value, (str, Upload)):
                return value
            raise bad_request(WRONG_FILE_ID)
        if type_name in self.subtypes:
            return self._check_union(value, self.subtypes[type_name], name, prefix, top_name)
        fields = self.types.get(type_name)
        if fields is None:  # pragma: no cover - the spec references only known types
            return value
        if not isinstance(value, dict):
            if top_name:
                noun = _PARAM_NOUN.get(top_name, top_name)
                raise bad_request(f"can't parse {noun} JSON object")
            raise _type_error(prefix, name, "Object", top_level=False)
        inner_prefix = _PARSE_PREFIX.get(type_name, prefix)
        out: dict[str, Any] = {}
        for field_name, field in fields.items():
            if field_name not in value or value[field_name] is None:
                if field.required:
                    raise _missing_field(inner_prefix, field_name)
                continue
            out[field_name] = self.check_value(
                value[field_name], field.type, field_name, prefix=inner_prefix
            )
        return out

    def _check_union(
        self, value: Any, members: list[str], name: str, prefix: str, top_name: str
    ) -> Any:
        scalars = [m for m in members if m in ("Integer", "String", "InputFile")]
        if scalars and not isinstance(value, dict):
            if "Integer" in scalars and isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and ("String" in scalars or "InputFile" in scalars):
                return value
            raise _type_error(prefix, name, " or ".join(scalars), top_level=bool(top_name))
        objects = [m for m in members if m not in ("Integer", "String", "InputFile")]
        if not isinstance(value, dict):
            if top_name:
                noun = _PARAM_NOUN.get(top_name, top_name)
                raise bad_request(f"can't parse {noun} JSON object")
            raise _type_error(prefix, name, "Object", top_level=False)
        chosen = self._choose_member(value, objects)
        if chosen is None:
            discriminator = self._discriminator(objects)
            if discriminator and discriminator in value:
                raise bad_request(f'unsupported {name} {discriminator} "{value[discriminator]}"')
            if discriminator:
                raise _missing_field(prefix, discriminator)
            noun = _PARAM_NOUN.get(top_name or name, top_name or name)
            raise bad_request(f"can't parse {noun} JSON object")
        return self._check_named(value, chosen, name, prefix, top_name)

    def _discriminator(self, members: list[str]) -> str | None:
        for member in members:
            for field in self.types.get(member, {}).values():
                if field.const is not None:
                    return field.name
        return None

    def _choose_member(self, value: dict[str, Any], members: list[str]) -> str | None:
        expanded: list[str] = []
        for member in members:
            expanded.extend(self.subtypes.get(member, [member]))
        with_const = [m for m in expanded if any(f.const for f in self.types.get(m, {}).values())]
        if with_const:
            for member in with_const:
                consts = {f.name: f.const for f in self.types[member].values() if f.const}
                if all(value.get(k) == v for k, v in consts.items()):
                    return member
            return None
        for member in expanded:
            required = [f.name for f in self.types.get(member, {}).values() if f.required]
            if required and all(k in value for k in required):
                return member
        return None


@cache
def load_spec() -> ApiSpec:
    """The packaged spec, parsed once per process."""
    text = resources.files(__package__).joinpath("botapi_spec.json").read_text("utf-8")
    return ApiSpec(json.loads(text))


def _fields(body: Mapping[str, Any]) -> dict[str, FieldSpec]:
    return {
        name: FieldSpec(
            name=name,
            type=str(spec["type"]),
            required=bool(spec["required"]),
            required_unless=spec.get("required_unless"),
            const=spec.get("const"),
        )
        for name, spec in body.items()
    }


def _type_error(prefix: str, name: str, kind: str, *, top_level: bool) -> ApiError:
    if top_level:
        return bad_request(f'parameter "{name}" must be of type {kind}')
    if prefix:
        return bad_request(f'{prefix}Field "{name}" must be of type {kind}')
    return bad_request(f'field "{name}" must be of type {kind}')


def _missing_field(prefix: str, name: str) -> ApiError:
    if prefix:
        return bad_request(f'{prefix}Can\'t find field "{name}"')
    return bad_request(f'can\'t find field "{name}"')


def scalar_param(name: str, type_name: str, value: Any) -> Any:
    """A top-level scalar parameter the spec does not list (a deprecated one), read as
    :meth:`ApiSpec.validate` reads the listed ones."""
    return _scalar_top(name, type_name, value)


def _scalar_top(name: str, type_name: str, value: Any) -> Any:
    """Top-level scalars: form values are strings, JSON bodies carry native values."""
    kind = _json_kind(type_name)
    if type_name == "String":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif type_name == "Integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_RE.match(value.strip()):
            return int(value.strip())
        kind = "Integer"
    elif type_name == "Float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            return float(value)
        kind = "Float"
    else:  # Boolean / True
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
    raise bad_request(f'parameter "{name}" must be of type {kind}')


def _scalar_nested(prefix: str, name: str, type_name: str, value: Any) -> Any:
    """Scalars inside JSON objects: numbers may be given as numeric strings."""
    if type_name == "String":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif type_name == "Integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_RE.match(value):
            return int(value)
    elif type_name == "Float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.match(value):
            return float(value)
    elif isinstance(value, bool):
        return value
    raise _type_error(prefix, name, _json_kind(type_name), top_level=False)


def _input_file(value: Any, raw: Mapping[str, Any], *, allow_string: bool) -> Any:
    if isinstance(value, Upload):
        return value
    if isinstance(value, str):
        if value.startswith("attach://"):
            attached = raw.get(value[len("attach://") :])
            if isinstance(attached, Upload):
                return attached
            raise bad_request(WRONG_FILE_ID)
        if allow_string:
            return value
    raise bad_request(WRONG_FILE_ID)


def resolve_attach(value: Any, uploads: Mapping[str, Any]) -> Any:
    """Resolve an ``attach://name`` reference inside a JSON object to its upload."""
    if isinstance(value, str) and value.startswith("attach://"):
        attached = uploads.get(value[len("attach://") :])
        if isinstance(attached, Upload):
            return attached
        raise bad_request(WRONG_FILE_ID)
    return value
