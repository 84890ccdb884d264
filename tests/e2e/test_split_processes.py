"""`lumigram bot`, `lumigram worker` and `lumigram api` as three real processes over one
database and one files folder: the bot in webhook mode (the emulator POSTs updates to
it, with the secret), a job made through the API is run by the worker process and
downloaded from the API process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import httpx

from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.mapping import map_entities
from lumigram.db.repositories.api_keys import ApiKeyRepository
from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.services.api_keys import ApiKeyService
from tests.processes import PIPE, STDOUT, start_lumigram

SECRET = "split-secret_1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, process: asyncio.subprocess.Process, timeout: float = 40) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client, asyncio.timeout(timeout):
        while True:
            assert process.returncode is None, "the process ended during start-up"
            try:
                answer = await client.get("/readyz")
                if answer.status_code == 200:
                    return dict(answer.json())
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    log = output.decode()
    assert process.returncode == 0, log
    return log


async def test_bot_worker_and_api_run_as_separate_processes(
    tmp_path: Path, database_url: str
) -> None:
    emulator = TelegramEmulator(flood=FloodLimits.unlimited())
    await emulator.start(host="127.0.0.1", port=0)
    token = emulator.create_bot(username="split_bot", first_name="Split")
    ports = {role: free_port() for role in ("bot", "worker", "api")}
    common = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": token,
        "TELEGRAM_API_BASE": emulator.base_url,
        "DATABASE_URL": database_url,
        "STORAGE_DIR": str(tmp_path / "files"),  # shared by all three
        "HTTP_HOST": "127.0.0.1",
        "DEMO_LATENCY": "0",
        "SWEEP_INTERVAL": "0.3",  # how soon the worker finds a job made elsewhere
        "LOG_LEVEL": "INFO",
    }
    bot_url = f"http://127.0.0.1:{ports['bot']}"
    extra = {
        "bot": {
            "TELEGRAM_MODE": "webhook",
            "PUBLIC_BASE_URL": bot_url,
            "WEBHOOK_SECRET": SECRET,
        },
        "worker": {},
        "api": {},
    }
    processes: dict[str, asyncio.subprocess.Process] = {}
    logs: dict[str, str] = {}
    try:
        # All three at once (their start-up is mostly importing): one applies the
        # migrations, the others wait for its transaction and find nothing left to do.
        for role in ("bot", "worker", "api"):
            (tmp_path / role).mkdir()
            env = {**common, **extra[role], "HTTP_PORT": str(ports[role])}
            processes[role] = await start_lumigram(
                role, cwd=tmp_path / role, env=env, stdout=PIPE, stderr=STDOUT
            )
        expected = {
            "bot": {"database", "telegram", "bot"},
            "worker": {"database", "telegram"},
            "api": {"database"},
        }
        for role in ("bot", "worker", "api"):
            checks = await wait_ready(f"http://127.0.0.1:{ports[role]}", processes[role], 90)
            # Each role reports what it depends on.
            assert set(checks["checks"]) == expected[role], checks

        # The bot answers through its webhook (the emulator sends the secret header).
        assert emulator.webhook_info(token)["url"] == f"{bot_url}/telegram/webhook"
        user = emulator.user(user_id=4321, first_name="Ann")
        await user.send_text("/start")
        await user.wait_for_text("Lumigram", timeout=20)

        # A key for the user, as /api in the bot would make it.
        map_entities()
        engine = create_engine(database_url)
        async with create_sessionmaker(engine)() as session:
            created = await ApiKeyService(ApiKeyRepository(session), session).create(4321)
        await engine.dispose()

        api = f"http://127.0.0.1:{ports['api']}"
        headers = {"Authorization": f"Bearer {created.plaintext}"}
        async with httpx.AsyncClient(base_url=api, timeout=10, headers=headers) as client:
            answer = await client.post("/v1/generations", json={"model": "demo", "prompt": "a fox"})
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["id"]
            async with asyncio.timeout(30):  # the worker process runs it
                while (status := (await client.get(f"/v1/generations/{job_id}")).json())[
                    "status"
                ] != "succeeded":
                    assert status["status"] in {"queued", "running"}, status
                    await asyncio.sleep(0.2)
            image = await client.get(status["files"][0]["url"])
            assert image.status_code == 200
            assert image.content.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
        # An API job is not sent to the chat: the user got only the /start answer.
        assert [m.kind for m in user.bot_messages if m.kind in {"photo", "document"}] == []
    finally:
        for role, process in processes.items():
            logs[role] = await stop(process)
        await emulator.stop()
    assert "roles: bot" in logs["bot"]
    assert "roles: worker" in logs["worker"]
    assert "roles: api" in logs["api"]
