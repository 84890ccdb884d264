"""Fixtures: a fresh emulator per test, a real aiogram Bot and a raw HTTP client."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from PIL import Image

from lumigram.emulator import FloodLimits, TelegramEmulator


class FastSession(AiohttpSession):
    """aiogram's session without the 250 ms grace sleep on close (keeps tests fast)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(emu: TelegramEmulator, token: str) -> Bot:
    return Bot(token, session=FastSession(api=TelegramAPIServer.from_base(emu.base_url)))


def png_bytes(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator(flood=FloodLimits.disabled(), pre_checkout_timeout=1.0)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
def token(emu: TelegramEmulator) -> str:
    return emu.create_bot(username="lumigram_bot", first_name="Lumigram")


@pytest.fixture
async def bot(emu: TelegramEmulator, token: str) -> AsyncIterator[Bot]:
    instance = make_bot(emu, token)
    yield instance
    await instance.session.close()


class RawApi:
    """Plain HTTP calls, to look at the exact answers."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.token = token

    async def call(
        self, method: str, *, token: str | None = None, **params: Any
    ) -> tuple[int, dict[str, Any]]:
        """POST params as application/json."""
        url = f"{self.base_url}/bot{token or self.token}/{method}"
        async with self.session.post(url, json=params) as response:
            return response.status, await response.json()

    async def form(
        self, method: str, data: aiohttp.FormData | dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        url = f"{self.base_url}/bot{self.token}/{method}"
        async with self.session.post(url, data=data) as response:
            return response.status, await response.json()

    async def get(self, method: str, **query: str) -> tuple[int, dict[str, Any]]:
        url = f"{self.base_url}/bot{self.token}/{method}"
        async with self.session.get(url, params=query) as response:
            return response.status, await response.json()

    async def error(self, method: str, **params: Any) -> str:
        """Call and return the error description (asserting it is a 400)."""
        status, body = await self.call(method, **params)
        assert status == 400, (status, body)
        assert body["ok"] is False, body
        assert body["error_code"] == 400, body
        return str(body["description"])


@pytest.fixture
async def api(emu: TelegramEmulator, token: str) -> AsyncIterator[RawApi]:
    async with aiohttp.ClientSession() as session:
        yield RawApi(session, emu.base_url, token)


def dumps(value: Any) -> str:
    return json.dumps(value)
