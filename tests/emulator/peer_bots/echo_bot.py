"""aiogram's examples/echo_bot.py: greets on /start and copies back anything else."""

from __future__ import annotations

from aiogram import Router, html
from aiogram.filters import CommandStart
from aiogram.types import Message


def make_router() -> Router:
    router = Router(name="echo")

    @router.message(CommandStart())
    async def command_start_handler(message: Message) -> None:
        # Most event objects have aliases for API methods that can be called in events' context
        assert message.from_user is not None
        await message.answer(f"Hello, {html.bold(message.from_user.full_name)}!")

    @router.message()
    async def echo_handler(message: Message) -> None:
        """By default, the message handler will handle all message types (like a text,
        photo, sticker etc.)"""
        try:
            # Send a copy of the received message
            await message.send_copy(chat_id=message.chat.id)
        except TypeError:
            # But not all the types is supported to be copied so need to handle it
            await message.answer("Nice try!")

    return router
