"""End-to-end harness: the real bot (BotApplication) long-polling the Bot API emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiogram import Router

from lumigram.config import load_settings
from lumigram.emulator import FloodLimits, TelegramEmulator
from lumigram.runtime import BotApplication


class BotRunner:
    """Starts, stops and restarts the bot against one emulator and one database."""

    def __init__(self, emulator: TelegramEmulator, database_url: str) -> None:
        self.emulator = emulator
        self.database_url = database_url
        self.token = emulator.create_bot(username="lumigram_bot", first_name="Lumigram")
        self.app: BotApplication | None = None
        # Error descriptions a test provokes on purpose; any other 4xx fails the test.
        self.allowed_errors: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def start(
        self, *, extra_routers: Sequence[Router] = (), **settings: Any
    ) -> BotApplication:
        config = load_settings(
            bot_token=self.token,
            telegram_api_base=self.emulator.base_url,
            database_url=self.database_url,
            **{
                "throttle_rate": 50.0,
                "throttle_burst": 50,
                "demo_latency": 0.0,
                "demo_image_size": 256,
                # Generation tests are not about money; the money tests set their own trial.
                "free_trial_images": 100,
                **settings,
            },
        )
        self.app = BotApplication(config, extra_routers=extra_routers)
        await self.app.prepare()
        self._task = asyncio.create_task(
            self.app.run_polling(handle_signals=False, polling_timeout=1)
        )
        return self.app

    async def stop(self) -> None:
        if self.app is None:
            return
        await self.app.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
        await self.app.close()
        self.app, self._task = None, None

    async def restart(self, **settings: Any) -> BotApplication:
        await self.stop()
        return await self.start(**settings)


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(flood=FloodLimits.unlimited())
    await emu.start(host="127.0.0.1", port=0)
    yield emu
    await emu.stop()


@pytest.fixture
async def runner(emulator: TelegramEmulator, database_url: str) -> AsyncIterator[BotRunner]:
    bot_runner = BotRunner(emulator, database_url)
    yield bot_runner
    await bot_runner.stop()
    # Every request the bot sent during the test was valid against the Bot API spec.
    emulator.assert_no_errors(allow=bot_runner.allowed_errors)
