"""Texts the handlers send, built from translated templates (HTML parse mode)."""

from __future__ import annotations

from html import escape

from aiogram.utils.i18n import gettext as _

from lumigram.domain.users import User


def welcome(user: User) -> str:
    return _(
        "👋 Hello, <b>{name}</b>!\n\n"
        "I am Lumigram: I turn your words into images with the best AI models.\n"
        "Choose what to do below."
    ).format(name=escape(user.first_name or user.username or "friend"))


def menu() -> str:
    return _("🏠 <b>Main menu</b>\nChoose what to do.")


def help_text() -> str:
    return _(
        "<b>How to use Lumigram</b>\n\n"
        "/start — welcome and main menu\n"
        "/menu — main menu\n"
        "/language — change the language\n"
        "/help — this help"
    )


def language_prompt() -> str:
    return _("🌐 Choose your language:")


def language_changed() -> str:
    return _("✅ Language changed to English.")


def banned(reason: str | None) -> str:
    text = _("⛔ Your access to this bot has been restricted.")
    if reason:
        text += "\n" + _("Reason: {reason}").format(reason=escape(reason))
    return text


def throttled() -> str:
    return _("⏳ Too many requests. Please wait a moment.")


def stale_button() -> str:
    return _("This button is no longer valid. Use /menu to start again.")


def unknown_message() -> str:
    return _("I did not understand that. Use /menu to see what I can do.")


def error_happened() -> str:
    return _("😔 Something went wrong on our side. Please try again in a moment.")
