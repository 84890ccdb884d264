"""`lumigram run` as a real process, configured only through its environment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from lumigram.emulator import FloodLimits, TelegramEmulator


async def test_lumigram_run_serves_users_and_stops_on_sigterm(
    tmp_path: Path, database_url: str
) -> None:
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="proc_bot", first_name="Proc")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": token,
        "TELEGRAM_API_BASE": emulator.base_url,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "INFO",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lumigram",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        user = emulator.user(user_id=1234, first_name="Proc", language_code="ru")
        await user.send_text("/start")
        await user.wait_for_text("Я Lumigram", timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        await emulator.stop()
    log = output.decode()
    assert process.returncode == 0, log
    assert token not in log
    assert token.split(":")[1] not in log
    emulator.assert_no_errors()
