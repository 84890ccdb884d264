"""The packaged spec is derived from the shared aiogram schema and kept in sync."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from lumigram.emulator import load_spec

REPO = Path(__file__).resolve().parents[2]
SHARED_SCHEMA = REPO.parent / "shared" / "botapi" / "aiogram-butcher-schema.json"
PACKAGED = REPO / "src" / "lumigram" / "emulator" / "botapi_spec.json"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_botapi_spec", REPO / "scripts" / "gen_botapi_spec.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not SHARED_SCHEMA.exists(), reason="shared Bot API schema not available")
def test_packaged_spec_is_regenerated_from_the_shared_schema() -> None:
    generated = _generator().generate(SHARED_SCHEMA)
    assert generated == PACKAGED.read_text(encoding="utf-8"), (
        "botapi_spec.json is stale: run scripts/gen_botapi_spec.py"
    )


def test_packaged_spec_credits_its_source_and_version() -> None:
    data = json.loads(PACKAGED.read_text(encoding="utf-8"))
    assert "aiogram/aiogram" in data["source"]
    assert ".butcher/schema/schema.json" in data["source"]
    assert "MIT" in data["source"]
    assert data["api_version"] == "10.2"


def test_spec_has_every_method_the_emulator_serves() -> None:
    from lumigram.emulator.server import HANDLERS

    spec = load_spec()
    assert set(HANDLERS) <= set(spec.methods)
    send = spec.methods["sendMessage"].params
    assert send["chat_id"].type == "Integer or String"
    assert send["chat_id"].required
    assert send["text"].required
    assert not send["parse_mode"].required
    edit = spec.methods["editMessageText"].params
    assert edit["message_id"].required_unless == "inline_message_id"
    assert spec.types["InputMediaPhoto"]["type"].const == "photo"
    assert "BotCommandScopeChat" in spec.subtypes["BotCommandScope"]
    assert "subscription" in spec.update_types()


def test_method_names_match_case_insensitively() -> None:
    spec = load_spec()
    assert spec.canonical_method("SENDMESSAGE") == "sendMessage"
    assert spec.canonical_method("noSuchMethod") is None
