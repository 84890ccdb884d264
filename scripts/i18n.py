"""Maintain the translation catalogs (Babel) in src/lumigram/locales.

    python scripts/i18n.py update    # extract msgids from the code, merge them into every .po
    python scripts/i18n.py compile   # .po -> .mo (the .mo files are committed; the bot loads them)
    python scripts/i18n.py check     # exit 1 if a language misses a translation or a .mo is stale

Translators edit ``src/lumigram/locales/<lang>/LC_MESSAGES/messages.po``.
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
KEYWORDS = ("_", "__", "N_")


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


def problems() -> list[str]:
    """Missing or fuzzy translations in ru/uz, and .mo files that do not match their .po."""
    found: list[str] = []
    template = load(TEMPLATE)
    for language in LANGUAGES:
        catalog = load(po_path(language), language)
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id)
            if entry is None:
                found.append(f"{language}: missing {message.id!r}")
            elif language != "en" and (not entry.string or entry.fuzzy):
                found.append(f"{language}: untranslated {message.id!r}")
        mo = po_path(language).with_suffix(".mo")
        if not mo.exists():
            found.append(f"{language}: {mo.name} missing (run compile)")
            continue
        with mo.open("rb") as handle:
            committed = {m.id: m.string for m in read_mo(handle) if m.id}
        expected = {m.id: m.string for m in read_mo(io.BytesIO(compiled(language))) if m.id}
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
