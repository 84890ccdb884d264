"""A bot that asks for the user's location and contact with a reply keyboard
(``request_location`` / ``request_contact``) and answers what it gets."""

from __future__ import annotations

from aiogram import F, Router, html
from aiogram.filters import CommandStart
from aiogram.types import KeyboardButton, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove


def make_router() -> Router:
    router = Router(name="location")

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        keyboard = ReplyKeyboardMarkup(
            keyboard=[
                [KeyboardButton(text="📍 Send my location", request_location=True)],
                [KeyboardButton(text="☎️ Share my contact", request_contact=True)],
            ],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
        await message.answer("Where are you? And how can we call you?", reply_markup=keyboard)

    @router.message(F.location)
    async def on_location(message: Message) -> None:
        location = message.location
        assert location is not None
        kind = "live " if location.live_period else ""
        await message.answer(
            f"Got your {kind}location: {location.latitude:.4f}, {location.longitude:.4f}."
        )
        await message.answer_venue(
            latitude=location.latitude + 0.001,
            longitude=location.longitude,
            title="Coffee Point",
            address="Around the corner",
        )

    @router.message(F.contact)
    async def on_contact(message: Message) -> None:
        contact = message.contact
        assert contact is not None
        assert message.from_user is not None
        if contact.user_id != message.from_user.id:
            await message.reply("Please share <b>your own</b> contact with the button.")
            return
        await message.answer(
            f"Thanks, {html.quote(contact.first_name)}! We will call {contact.phone_number}.",
            reply_markup=ReplyKeyboardRemove(),
        )

    return router
