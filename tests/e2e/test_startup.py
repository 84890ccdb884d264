"""Start-up problems, seen as an operator sees them: the real ``lumigram`` process.

Each problem is one line on stderr naming the setting or the service, exit code 2 and
no traceback. Processes of one test run side by side: most of their time is spent
importing or waiting for a retry.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from lumigram.emulator import FloodLimits, TelegramEmulator
from tests.conftest import VALID_TOKEN
from tests.processes import PIPE, STDOUT, start_lumigram

PASSWORD = "pw-s3cret-never-shown"


@dataclass
class Result:
    returncode: int | None
    stdout: str
    stderr: str


def clean_env(**values: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": VALID_TOKEN,
        "HTTP_PORT": "0",  # any free port: runs may overlap
        **values,
    }


async def lumigram(*args: str, cwd: Path, env: dict[str, str], timeout: float = 30) -> Result:
    process = await start_lumigram(
        *args,
        cwd=cwd,
        env=env,
        stdout=PIPE,
        stderr=PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Result(process.returncode, stdout.decode(), stderr.decode())


def one_line(result: Result, *expected: str) -> str:
    """The single stderr line of a failed start, after checking its shape."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert VALID_TOKEN not in output
    assert PASSWORD not in output
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_bad_tiers_and_packages_name_the_setting_the_entry_and_the_field(
    tmp_path: Path,
) -> None:
    cases = {
        ("SUBSCRIPTION_TIERS", "{bad json"): ("not valid JSON", "character 2"),
        ("SUBSCRIPTION_TIERS", '[{"id": "gold", "name": "Gold", "stars": 5}]'): (
            "tier 1 (id 'gold')",
            "'images' is missing",
        ),
        ("SUBSCRIPTION_TIERS", '[{"id": "gold", "name": "Gold", "stars": 0, "images": 3}]'): (
            "tier 1 (id 'gold')",
            "'stars'",
        ),
        ("CREDIT_PACKAGES", "10:100,ten:50"): ("'ten:50'",),
    }
    results = await asyncio.gather(
        *(lumigram("run", cwd=tmp_path, env=clean_env(**{name: value})) for name, value in cases)
    )
    for ((name, _), expected), result in zip(cases.items(), results, strict=True):
        line = one_line(result, name, *expected)
        assert "is not set" not in line


async def test_a_missing_or_malformed_catalog_file_names_the_file_the_model_and_the_field(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.toml").write_text(
        '[[model]]\nid = "flux-1.1-pro"\n[model.capabilities]\nmax_outputs = 9\n'
    )
    missing = clean_env(CATALOG_FILE="missing.toml")
    broken = clean_env(CATALOG_FILE="broken.toml")
    results = await asyncio.gather(
        lumigram("run", cwd=tmp_path, env=missing),
        lumigram("check-config", cwd=tmp_path, env=missing),
        lumigram("run", cwd=tmp_path, env=broken),
        lumigram("check-config", cwd=tmp_path, env=broken),
    )
    for result in results[:2]:
        one_line(result, "CATALOG_FILE", "missing.toml", "No such file")
    for result in results[2:]:
        one_line(result, "broken.toml", "'flux-1.1-pro'", "capabilities.max_outputs")
        assert "Configuration OK." not in result.stdout


async def test_an_unreachable_database_is_one_line_after_quick_retries(tmp_path: Path) -> None:
    postgres = clean_env(
        DATABASE_URL=f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{free_port()}/x"
    )
    (tmp_path / "a-file").write_text("not a folder")
    sqlite = clean_env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'a-file' / 'x.db'}")
    commands = [("run",), ("check-config",), ("migrate",)]
    results = await asyncio.gather(
        *(
            lumigram(*command, cwd=tmp_path, env=env)
            for env in (postgres, sqlite)
            for command in commands
        )
    )
    port = postgres["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]
    for result in results[:3]:
        one_line(
            result,
            "Database error: cannot connect to postgresql at 127.0.0.1:" + port,
            "(Connection refused)",
            "DATABASE_URL",
        )
    for result in results[3:]:
        one_line(result, "Database error", "a-file is a file, not a folder", "DATABASE_URL")
    assert not (tmp_path / "data").exists()  # nothing was created on the way


async def test_a_token_telegram_rejects_and_an_unreachable_telegram(tmp_path: Path) -> None:
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="check_bot")
    try:
        # VALID_TOKEN has the right shape but the emulator never issued it: 401.
        rejected = clean_env(TELEGRAM_API_BASE=emulator.base_url)
        accepted = clean_env(BOT_TOKEN=token, TELEGRAM_API_BASE=emulator.base_url)
        nowhere = clean_env(TELEGRAM_API_BASE=f"http://127.0.0.1:{free_port()}")
        run, online, good, offline, unreachable = await asyncio.gather(
            lumigram("run", cwd=tmp_path, env=rejected),
            lumigram("check-config", "--online", cwd=tmp_path, env=rejected),
            lumigram("check-config", "--online", cwd=tmp_path, env=accepted),
            lumigram("check-config", cwd=tmp_path, env=nowhere),
            lumigram("check-config", "--online", cwd=tmp_path, env=nowhere),
        )
    finally:
        await emulator.stop()
    message = "BOT_TOKEN was rejected by Telegram: copy it again from @BotFather"
    assert one_line(run, message) == message
    assert one_line(online, message) == message
    assert good.returncode == 0, good.stderr
    assert "Telegram OK: @check_bot" in good.stdout
    assert token not in good.stdout + good.stderr
    # Plain check-config makes no call to Telegram.
    assert offline.returncode == 0, offline.stderr
    assert "Catalog OK" in offline.stdout
    assert "Database OK" in offline.stdout
    assert "Configuration OK." in offline.stdout
    one_line(unreachable, "Telegram", nowhere["TELEGRAM_API_BASE"], "Connection refused")


