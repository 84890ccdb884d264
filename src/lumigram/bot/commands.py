"""The command menu Telegram shows, registered for each language."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import I18n

from lumigram.bot.i18n import N_
from lumigram.domain.users import SUPPORTED_LANGUAGES

# (command, description) — descriptions are msgids translated per language.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("Welcome and main menu")),
    ("generate", N_("Create an image")),
    ("history", N_("Your recent images")),
    ("cancel", N_("Stop the current generation")),
    ("profile", N_("Balance, free images and payments")),
    ("topup", N_("Buy credits")),
    ("buy", N_("Credit packages")),
    ("subscription", N_("Your subscription")),
    ("referrals", N_("Invite friends and earn credits")),
    ("api", N_("API keys for your programs")),
    ("refund", N_("Ask for a refund")),
    ("paysupport", N_("Help with payments")),
    ("terms", N_("Terms of payment")),
    ("menu", N_("Main menu")),
    ("language", N_("Change the language")),
    ("help", N_("How to use the bot")),
)


def commands_for(i18n: I18n, locale: str) -> list[BotCommand]:
    return [
        BotCommand(command=name, description=i18n.gettext(description, locale=locale))
        for name, description in COMMANDS
    ]


async def register_commands(bot: Bot, i18n: I18n) -> None:
    """One list per language, plus the default list (no language_code) in the default language."""
    for locale in SUPPORTED_LANGUAGES:
        await bot.set_my_commands(
            commands_for(i18n, locale), scope=BotCommandScopeDefault(), language_code=locale
        )
    await bot.set_my_commands(
        commands_for(i18n, i18n.default_locale), scope=BotCommandScopeDefault()
    )
