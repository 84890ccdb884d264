"""`lumigram run` as a real process: the HTTP server on the configured port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import httpx

from lumigram.emulator import FloodLimits, TelegramEmulator
from tests.processes import PIPE, STDOUT, start_lumigram


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(
    emulator: TelegramEmulator, token: str, database_url: str, port: int
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": token,
        "TELEGRAM_API_BASE": emulator.base_url,
        "DATABASE_URL": database_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "LOG_LEVEL": "INFO",
    }


async def test_lumigram_run_serves_healthz_on_the_configured_port(
    tmp_path: Path, database_url: str
) -> None:
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="http_bot", first_name="Http")
    port = free_port()
    process = await start_lumigram(
        "run",
        cwd=tmp_path,
        env=environment(emulator, token, database_url, port),
        stdout=PIPE,
        stderr=STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            async with asyncio.timeout(30):
                while True:
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "ok"}
        user = emulator.user(user_id=4321, first_name="Proc", language_code="en")
        await user.send_text("/start")
        await user.wait_for_text("I am Lumigram", timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        await emulator.stop()
    log = output.decode()
    assert process.returncode == 0, log
    assert f"HTTP server on http://127.0.0.1:{port}" in log
    assert any(r.method == "deleteWebhook" for r in emulator.server.requests)
    emulator.assert_no_errors()


async def test_a_busy_http_port_stops_start_up_with_one_line(
    tmp_path: Path, database_url: str
) -> None:
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="busy_bot", first_name="Busy")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        try:
            process = await start_lumigram(
                "run",
                cwd=tmp_path,
                env=environment(emulator, token, database_url, port),
                stdout=PIPE,
                stderr=PIPE,
            )
            _, errors = await asyncio.wait_for(process.communicate(), timeout=30)
        finally:
            await emulator.stop()
    assert process.returncode == 2
    lines = errors.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "HTTP_PORT" in lines[0]
    assert str(port) in lines[0]
    assert not any(r.method == "getMe" for r in emulator.server.requests)
