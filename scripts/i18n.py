"""Maintain the translation catalogs (Babel) in src/lumigram/locales.

    python scripts/i18n.py update    # extract msgids from the code, merge them into every .po
    python scripts/i18n.py compile   # .po -> .mo (the .mo files are committed; the bot loads them)
    python scripts/i18n.py check     # exit 1 if a language misses a translation or a .mo is stale

Translators edit ``src/lumigram/locales/<lang>/LC_MESSAGES/messages.po``. A message
with a count is a plural entry (``_("{n} credit", "{n} credits", n)``): it needs
every form its language has (``msgstr[0]`` … ``msgstr[nplurals - 1]``, in the order
of the ``Plural-Forms`` header), English included.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "src" / "lumigram" / "locales"
TEMPLATE = LOCALES / "messages.pot"
LANGUAGES = ("en", "ru", "uz")
# Babel keyword specs ("name:arguments,<count>t"; Babel counts keyword arguments and a
# trailing comma as arguments too, hence one spec per count):
# * ``_`` and ``__`` (aiogram's gettext and lazy_gettext): ``_(text)``, or
#   ``_(singular, plural, n)`` for a message with a count;
# * ``gettext``: ``i18n.gettext(text, locale=...)`` where no update gives the language,
#   or ``i18n.gettext(singular, plural, n, locale=...)`` (always with ``locale=``);
# * ``ngettext`` and ``N_`` (a string marked now, translated later): Babel's defaults.
KEYWORDS = (
    "_:1,1t",
    "_:1,2t",
    "_:1,2,3t",
    "_:1,2,4t",
    "__:1,1t",
    "__:1,2t",
    "__:1,2,3t",
    "__:1,2,4t",
    "gettext:1,1t",
    "gettext:1,2t",
    "gettext:1,3t",
    "gettext:1,2,4t",
    "gettext:1,2,5t",
    "ngettext:1,2",
    "N_",
)
# The Plural-Forms header each catalog must carry (gettext picks msgstr[plural(n)]).
PLURAL_FORMS = {
    "en": "nplurals=2; plural=(n != 1);",
    "ru": (
        "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
        "(n%100<10 || n%100>=20) ? 1 : 2);"
    ),
    "uz": "nplurals=2; plural=(n != 1);",
}


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / "messages.po"


def load(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def update() -> None:
    keywords = [arg for key in KEYWORDS for arg in ("-k", key)]
    subprocess.run(  # noqa: S603 - fixed arguments, our own tool
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "-q",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            *keywords,
            "--no-location",
            "--sort-output",
            "--omit-header",
            "-o",
            str(TEMPLATE),
            str(ROOT),
        ],
        check=True,
        cwd=ROOT,
    )
    template = load(TEMPLATE)
    for language in LANGUAGES:
        path = po_path(language)
        catalog = load(path, language) if path.exists() else Catalog(locale=language)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.project, catalog.version, catalog.fuzzy = "Lumigram", "", False
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, no_location=True, omit_header=False, sort_output=True)


def compiled(language: str) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, load(po_path(language), language), use_fuzzy=False)
    return buffer.getvalue()


def compile_all() -> None:
    for language in LANGUAGES:
        po_path(language).with_suffix(".mo").write_bytes(compiled(language))


def plural_problems(language: str, catalog: Catalog, message_id: object) -> list[str]:
    """A plural entry needs all ``nplurals`` forms, each one translated."""
    entry = catalog.get(message_id)
    singular = message_id[0] if isinstance(message_id, tuple | list) else message_id
    if entry is None:
        return []
    if not entry.pluralizable:
        return [f"{language}: {singular!r} is a plural message but has a single msgstr"]
    forms = list(entry.string)
    if len(forms) != catalog.num_plurals:
        return [
            f"{language}: {singular!r} has {len(forms)} plural forms, "
            f"the language has {catalog.num_plurals}"
        ]
    empty = [str(index) for index, form in enumerate(forms) if not form]
    if empty or entry.fuzzy:
        what = f"msgstr[{', '.join(empty)}] empty" if empty else "fuzzy"
        return [f"{language}: plural {singular!r} not fully translated ({what})"]
    return []


def mo_messages(data: bytes) -> dict[object, object]:
    """A compiled catalog's messages (plural ids and forms as tuples)."""

    def key(value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    return {key(m.id): key(m.string) for m in read_mo(io.BytesIO(data)) if m.id}


def problems() -> list[str]:
    """Missing or fuzzy translations in ru/uz, plural entries without all their forms (in
    every language), a wrong Plural-Forms header, and .mo files that do not match their .po."""
    found: list[str] = []
    template = load(TEMPLATE)
    for language in LANGUAGES:
        catalog = load(po_path(language), language)
        if catalog.plural_forms != PLURAL_FORMS[language]:
            found.append(
                f"{language}: Plural-Forms is {catalog.plural_forms!r}, "
                f"expected {PLURAL_FORMS[language]!r}"
            )
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id)
            if entry is None:
                found.append(f"{language}: missing {message.id!r}")
            elif message.pluralizable:
                found += plural_problems(language, catalog, message.id)
            elif entry.pluralizable:
                found.append(f"{language}: {message.id!r} has plural forms but no msgid_plural")
            elif language != "en" and (not entry.string or entry.fuzzy):
                found.append(f"{language}: untranslated {message.id!r}")
        mo = po_path(language).with_suffix(".mo")
        if not mo.exists():
            found.append(f"{language}: {mo.name} missing (run compile)")
            continue
        committed = mo_messages(mo.read_bytes())
        expected = mo_messages(compiled(language))
        if committed != expected:
            found.append(f"{language}: {mo.name} is stale (run compile)")
    return found


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "check":
        issues = problems()
        for issue in issues:
            print(issue)
        return 1 if issues else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
