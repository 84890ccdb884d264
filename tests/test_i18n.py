"""Every user-facing string exists in all three languages, and the compiled catalogs are fresh."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from lumigram.bot.i18n import build_i18n
from lumigram.domain.users import SUPPORTED_LANGUAGES

ROOT = Path(__file__).resolve().parent.parent


def load_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("i18n_tool", ROOT / "scripts" / "i18n.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_catalogs_complete_and_compiled() -> None:
    assert load_tool().problems() == []


def test_placeholders_survive_translation() -> None:
    tool = load_tool()
    from babel.messages.pofile import read_po

    for language in ("ru", "uz"):
        with tool.po_path(language).open("rb") as handle:
            catalog = read_po(handle, locale=language)
        for message in catalog:
            if message.id and message.string:
                assert set(re.findall(r"{\w+}", message.id)) == set(
                    re.findall(r"{\w+}", message.string)
                ), message.id
                assert re.findall(r"</?\w+>", message.id) == re.findall(
                    r"</?\w+>", message.string
                ), message.id


def test_languages_are_available() -> None:
    i18n = build_i18n("en")
    assert set(SUPPORTED_LANGUAGES) <= set(i18n.available_locales)
    assert i18n.gettext("⬅️ Back", locale="ru") == "⬅️ Назад"
