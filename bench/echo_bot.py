"""The bare aiogram bot that ``bench/start_throughput.py`` measures Lumigram against.

One ``Dispatcher``, one handler: ``/start`` is answered with ``message.answer("Hello!")``.
Long polling, aiogram's defaults everywhere else, and logging at INFO as in aiogram's
own examples (and as ``lumigram run`` logs by default), so both bots log every update.

    BOT_TOKEN=... TELEGRAM_API_BASE=http://127.0.0.1:PORT .venv/bin/python bench/echo_bot.py

Stops cleanly on SIGINT/SIGTERM (aiogram's ``start_polling`` handles them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import Message

dispatcher = Dispatcher()


@dispatcher.message(CommandStart())
async def start(message: Message) -> None:
    await message.answer("Hello!")


async def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr)
    api = TelegramAPIServer.from_base(os.environ["TELEGRAM_API_BASE"])
    bot = Bot(os.environ["BOT_TOKEN"], session=AiohttpSession(api=api))
    await dispatcher.start_polling(bot)


if __name__ == "__main__":
    asyncio.run(main())
