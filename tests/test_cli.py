"""The ``lumigram`` command as an operator runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lumigram import __version__
from tests.conftest import VALID_TOKEN


def lumigram(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lumigram", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version(tmp_path: Path) -> None:
    result = lumigram("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_run_without_token_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    result = lumigram("run", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "BOT_TOKEN" in lines[0]
    assert "Traceback" not in result.stderr


def test_check_config_masks_the_token(tmp_path: Path) -> None:
    result = lumigram("check-config", cwd=tmp_path, env={"BOT_TOKEN": VALID_TOKEN})
    assert result.returncode == 0, result.stderr
    assert "Configuration OK." in result.stdout
    assert VALID_TOKEN not in result.stdout + result.stderr
    assert "BOT_TOKEN=1234…" in result.stdout
    # It checks the catalog and the database too, and changes nothing on the way.
    assert "Catalog OK: " in result.stdout
    assert "Database OK: SQLite file data/lumigram.db (created on the first start)" in result.stdout
    assert not (tmp_path / "data").exists()


def test_check_config_reports_the_migrated_database(tmp_path: Path) -> None:
    from lumigram.db.migrate import head_revision

    assert lumigram("migrate", cwd=tmp_path).returncode == 0
    result = lumigram("check-config", cwd=tmp_path, env={"BOT_TOKEN": VALID_TOKEN})
    assert result.returncode == 0, result.stderr
    assert f"Database OK: SQLite file data/lumigram.db, revision {head_revision()} (current)" in (
        result.stdout
    )
    assert result.stderr == ""


def test_migrate_creates_the_default_sqlite_database_without_a_bot_token(tmp_path: Path) -> None:
    from lumigram.db.migrate import applied_between, head_revision

    result = lumigram("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "lumigram.db").exists()
    count = applied_between(None, head_revision())
    assert result.stdout == f"database at revision {head_revision()}, {count} migrations applied\n"
    assert result.stderr == ""  # none of Alembic's INFO lines
    again = lumigram("migrate", cwd=tmp_path)
    assert again.stdout == f"database at revision {head_revision()}, 0 migrations applied\n"


def test_ledger_verify_passes_on_clean_books_and_fails_on_tampering(tmp_path: Path) -> None:
    import sqlite3

    assert lumigram("migrate", cwd=tmp_path).returncode == 0
    clean = lumigram("ledger", "verify", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert "Ledger OK." in clean.stdout
    with sqlite3.connect(tmp_path / "data" / "lumigram.db") as db:
        db.execute(
            "INSERT INTO users (id, language, referral_code, created_at, last_seen_at) "
            "VALUES (1, 'en', 'abcdefgh', '2026-01-01', '2026-01-01')"
        )
        db.execute(
            "INSERT INTO balances (user_id, account, amount, updated_at) "
            "VALUES (1, 'credits', 5, '2026-01-01')"
        )
    broken = lumigram("ledger", "verify", cwd=tmp_path)
    assert broken.returncode == 1
    assert "user 1 credits: balance 5 but ledger sums to 0" in broken.stdout
