"""The real application with its HTTP server on a free port, against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from aiogram import Router

from lumigram.config import load_settings
from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.runtime import BotApplication

SECRET = "test-secret_123"


class HttpRunner:
    def __init__(self, emulator: TelegramEmulator, database_url: str) -> None:
        self.emulator = emulator
        self.database_url = database_url
        self.token = emulator.create_bot(username="lumigram_bot", first_name="Lumigram")
        self.app: BotApplication | None = None
        self.client: httpx.AsyncClient | None = None
        self.allowed_errors: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def start(
        self, *, mode: str = "polling", extra_routers: Sequence[Router] = (), **settings: Any
    ) -> httpx.AsyncClient:
        webhook = {"public_base_url": "http://placeholder", "webhook_secret": SECRET}
        config = load_settings(
            bot_token=self.token,
            telegram_api_base=self.emulator.base_url,
            database_url=self.database_url,
            http_host="127.0.0.1",
            http_port=0,
            telegram_mode=mode,
            **{
                "throttle_rate": 50.0,
                "throttle_burst": 50,
                "demo_latency": 0.0,
                **(webhook if mode == "webhook" else {}),
                **settings,
            },
        )
        app = self.app = BotApplication(config, extra_routers=extra_routers)
        server = await app.serve_http()
        if mode == "webhook":  # the public URL is known once the free port is
            app.settings = config.model_copy(update={"public_base_url": server.url})
        await app.prepare()
        if mode == "webhook":
            self._task = asyncio.create_task(app.run_webhook(handle_signals=False))
        else:
            self._task = asyncio.create_task(
                app.run_polling(handle_signals=False, polling_timeout=1)
            )
        self.client = httpx.AsyncClient(base_url=server.url, timeout=10)
        await wait_until_ready(self.client)
        return self.client

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        if self.app is None:
            return
        await self.app.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
        await self.app.close()
        self.app, self._task = None, None


async def wait_until_ready(client: httpx.AsyncClient, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while (await client.get("/readyz")).status_code != 200:  # noqa: ASYNC110 (HTTP)
            await asyncio.sleep(0.05)


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(flood=FloodLimits.unlimited(), webhook_retry_delays=(0.05, 0.1))
    await emu.start(host="127.0.0.1", port=0)
    yield emu
    await emu.stop()


@pytest.fixture
async def runner(emulator: TelegramEmulator, database_url: str) -> AsyncIterator[HttpRunner]:
    http_runner = HttpRunner(emulator, database_url)
    yield http_runner
    await http_runner.stop()
    emulator.assert_no_errors(allow=http_runner.allowed_errors)
