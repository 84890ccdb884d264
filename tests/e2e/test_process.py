"""`lumigram run` as a real process, configured only through its environment."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from lumigram.emulator import FloodLimits, TelegramEmulator
from tests.processes import DEVNULL, PIPE, STDOUT, start_lumigram


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
        "HTTP_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    process = await start_lumigram(
        "run",
        cwd=tmp_path,
        env=env,
        stdout=PIPE,
        stderr=STDOUT,
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


async def test_killed_mid_generation_the_job_is_delivered_once_after_restart(
    tmp_path: Path, database_url: str
) -> None:
    """SIGKILL (no clean shutdown at all) while the image is being generated."""
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="kill_bot", first_name="Kill")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": token,
        "TELEGRAM_API_BASE": emulator.base_url,
        "DATABASE_URL": database_url,
        "HTTP_PORT": "0",
        "DEMO_LATENCY": "0",
        "DEMO_IMAGE_SIZE": "128",
        "JOB_RETRY_DELAY": "0.1",
        "SWEEP_INTERVAL": "0.5",
        # On PostgreSQL the killed run's lease is not dropped at start (other processes
        # may share the database): it expires, then the job carries on.
        "LEASE_SECONDS": "5",
    }

    async def start() -> asyncio.subprocess.Process:
        return await start_lumigram(
            "run",
            cwd=tmp_path,
            env=env,
            stdout=DEVNULL,
            stderr=DEVNULL,
        )

    first = await start()
    second = None
    try:
        user = emulator.user(user_id=4321, first_name="Kim")
        await user.send_text("/generate")
        await user.wait_for_text("Choose a model", timeout=30)
        await user.press("Demo")
        await user.wait_for_text("Now choose a mode")
        await user.press("Custom prompt")
        await user.wait_for_text("Send me what to draw")
        await user.send_text("a lighthouse [demo:slow=3]")
        await user.wait_for_text("Check your request")
        await user.press("Generate")
        await user.wait_for_text("Generating", timeout=10)
        first.kill()
        await first.wait()
        second = await start()
        await user.wait_for(lambda m: m.media_type == "document", timeout=30)
        await user.wait_idle(quiet=1.5, timeout=10)
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await emulator.stop()
    assert len([m for m in user.bot_messages if m.media_type == "photo"]) == 1
    assert len([m for m in user.bot_messages if m.media_type == "document"]) == 1
    emulator.assert_no_errors()