async def start_run(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await start_lumigram(
        "run",
        cwd=cwd,
        env=env,
        stdout=PIPE,
        stderr=STDOUT,
    )


async def first_line(process: asyncio.subprocess.Process) -> bytes:
    """The output up to the first retry warning (there may be INFO lines before it)."""
    assert process.stdout is not None
    seen = b""
    while b" WARNING lumigram.startup: cannot reach the Bot API" not in seen:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        assert line, seen  # the process ended without waiting for Telegram
        seen += line
    return seen


async def stop(process: asyncio.subprocess.Process, first: bytes, *, signal_it: bool = True) -> str:
    if signal_it and process.returncode is None:
        process.send_signal(signal.SIGTERM)
    rest, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    log = (first + rest).decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    return log


async def test_telegram_unreachable_at_start_is_retried_and_sigterm_stops_the_wait(
    tmp_path: Path,
) -> None:
    """One bot finds Telegram once it is back; another is stopped while it waits."""
    port = free_port()
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    token = emulator.create_bot(username="late_bot", first_name="Late")
    (tmp_path / "late").mkdir()
    (tmp_path / "stopped").mkdir()
    late_env = clean_env(BOT_TOKEN=token, TELEGRAM_API_BASE=f"http://127.0.0.1:{port}")
    stopped_env = clean_env(TELEGRAM_API_BASE=f"http://127.0.0.1:{free_port()}")
    late, stopped = await asyncio.gather(
        start_run(late_env, tmp_path / "late"), start_run(stopped_env, tmp_path / "stopped")
    )
    late_first = stopped_first = b""
    try:
        late_first, stopped_first = await asyncio.gather(first_line(late), first_line(stopped))
        stopped.send_signal(signal.SIGTERM)  # while it waits for Telegram
        await emulator.start(host="127.0.0.1", port=port)  # Telegram is back
        user = emulator.user(user_id=555, first_name="Lee")
        await user.send_text("/start")
        await user.wait_for_text("Lumigram", timeout=20)
    finally:
        late_log, stopped_log = await asyncio.gather(
            # `stopped` had its SIGTERM already: a second one could land after the
            # event loop closed (its handlers gone) and end it with -15.
            stop(late, late_first),
            stop(stopped, stopped_first, signal_it=not stopped_first),
        )
        await emulator.stop()
    retries = [line for line in late_log.splitlines() if " WARNING lumigram.startup: " in line]
    assert retries, late_log
    assert all("cannot reach the Bot API" in line and "trying again" in line for line in retries)
    # Alembic's dozen lines are one.
    assert "alembic" not in late_log
    assert len([line for line in late_log.splitlines() if "database at revision" in line]) == 1
    assert token not in late_log
    assert "stopped by SIGTERM during start-up" in stopped_log
    assert "database at revision" not in stopped_log  # it never got that far


# --- the wording helpers, in-process --------------------------------------------------


def test_several_catalog_problems_are_one_line_with_a_count(tmp_path: Path) -> None:
    from lumigram.startup import StartupError, load_checked_catalog

    override = tmp_path / "models.toml"
    override.write_text('[[model]]\nid = "brand-new"\nname = "New"\n')  # most keys missing
    with pytest.raises(StartupError) as caught:
        load_checked_catalog(override)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"Catalog error: {override}: model 'brand-new': ")
    assert re.search(r"\(and \d+ more\) — fix CATALOG_FILE ", message), message


def test_database_problems_say_where_and_why_without_the_password() -> None:
    from lumigram.startup import database_problem

    url = f"postgresql+asyncpg://app:{PASSWORD}@db.internal:6543/lumi"
    both = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 6543, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 6543)"
    )
    assert database_problem(both, url) == (
        "Database error: cannot connect to postgresql at db.internal:6543 (Connection refused)"
        " — check DATABASE_URL and that the server is running"
    )
    assert "(unknown host)" in database_problem(socket.gaierror(-2, "Name not known"), url)
    assert "(no answer within 5 s)" in database_problem(TimeoutError(), url)
    leaked = database_problem(RuntimeError(f"bad password {PASSWORD}"), url)
    assert PASSWORD not in leaked
    assert "****" in leaked
