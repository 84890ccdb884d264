"""Every user-facing string exists in all three languages, and the compiled catalogs are fresh."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

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
            if not message.id or not message.string:
                continue
            source = message.id[-1] if message.pluralizable else message.id
            forms = message.string if message.pluralizable else (message.string,)
            for form in forms:
                assert set(re.findall(r"{\w+}", source)) == set(re.findall(r"{\w+}", form)), (
                    message.id
                )
                assert re.findall(r"</?\w+>", source) == re.findall(r"</?\w+>", form), message.id


def test_languages_are_available() -> None:
    i18n = build_i18n("en")
    assert set(SUPPORTED_LANGUAGES) <= set(i18n.available_locales)
    assert i18n.gettext("⬅️ Back", locale="ru") == "⬅️ Назад"


# --- plural forms -------------------------------------------------------------------------

CREDITS = {
    "en": {1: "1 credit", 2: "2 credits", 5: "5 credits", 11: "11 credits", 21: "21 credits"},
    "ru": {
        0: "0 кредитов",
        1: "1 кредит",
        2: "2 кредита",
        5: "5 кредитов",
        11: "11 кредитов",
        12: "12 кредитов",
        21: "21 кредит",
        22: "22 кредита",
        104: "104 кредита",
        111: "111 кредитов",
    },
    "uz": {1: "1 kredit", 5: "5 kredit", 21: "21 kredit"},
}


@pytest.mark.parametrize("language", sorted(CREDITS))
def test_counts_take_the_plural_form_of_the_language(language: str) -> None:
    from lumigram.bot import render_money

    i18n = build_i18n("en")
    for count, expected in CREDITS[language].items():
        with i18n.context(), i18n.use_locale(language):
            assert render_money.credits_amount(count) == expected
        # A worker translates with an explicit locale: the same forms.
        text = i18n.gettext("{credits} credit", "{credits} credits", count, locale=language)
        assert text.format(credits=count) == expected


def test_whole_sentences_agree_with_their_count() -> None:
    from lumigram.bot import render, render_money

    i18n = build_i18n("en")
    with i18n.context(), i18n.use_locale("en"):
        assert "your 1 ⭐ was refunded" in render_money.refunded(1)
        assert "your 3 ⭐ were refunded" in render_money.refunded(3)
        assert render_money.credits_added(1, 1) == ("✅ <b>+1 credit</b>. Your balance: 1 credit.")
        assert "at most 1 reference image." in render.reference_problem("count", 1)
    with i18n.context(), i18n.use_locale("ru"):
        assert "ваша 1 ⭐ возвращена" in render_money.refunded(1)
        assert "ваши 2 ⭐ возвращены" in render_money.refunded(2)
        assert "ваши 5 ⭐ возвращены" in render_money.refunded(5)
        assert render_money.credits_added(21, 25) == (
            "✅ <b>+21 кредит</b>. На балансе 25 кредитов."
        )
        assert "не более 4 фото-образцов" in render.reference_problem("count", 4)


def plural_calls() -> set[tuple[str, str]]:
    """(singular, plural) of every gettext call with a count in the code."""
    found: set[tuple[str, str]] = set()
    for path in (ROOT / "src" / "lumigram").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first, second = node.args[0], node.args[1]
            if (
                name in ("_", "__", "gettext", "ngettext")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and isinstance(second, ast.Constant)
                and isinstance(second.value, str)
            ):
                found.add((first.value, second.value))
    return found


def test_every_count_in_the_code_is_a_plural_entry() -> None:
    """The extraction keywords know the plural calls (trailing commas and keywords too)."""
    tool = load_tool()
    template = tool.load(tool.TEMPLATE)
    calls = plural_calls()
    assert len(calls) >= 20
    for singular, plural in sorted(calls):
        entry = template.get(singular)
        assert entry is not None, f"{singular!r} is not extracted: run scripts/i18n.py update"
        assert entry.pluralizable, f"{singular!r} was extracted without its plural"
        assert tuple(entry.id) == (singular, plural)


def test_check_reports_plural_entries_without_all_their_forms() -> None:
    from babel.messages.catalog import Catalog

    tool = load_tool()
    key = ("{n} credit", "{n} credits")

    def check(translation: str | tuple[str, ...]) -> list[str]:
        catalog = Catalog(locale="ru")
        assert catalog.plural_forms == tool.PLURAL_FORMS["ru"]
        catalog.add(key if isinstance(translation, tuple) else key[0], translation)
        problems: list[str] = tool.plural_problems("ru", catalog, key)
        return problems

    assert check(("{n} кредит", "{n} кредита", "{n} кредитов")) == []
    assert check(("{n} кредит", "", "{n} кредитов")) == [
        "ru: plural '{n} credit' not fully translated (msgstr[1] empty)"
    ]
    assert "has 2 plural forms, the language has 3" in check(("{n} кредит", "{n} кредита"))[0]
    assert "single msgstr" in check("{n} кредитов")[0]
